"""The S3 target against a real S3-compatible server on loopback (moto's server mode, a child process).

Round trips of put/get/keys/delete, ListObjectsV2 paging, a multipart upload,
an upload altered on the way (detected and sent again), and the errors a user
meets: a missing bucket, refused credentials, no credentials, an unreachable
endpoint.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from vecraft.bench._moto import CREDENTIALS, MotoServer
from vecraft.local.process import free_port
from vecraft.services.snapshot_service import s3_target
from vecraft.services.snapshot_service.s3_target import S3Target
from vecraft.services.snapshot_service.target import MissingFile, open_target
from vecraft.shared.common.errors import InvalidRequest, NotFound, Unavailable

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

BUCKET = "vecraft-unit"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with pytest.MonkeyPatch.context() as env:
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        with MotoServer(tmp_path_factory.mktemp("moto") / "moto.log") as server:
            server.create_bucket(BUCKET)
            yield server


@pytest.fixture
def target(moto: MotoServer, request: pytest.FixtureRequest) -> S3Target:
    # A prefix per test: tests share the bucket, never each other's keys.
    t = open_target(moto.url(BUCKET, f"t/{request.node.name}"))
    assert isinstance(t, S3Target)
    return t


def count_calls(target: S3Target, operation: str) -> list[str]:
    calls: list[str] = []
    target.client.meta.events.register(f"before-call.s3.{operation}",
                                       lambda **kw: calls.append(operation))
    return calls


def test_put_get_keys_delete_round_trip(target: S3Target, moto: MotoServer) -> None:
    assert target.keys("") == [] and target.keys("journal") == []
    files = {"journal/data-0/1-10.entries": b"\x00\x01" * 100, "journal/data-0/manifest.json": b"{}",
             "journalx/other": b"sibling", "blobs/abc": b"", "backups/b1.json": b'{"id": "b1"}'}
    for key, data in files.items():
        target.put(key, data)
    for key, data in files.items():
        assert target.get(key) == data
    assert target.keys("") == sorted(files)
    # A folder key: its own keys, not a sibling that shares the first letters.
    assert target.keys("journal") == ["journal/data-0/1-10.entries", "journal/data-0/manifest.json"]
    assert target.keys("journal/data-0") == target.keys("journal")
    target.put("backups/b1.json", b"replaced")
    assert target.get("backups/b1.json") == b"replaced"
    target.delete("blobs/abc")
    target.delete("blobs/abc")  # deleting what is gone is fine
    assert target.keys("blobs") == []
    with pytest.raises(MissingFile) as missing:
        target.get("blobs/abc")
    assert missing.value.key == "blobs/abc" and "blobs/abc is missing from s3://" in str(missing.value)
    # The described URL opens the same keys; another prefix of the bucket sees none of them.
    assert open_target(target.describe()).keys("") == target.keys("")
    assert open_target(moto.url(BUCKET, "t/elsewhere")).keys("journal") == []


def test_keys_pages_through_list_objects(target: S3Target) -> None:
    names = [f"journal/p/{i:04d}" for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: target.put(k, b"x"), names))
    target.page_size = 7
    calls = count_calls(target, "ListObjectsV2")
    assert target.keys("journal") == names
    assert len(calls) == 6  # ceil(40 / 7)


def test_more_than_one_thousand_keys_at_the_default_page_size(target: S3Target) -> None:
    names = [f"blobs/{i:05d}" for i in range(1001)]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: target.put(k, b""), names))
    calls = count_calls(target, "ListObjectsV2")
    assert target.keys("blobs") == names
    assert len(calls) == 2


def test_a_big_object_goes_up_in_parts_and_comes_back_whole(moto: MotoServer) -> None:
    target = S3Target(BUCKET, "t/multipart", endpoint_url=moto.endpoint, multipart_threshold=5 * 2**20,
                      multipart_chunk=5 * 2**20)
    data = os.urandom(11 * 2**20 + 123)
    parts = count_calls(target, "UploadPart")
    puts = count_calls(target, "PutObject")
    target.put("blobs/big", data)
    assert len(parts) == 3 and puts == []
    head = target.client.head_object(Bucket=BUCKET, Key="t/multipart/blobs/big", ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-3") and head["ContentLength"] == len(data)
    assert head["ChecksumSHA256"].split("-")[0] == \
        s3_target.expected_sums(data, 5 * 2**20)[0].split("-")[0]
    assert target.get("blobs/big") == data
    small = os.urandom(1000)
    target.put("blobs/small", small)
    assert len(puts) == 1 and target.get("blobs/small") == small


def test_an_upload_altered_on_the_way_is_detected_and_sent_again(target: S3Target) -> None:
    """One byte of the request body flipped after the SHA-256 header was computed: moto stores
    what arrives without checking that header (S3 would refuse it), and the ETag it reports is
    not the data's, so the target uploads again."""
    altered: list[int] = []

    def alter_first(request: Any, **kw: Any) -> None:
        if not altered:
            body = bytearray(request.body.read())
            body[len(body) // 2] ^= 0xFF
            request.body = io.BytesIO(bytes(body))
            altered.append(1)

    target.client.meta.events.register("before-send.s3.PutObject", alter_first)
    data = b"journal chunk " * 1000
    target.put("journal/p/1-2.entries", data)
    assert altered == [1]
    assert target.get("journal/p/1-2.entries") == data

    def alter_every(request: Any, **kw: Any) -> None:
        altered.clear()
        alter_first(request)

    target.client.meta.events.unregister("before-send.s3.PutObject", alter_first)
    target.client.meta.events.register("before-send.s3.PutObject", alter_every)
    with pytest.raises(Unavailable, match="another checksum than was sent"):
        target.put("journal/p/3-4.entries", data)


def test_a_missing_bucket_is_named(moto: MotoServer) -> None:
    target = open_target(moto.url("no-such-bucket", "x"))
    for call in (lambda: target.keys(""), lambda: target.put("a", b"x"), lambda: target.get("a")):
        with pytest.raises(NotFound, match=r"S3 bucket 'no-such-bucket' at http://127\.0\.0\.1:\d+ does not "
                                           r"exist: create it first"):
            call()


def test_refused_and_missing_credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A second server that checks credentials: it knows no access key.
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "0")
    with MotoServer(tmp_path / "auth.log") as strict:
        monkeypatch.delenv("INITIAL_NO_AUTH_ACTION_COUNT")
        target = open_target(strict.url("any-bucket"))
        with pytest.raises(InvalidRequest, match=r"refused the credentials \(InvalidAccessKeyId"):
            target.keys("")
        with pytest.raises(InvalidRequest, match="AWS_ACCESS_KEY_ID"):
            target.put("k", b"x")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    nobody = open_target(f"s3://{BUCKET}/x?endpoint_url=http://127.0.0.1:{free_port()}")
    with pytest.raises(InvalidRequest, match=r"no AWS credentials .* set AWS_ACCESS_KEY_ID"):
        nobody.keys("")


def test_an_unreachable_endpoint_is_unavailable(moto: MotoServer) -> None:
    target = open_target(f"s3://{BUCKET}/x?endpoint_url=http://127.0.0.1:{free_port()}")
    with pytest.raises(Unavailable, match=r"cannot reach S3 bucket 'vecraft-unit' at http://127\.0\.0\.1"):
        target.get("a")
    with pytest.raises(Unavailable, match="cannot reach"):
        target.put("a", b"x")
