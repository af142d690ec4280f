"""A backup target on an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...).

``s3://BUCKET[/PREFIX][?endpoint_url=URL&region=NAME]`` names it; keys live under
``PREFIX/``. Credentials come from boto3's standard chain (``AWS_ACCESS_KEY_ID``/
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``~/.aws``, instance roles), never
from the URL, so a target's description can be logged and recorded.

The :class:`~.target.BackupTarget` contract holds as it is: S3 makes an object
visible whole or not at all (a multipart upload only once it is completed), and
a successful PUT is durable. Every upload carries its SHA-256, which S3 checks
on arrival, and what the server reports it stored (its SHA-256 checksum, else
an MD5 ETag) is compared with what was sent; a mismatch is uploaded again.

Every boto3/botocore failure is translated here, once, into the error tree
(:func:`_translate`), so no raw botocore traceback reaches the CLI.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from typing import Any, NoReturn
from urllib.parse import parse_qsl, quote, urlsplit

from vecraft.services.snapshot_service.target import MissingFile
from vecraft.shared.common.errors import InvalidRequest, NotFound, Unavailable, VecraftError

#: Objects at least this big are uploaded in parts (boto3's managed transfer), in parallel.
MULTIPART_THRESHOLD = 16 * 2**20
MULTIPART_CHUNK = 16 * 2**20
UPLOAD_THREADS = 4
#: Uploads whose stored checksum differs from what was sent are tried this many times in all.
PUT_ATTEMPTS = 3
#: Keys per ListObjectsV2 page (S3's own maximum).
PAGE_SIZE = 1000
_QUERY_PARAMS = ("endpoint_url", "region")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_ETAG_MD5 = re.compile(r"^[0-9a-f]{32}(-\d+)?$")
#: Error codes that mean the credentials are missing, wrong or lack the permission.
_AUTH_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "ExpiredToken", "InvalidToken",
               "AuthorizationHeaderMalformed", "InvalidClientTokenId", "403"}
_BUSY_CODES = {"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout",
               "500", "502", "503", "504"}


def _split_location(location: str) -> tuple[str, str, dict[str, str]]:
    """(bucket, prefix, query options) of an ``s3://`` URL; InvalidRequest names what is wrong."""
    parts = urlsplit(location)
    if parts.scheme != "s3":
        raise InvalidRequest(f"not an S3 target: {location!r} (s3://BUCKET/PREFIX)")
    if "@" in parts.netloc:
        raise InvalidRequest("credentials do not go in an s3:// target: set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) instead")
    bucket = parts.netloc
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise InvalidRequest(f"bad S3 bucket name {bucket!r} in {location!r}: 3-63 characters of a-z, 0-9, "
                             f"'.' and '-'")
    prefix = parts.path.strip("/")
    if prefix and any(p in ("", ".", "..") for p in prefix.split("/")):
        raise InvalidRequest(f"bad S3 prefix {parts.path!r} in {location!r}")
    options: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in _QUERY_PARAMS:
            raise InvalidRequest(f"unknown option {name!r} in {location!r}; known: "
                                 f"{', '.join(_QUERY_PARAMS)}")
        if not value:
            raise InvalidRequest(f"empty {name} in {location!r}")
        options[name] = value
    endpoint = options.get("endpoint_url")
    if endpoint is not None:
        ep = urlsplit(endpoint)
        if ep.scheme not in ("http", "https") or not ep.hostname:
            raise InvalidRequest(f"bad endpoint_url {endpoint!r}: give http(s)://HOST[:PORT]")
    return bucket, prefix, options


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def expected_sums(data: bytes, part_size: int | None) -> tuple[str, str]:
    """(SHA-256 checksum, ETag) S3 reports for ``data`` uploaded whole (``part_size`` None) or in parts.

    A multipart object's checksum is the SHA-256 of its parts' SHA-256 digests, and its
    ETag the MD5 of their MD5 digests, each followed by ``-<parts>``.
    """
    if part_size is None:
        return _b64(hashlib.sha256(data).digest()), hashlib.md5(data, usedforsecurity=False).hexdigest()
    parts = [data[i:i + part_size] for i in range(0, len(data), part_size)] or [b""]
    sha = hashlib.sha256(b"".join(hashlib.sha256(p).digest() for p in parts)).digest()
    md5 = hashlib.md5(b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts),
                      usedforsecurity=False).hexdigest()
    return f"{_b64(sha)}-{len(parts)}", f"{md5}-{len(parts)}"


def stored_matches(reported: dict[str, Any], sha: str, etag: str) -> bool | None:
    """Whether what S3 ``reported`` (a PutObject or HeadObject response) is the object that was sent.

    Its SHA-256 checksum decides when it has one; else an ETag that is an MD5 (not
    so with some server-side encryption); None when the server reports neither.
    """
    stored_sha = reported.get("ChecksumSHA256")
    if stored_sha:
        # A multipart checksum may come with or without its "-<parts>" suffix.
        return bool(stored_sha == sha or stored_sha == sha.split("-")[0])
    stored_etag = str(reported.get("ETag", "")).strip('"')
    if _ETAG_MD5.match(stored_etag):
        return stored_etag == etag
    return None


class S3Target:
    """Keys below ``prefix`` in ``bucket``; see the module docstring for what is checked."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region: str | None = None, multipart_threshold: int = MULTIPART_THRESHOLD,
                 multipart_chunk: int = MULTIPART_CHUNK, page_size: int = PAGE_SIZE) -> None:
        try:
            import boto3
            from boto3.s3.transfer import TransferConfig
            from botocore.config import Config
        except ImportError:
            raise InvalidRequest('S3 backup targets need boto3: pip install "vecraft[s3]"') from None
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint_url = endpoint_url
        self.region = region
        self.page_size = page_size
        s3: dict[str, Any] = {"addressing_style": "path"} if endpoint_url else {}
        config = Config(connect_timeout=5, read_timeout=120, retries={"mode": "standard", "max_attempts": 3},
                        s3=s3, max_pool_connections=max(10, UPLOAD_THREADS * 2))
        session = boto3.session.Session()
        # An S3-compatible server still wants a region to sign with; S3's default is us-east-1.
        self.client = session.client("s3", endpoint_url=endpoint_url,
                                     region_name=region or session.region_name or "us-east-1", config=config)
        self.transfer = TransferConfig(multipart_threshold=multipart_threshold,
                                       multipart_chunksize=multipart_chunk, max_concurrency=UPLOAD_THREADS,
                                       use_threads=True)

    @classmethod
    def from_url(cls, location: str) -> S3Target:
        bucket, prefix, options = _split_location(location)
        return cls(bucket, prefix, endpoint_url=options.get("endpoint_url"), region=options.get("region"))

    def describe(self) -> str:
        """The target's URL (no credentials): ``from_url`` of it opens the same target."""
        url = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        query = [f"{name}={quote(value, safe=':/')}" for name, value in
                 (("endpoint_url", self.endpoint_url), ("region", self.region)) if value]
        return url + ("?" + "&".join(query) if query else "")

    def _where(self) -> str:
        return f"bucket {self.bucket!r}" + (f" at {self.endpoint_url}" if self.endpoint_url else "")

    def _key(self, key: str) -> str:
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in key.split("/")):
            raise InvalidRequest(f"bad backup file name {key!r}")
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, op: str, key: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - every boto failure is translated, the rest re-raised
            _translate(exc, self, op, key)

    # ---- BackupTarget -----------------------------------------------------------------------
    def put(self, key: str, data: bytes) -> None:
        """Upload ``data`` as ``key``: whole below the multipart threshold, else in parallel parts.

        Raises Unavailable when the stored object still differs after ``PUT_ATTEMPTS``
        uploads, or the server cannot be reached.
        """
        full = self._key(key)
        whole = len(data) < self.transfer.multipart_threshold
        sha, etag = expected_sums(data, None if whole else self._part_size(len(data)))

        def upload_whole() -> Any:
            return self.client.put_object(Bucket=self.bucket, Key=full, Body=data, ChecksumSHA256=sha)

        def upload_parts() -> Any:
            self.client.upload_fileobj(io.BytesIO(data), self.bucket, full,
                                       ExtraArgs={"ChecksumAlgorithm": "SHA256"}, Config=self.transfer)
            return self.client.head_object(Bucket=self.bucket, Key=full, ChecksumMode="ENABLED")

        for _ in range(PUT_ATTEMPTS):
            reported = self._call("upload", key, upload_whole if whole else upload_parts)
            if stored_matches(reported, sha, etag) is not False:
                return
        raise Unavailable(f"S3 {self._where()} stored {key} with another checksum than was sent "
                          f"({PUT_ATTEMPTS} attempts)")

    def _part_size(self, size: int) -> int:
        """The part size boto3's managed transfer uses for an object of ``size`` bytes."""
        from s3transfer.utils import ChunksizeAdjuster

        return int(ChunksizeAdjuster().adjust_chunksize(self.transfer.multipart_chunksize, size))

    def get(self, key: str) -> bytes:
        full = self._key(key)

        def read() -> bytes:
            body = self.client.get_object(Bucket=self.bucket, Key=full)["Body"]
            try:
                return bytes(body.read())
            finally:
                body.close()
        data: bytes = self._call("download", key, read)
        return data

    def keys(self, prefix: str) -> list[str]:
        """Every key below ``prefix`` (a folder key, without a trailing slash), sorted; pages
        through ListObjectsV2 ``page_size`` keys at a time."""
        folder = self._key(prefix) + "/" if prefix else (f"{self.prefix}/" if self.prefix else "")
        strip = len(self.prefix) + 1 if self.prefix else 0

        def listing() -> Iterator[str]:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=folder, PaginationConfig={"PageSize": self.page_size})
            for page in pages:
                for obj in page.get("Contents", []):
                    yield obj["Key"][strip:]
        found = self._call("list", prefix or "/", lambda: list(listing()))
        return sorted(k for k in found if not k.rsplit("/", 1)[-1].startswith("."))

    def delete(self, key: str) -> None:
        full = self._key(key)
        self._call("delete", key, lambda: self.client.delete_object(Bucket=self.bucket, Key=full))


def _translate(exc: Exception, target: S3Target, op: str, key: str) -> NoReturn:
    """Raise the error-tree class for a boto3/botocore failure (others are re-raised as they are)."""
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    where = target._where()
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or code
        if code == "NoSuchBucket":
            raise NotFound(f"S3 {where} does not exist: create it first") from exc
        if code in ("NoSuchKey", "404") and op == "download":
            raise MissingFile(target.describe(), key) from exc
        if code in _AUTH_CODES:
            raise InvalidRequest(f"S3 {where} refused the credentials ({code}: {message}); check "
                                 f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE and the "
                                 f"bucket's permissions") from exc
        if code in _BUSY_CODES:
            raise Unavailable(f"S3 {where} is not available ({code}: {message}) during {op} of {key}",
                              retry_after_ms=1000) from exc
        raise VecraftError(f"S3 {where}: {op} of {key} failed ({code}: {message})") from exc
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        raise InvalidRequest(f"no AWS credentials for S3 {where}: set AWS_ACCESS_KEY_ID and "
                             f"AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)") from exc
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        raise Unavailable(f"cannot reach S3 {where} ({exc})", retry_after_ms=1000) from exc
    if isinstance(exc, BotoCoreError | Boto3Error):
        raise VecraftError(f"S3 {where}: {op} of {key} failed ({exc})") from exc
    raise exc
