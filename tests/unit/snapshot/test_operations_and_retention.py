"""Operation tracking and the retention policy of the snapshot service (in process)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vecraft.services.snapshot_service.backups import Retention, list_backups, prune, sweep_blobs
from vecraft.services.snapshot_service.layout import backup_key, blob_key
from vecraft.services.snapshot_service.operations import Operations
from vecraft.services.snapshot_service.target import DirectoryTarget
from vecraft.shared.common.errors import Conflict, InvalidRequest

pytestmark = pytest.mark.unit


async def test_one_operation_at_a_time_and_outcomes_are_kept() -> None:
    ops = Operations()
    release = asyncio.Event()

    async def slow(op):  # type: ignore[no-untyped-def]
        op.progress("archive", 1, 2)
        await release.wait()
        return {"ok": True}

    async def broken(op):  # type: ignore[no-untyped-def]
        raise InvalidRequest("bad target")

    first = ops.start("backup", slow)
    await asyncio.sleep(0)
    with pytest.raises(Conflict) as refused:
        ops.start("backup", slow)
    assert first.id in refused.value.message
    assert ops.get(first.id).as_dict()["progress"] == {"phase": "archive", "done": 1, "total": 2}
    assert ops.writer.locked()
    release.set()
    while ops.get(first.id).state == "running":
        await asyncio.sleep(0.001)
    assert ops.get(first.id).result == {"ok": True} and not ops.writer.locked()
    failed = ops.start("verify", broken)
    while failed.state == "running":
        await asyncio.sleep(0.001)
    assert failed.state == "failed" and failed.error == "bad target"
    assert [o.id for o in ops.all()] == [first.id, failed.id]


def _backup(target: DirectoryTarget, n: int, created: datetime, blobs: list[str]) -> None:
    files = [{"path": f"f{i}", "sha256": b, "bytes": 1} for i, b in enumerate(blobs)]
    copy = {"shard": 0, "node_id": "storage-0", "applied": {"data-0": [n * 10, n * 1000]}, "files": files,
            "uploaded_bytes": 1, "seconds": 0.1}
    record = {"id": f"b{n}", "created": created.isoformat(timespec="seconds"),
              "partitions": {"data-0": [n * 10, n * 1000]}, "seconds": 0.1, "shards": {"0": copy},
              "shard_count": 1}
    target.put(backup_key(f"b{n}"), json.dumps(record).encode())
    for b in blobs:
        target.put(blob_key(b), b"x")


def test_retention_keeps_the_newest_and_sweeps_unshared_files(tmp_path: Path) -> None:
    target = DirectoryTarget(tmp_path)
    now = datetime(2026, 12, 4, tzinfo=UTC)
    _backup(target, 1, now - timedelta(days=10), ["aa", "shared"])
    _backup(target, 2, now - timedelta(days=5), ["bb", "shared"])
    _backup(target, 3, now - timedelta(days=1), ["cc", "shared"])
    _backup(target, 4, now, ["dd", "shared"])
    assert [b.id for b in prune(target, Retention(keep=3), now=now)] == ["b1"]
    assert [b.id for b in list_backups(target)] == ["b2", "b3", "b4"]
    assert sorted(k.rsplit("/", 1)[1] for k in target.keys("blobs")) == ["bb", "cc", "dd", "shared"]
    assert [b.id for b in prune(target, Retention(keep_days=2), now=now)] == ["b2"]
    # The newest backup is kept whatever its age.
    assert [b.id for b in prune(target, Retention(keep_days=0.5), now=now + timedelta(days=30))] == ["b3"]
    assert [b.id for b in list_backups(target)] == ["b4"]
    assert prune(target, Retention(keep=1), now=now) == []
    target.put(blob_key("orphan"), b"x")
    assert sweep_blobs(target) == 1
