"""S3 target URLs, the checksums S3 reports, and what open_target does without boto3 (no server)."""

from __future__ import annotations

import base64
import hashlib
import sys

import pytest

from vecraft.services.snapshot_service.s3_target import S3Target, expected_sums, stored_matches
from vecraft.services.snapshot_service.target import DirectoryTarget, open_target
from vecraft.shared.common.errors import InvalidRequest

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    # Dummy credentials: building a client must never look for real ones (or ask an instance's
    # metadata service).
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_a_url_names_bucket_prefix_endpoint_and_region_and_describe_gives_it_back() -> None:
    url = "s3://my-bucket/backups/prod?endpoint_url=http://127.0.0.1:9000&region=eu-west-1"
    target = open_target(url)
    assert isinstance(target, S3Target)
    assert (target.bucket, target.prefix, target.endpoint_url, target.region) == \
        ("my-bucket", "backups/prod", "http://127.0.0.1:9000", "eu-west-1")
    assert target.describe() == url
    assert target.client.meta.region_name == "eu-west-1"
    again = open_target(target.describe())
    assert isinstance(again, S3Target) and again.describe() == url
    bare = open_target("s3://my-bucket/")
    assert isinstance(bare, S3Target) and bare.prefix == "" and bare.describe() == "s3://my-bucket"
    assert isinstance(open_target("/tmp/x"), DirectoryTarget)


@pytest.mark.parametrize(("url", "says"), [
    ("s3://", "bad S3 bucket name"),
    ("s3://Upper/x", "bad S3 bucket name"),
    ("s3://a/x", "bad S3 bucket name"),
    ("s3://key:secret@bucket/x", "credentials do not go in"),
    ("s3://bucket/a//b", "bad S3 prefix"),
    ("s3://bucket/a/../b", "bad S3 prefix"),
    ("s3://bucket/x?endpoint=http://h:1", "unknown option 'endpoint'"),
    ("s3://bucket/x?region=", "empty region"),
    ("s3://bucket/x?endpoint_url=127.0.0.1:9000", "bad endpoint_url"),
    ("gs://bucket/x", "unsupported backup target"),
])
def test_a_bad_url_is_an_invalid_request_that_says_why(url: str, says: str) -> None:
    with pytest.raises(InvalidRequest, match=says.replace("(", r"\(")):
        open_target(url)


@pytest.mark.parametrize("key", ["", "/abs", "a//b", "a/../b", "./a"])
def test_bad_keys_are_refused(key: str) -> None:
    target = open_target("s3://bucket/x?endpoint_url=http://127.0.0.1:1")
    with pytest.raises(InvalidRequest, match="bad backup file name"):
        target.put(key, b"")


def test_without_boto3_the_message_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(InvalidRequest, match=r'pip install "vecraft\[s3\]"'):
        open_target("s3://bucket/x")


def test_expected_sums_whole_and_in_parts() -> None:
    data = bytes(range(256)) * 100
    sha, etag = expected_sums(data, None)
    assert sha == base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert etag == hashlib.md5(data).hexdigest()
    parts = [data[:10_000], data[10_000:20_000], data[20_000:]]
    sha3, etag3 = expected_sums(data, 10_000)
    assert sha3 == base64.b64encode(hashlib.sha256(b"".join(hashlib.sha256(p).digest()
                                                            for p in parts)).digest()).decode() + "-3"
    assert etag3 == hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + "-3"


def test_the_checksum_decides_then_an_md5_etag_then_nothing() -> None:
    sha, etag = expected_sums(b"abc", None)
    other_sha, other_etag = expected_sums(b"abd", None)
    assert stored_matches({"ChecksumSHA256": sha, "ETag": '"whatever"'}, sha, etag) is True
    assert stored_matches({"ChecksumSHA256": other_sha, "ETag": f'"{etag}"'}, sha, etag) is False
    assert stored_matches({"ETag": f'"{etag}"'}, sha, etag) is True
    assert stored_matches({"ETag": f'"{other_etag}"'}, sha, etag) is False
    # An ETag that is no MD5 (e.g. SSE-KMS) proves nothing either way.
    assert stored_matches({"ETag": '"not-an-md5"'}, sha, etag) is None
    psha, petag = expected_sums(b"x" * 30, 10)
    assert stored_matches({"ChecksumSHA256": psha.split("-")[0]}, psha, petag) is True
    assert stored_matches({"ETag": f'"{petag}"'}, psha, petag) is True

