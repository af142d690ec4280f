"""The whole backup flow against an S3-compatible server (moto's server mode on loopback).

A cluster (real processes, ``vecraft up``) takes writes; ``vecraft backup create
--target s3://...`` archives the journal and has each shard's storage node upload
its files to the bucket; ``verify`` checks every object; ``vecraft restore`` from
the bucket writes a new data dir compared entry by entry with the source
journal, and a cluster started on it serves the restored records. A damaged
object is named by ``verify`` and by ``restore``; a missing bucket, an
unreachable endpoint and a bad URL are one clear line from the CLI, never a
traceback.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from tests.integration.backup.test_backup_restore_e2e import (
    DIM,
    Writer,
    journal_entries,
    restored_entries,
    state_at,
    vecraft,
)
from tests.support.cluster import LocalCluster
from tests.support.waits import until
from vecraft.bench._moto import CREDENTIALS, MotoServer
from vecraft.local.process import free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

BUCKET = "vecraft-backups"


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    # Dummy credentials in this process's environment: the CLI, the cluster's storage nodes
    # (which upload their shard files themselves) and boto3 here all inherit them.
    with pytest.MonkeyPatch.context() as env:
        for name, value in CREDENTIALS.items():
            env.setenv(name, value)
        env.setenv("AWS_EC2_METADATA_DISABLED", "true")
        with MotoServer(tmp_path_factory.mktemp("moto") / "moto.log") as server:
            server.create_bucket(BUCKET)
            yield server


@pytest.fixture(scope="module")
def cluster(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    c = LocalCluster(Path(tmp_path_factory.mktemp("s3-src")) / "data", shards=2)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def s3_client(moto: MotoServer) -> Any:
    return boto3.client("s3", endpoint_url=moto.endpoint, region_name="us-east-1")


def test_backup_to_s3_verify_and_restore(cluster: LocalCluster, moto: MotoServer, tmp_path: Path) -> None:
    target = moto.url(BUCKET, "flow")
    writer = Writer(cluster.endpoint)
    r = writer.client.post("/v1/collections", json={"name": "docs", "dim": DIM, "metric": "l2"})
    assert r.status_code == 201, r.text
    writer.insert([f"a{i}" for i in range(30)], seed=0)
    writer.delete(["a0", "a1"])
    first = vecraft("backup", "create", "--target", target, "--data-dir", cluster.data_dir)
    assert "2 of 2 shards' files" in first.stdout and f"in {target}" in first.stdout, first.stdout
    txn = writer.transaction(insert=["t1", "t2"], delete=["a2"], seed=600)
    writer.insert(["after"], seed=700)
    vecraft("backup", "create", "--target", target, "--data-dir", cluster.data_dir)
    writer.insert(["not-backed-up"], seed=800)

    backups = json.loads(vecraft("backup", "list", "--target", target, "--json").stdout)
    assert len(backups) == 2 and backups[0]["hlc"] < backups[1]["hlc"]
    checked = vecraft("backup", "verify", "--target", target)
    assert "every file present and its checksum correct" in checked.stdout

    # What is in the bucket: the layout of a directory target, under the prefix.
    pages = s3_client(moto).get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="flow/")
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert {k.split("/")[1] for k in keys} == {"journal", "blobs", "backups"}
    assert sum(k.startswith("flow/backups/") for k in keys) == 2

    source = journal_entries(cluster.process("journal")["grpc_address"])

    def expect(cut_hlc: int) -> dict[str, list[tuple[int, int, bytes]]]:
        return {p: [e for e in entries if e[1] <= cut_hlc] for p, entries in source.items()}

    latest = tmp_path / "latest"
    done = vecraft("restore", "latest", "--target", target, "--data-dir", latest)
    assert restored_entries(latest) == expect(backups[1]["hlc"])
    # Every shard's files came down from the bucket.
    for shard in (0, 1):
        assert f"shard {shard}: files at" in done.stdout, done.stdout
        assert (latest / "storage" / f"node-{shard % 2}" / f"shard-{shard}" / "records.bin").is_file()
    before_txn = tmp_path / "before-txn"
    vecraft("restore", "latest", "--target", target, "--data-dir", before_txn, "--to-hlc", str(txn - 1))
    assert restored_entries(before_txn) == expect(txn - 1)

    expected = state_at(writer.history, backups[1]["hlc"])
    restored = LocalCluster(latest, shards=2)
    restored.start()
    try:
        with httpx.Client(base_url=restored.endpoint, timeout=30.0) as c:
            asyncio.run(until(lambda: c.get("/v1/collections/docs").status_code == 200, timeout=60))
            for record_id in sorted({i for w in writer.history for i in w.effects}):
                got = c.get(f"/v1/vectors/{record_id}", params={
                    "collection": "docs", "consistency_level": "strong", "include_vector": "true"})
                if record_id in expected:
                    assert got.status_code == 200, (record_id, got.text)
                    assert got.json()["vector"] == pytest.approx(expected[record_id]), record_id
                else:
                    assert got.status_code == 404, (record_id, got.text)
    finally:
        restored.stop()


def test_a_damaged_object_is_named(cluster: LocalCluster, moto: MotoServer, tmp_path: Path) -> None:
    target = moto.url(BUCKET, "damaged")
    with httpx.Client(base_url=cluster.endpoint, timeout=30.0) as c:
        c.post("/v1/collections", json={"name": "dmg", "dim": DIM, "metric": "l2"})
        r = c.post("/v1/vectors/batch", json={"collection": "dmg", "ids": ["x", "y"],
                                              "vectors": [[1.0] * DIM, [2.0] * DIM]})
        assert r.status_code == 201, r.text
    vecraft("backup", "create", "--target", target, "--data-dir", cluster.data_dir)
    s3 = s3_client(moto)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="damaged/")["Contents"]]
    chunk = sorted(k for k in keys if k.endswith(".entries"))[-1]
    blob = sorted(k for k in keys if k.startswith("damaged/blobs/"))[0]
    for key in (chunk, blob):
        data = bytearray(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        data[len(data) // 2] ^= 0xFF
        s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(data))

    checked = vecraft("backup", "verify", "--target", target, check=False)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    for key in (chunk, blob):
        assert key.removeprefix("damaged/") in checked.stderr, checked.stderr
    assert "checksum" in checked.stderr
    restored = vecraft("restore", "latest", "--target", target, "--data-dir", tmp_path / "out", check=False)
    assert restored.returncode == 1 and chunk.removeprefix("damaged/") in restored.stderr, restored.stderr
    assert not (tmp_path / "out").exists()


def test_cli_errors_are_one_clear_line(moto: MotoServer, tmp_path: Path) -> None:
    missing = vecraft("backup", "list", "--target", moto.url("no-such-bucket"), check=False)
    assert missing.returncode == 1
    assert "S3 bucket 'no-such-bucket'" in missing.stderr and "does not exist" in missing.stderr
    down = f"s3://{BUCKET}/x?endpoint_url=http://127.0.0.1:{free_port()}"
    unreachable = vecraft("restore", "latest", "--target", down, "--data-dir", tmp_path / "o", check=False)
    assert unreachable.returncode == 1 and "cannot reach S3" in unreachable.stderr
    bad = vecraft("backup", "verify", "--target", "s3://Bad_Bucket/x", check=False)
    assert bad.returncode == 1 and "bad S3 bucket name" in bad.stderr
    for done in (missing, unreachable, bad):
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
