"""A restored cluster records its restore in the audit log exactly once (docs/backup.md, docs/audit.md).

Real processes: a cluster is backed up with the CLI, restored into a new data directory and
started with ``vecraft up``. ``GET /v1/audit`` then shows one ``backup.restore`` entry, after the
cut. Restarts keep it one, also when the marker written after the append is lost (a crash
between the two): after a full restart (the journal's request ids come back from its files) and
after kill -9 of the meta manager.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.cluster import LocalCluster
from tests.support.waits import until
from vecraft.services.meta_manager.restore_audit import AUDITED

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def vecraft(*args: str | Path) -> str:
    done = subprocess.run([sys.executable, "-m", "vecraft", *map(str, args)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def restores(endpoint: str) -> list[dict[str, Any]]:
    got = httpx.get(f"{endpoint}/v1/audit", params={"action": "backup", "limit": 1000}, timeout=30.0)
    assert got.status_code == 200, got.text
    return [e for e in got.json()["entries"] if e["action"] == "backup.restore"]


def wait_marker(data_dir: Path) -> dict[str, Any]:
    asyncio.run(until(lambda: (data_dir / AUDITED).exists(), timeout=60))
    return dict(json.loads((data_dir / AUDITED).read_text()))


def test_a_restore_is_recorded_once_across_restarts(tmp_path: Path) -> None:
    source = LocalCluster(tmp_path / "src", shards=1).start()
    try:
        r = httpx.post(f"{source.endpoint}/v1/collections", json={"name": "docs", "dim": 4, "metric": "l2"},
                       timeout=30.0)
        assert r.status_code == 201, r.text
        target = tmp_path / "backups"
        vecraft("backup", "create", "--target", target, "--data-dir", source.data_dir)
    finally:
        source.stop()
    backup = json.loads(vecraft("backup", "list", "--target", target, "--json"))[0]["id"]
    out = tmp_path / "restored"
    vecraft("restore", backup, "--target", target, "--data-dir", out)
    origin = json.loads((out / "restored-from.json").read_text())
    assert origin["restored_by"] and origin["moment"] == {} and origin["restored_at_ms"] > 0
    cut = origin["partitions"]["system"][1]

    restored = LocalCluster(out, shards=1).start()
    try:
        first = wait_marker(out)
        [entry] = restores(restored.endpoint)
        assert entry["offset"] == first["offset"] > cut  # after the cut, not inside it
        assert entry["target"] == backup and entry["outcome"] == "ok"
        assert entry["actor"]["key_name"] == f"cli:{origin['restored_by']}"
        assert entry["details"]["backup"] == backup
        assert entry["details"]["last_offsets"] == {p: v[1] for p, v in origin["partitions"].items()}

        # A full restart that lost the marker (a crash after the append): the journal dedups.
        restored.stop()
        (out / AUDITED).unlink()
        restored.start()
        assert wait_marker(out)["offset"] == first["offset"]
        assert [e["offset"] for e in restores(restored.endpoint)] == [first["offset"]]

        # kill -9 of the meta manager, the marker lost again: still one entry.
        (out / AUDITED).unlink()
        old = restored.kill("meta")
        restored.wait_restarted("meta", old)
        assert wait_marker(out)["offset"] == first["offset"]
        assert [e["offset"] for e in restores(restored.endpoint)] == [first["offset"]]

        # With the marker kept, a restart appends nothing and reads nothing back.
        before = os.stat(out / AUDITED).st_mtime_ns
        old = restored.kill("meta")
        restored.wait_restarted("meta", old)
        assert [e["offset"] for e in restores(restored.endpoint)] == [first["offset"]]
        assert os.stat(out / AUDITED).st_mtime_ns == before
    finally:
        restored.stop()
