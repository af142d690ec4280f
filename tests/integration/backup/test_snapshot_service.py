"""The snapshot service under `vecraft up --backup-target` (real processes).

Continuous archiving makes moments after the newest base backup restorable;
`vecraft backup create --data-dir` goes through the service (progress, operation
tracking); the retention policy deletes the oldest backups and their unshared
files; verify runs as a tracked operation of the admin API.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import LocalCluster
from tests.support.e2e import vec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DIM = 4


def vecraft(*args: str | Path) -> str:
    done = subprocess.run([sys.executable, "-m", "vecraft", *map(str, args)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def wait_for(predicate, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("snapshot-target"))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, target: Path) -> Iterator[LocalCluster]:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    mp = pytest.MonkeyPatch()
    # Read by the snapshot service from its environment (VECRAFT_* settings).
    mp.setenv("VECRAFT_ARCHIVE_INTERVAL_MS", "200")
    mp.setenv("VECRAFT_KEEP_BACKUPS", "2")
    c = LocalCluster(Path(tmp_path_factory.mktemp("snapshot-src")) / "data", shards=2,
                     extra_args=["--backup-target", str(target)])
    try:
        c.start()
        yield c
    finally:
        c.stop()
        mp.undo()


def test_backups_through_the_service_retention_and_archived_moments(cluster: LocalCluster, target: Path,
                                                                     tmp_path: Path) -> None:
    snapshot = cluster.process("snapshot")
    assert snapshot["health"] == "up"
    admin = httpx.Client(base_url=f"http://{snapshot['http_address']}", timeout=30.0)
    with httpx.Client(base_url=cluster.endpoint, timeout=30.0) as c:
        assert c.post("/v1/collections", json={"name": "docs", "dim": DIM, "metric": "l2"}).status_code == 201

        def insert(record_id: str, seed: int) -> int:
            r = c.post("/v1/vectors", json={"collection": "docs", "id": record_id, "vector": vec(seed, DIM)})
            assert r.status_code == 201, r.text
            return int(r.json()["hlc"])

        ids = []
        for n in range(3):
            ids.append(insert(f"b{n}", n))
            out = vecraft("backup", "create", "--data-dir", cluster.data_dir)
            assert f"in {target}" in out and "2 of 2 shards' files" in out, out
        # Keep 2: the third backup deleted the first, and the files only it named.
        assert "deleted backup" in out
        listed = admin.get("/v1/backups").json()["backups"]
        assert len(listed) == 2
        named = {f["sha256"] for b in listed for s in b["shards"].values() for f in s["files"]}
        assert {p.name for p in (target / "blobs").iterdir()} == named
        # The audit log holds the three backups and the deletion by retention, by the snapshot service.
        audit = c.get("/v1/audit", params={"action": "backup"}).json()["entries"]
        assert [(e["action"], e["outcome"], e["actor"]["key_name"]) for e in audit] == \
            [("backup.create", "ok", "snapshot service")] * 3 + [("backup.delete", "ok", "snapshot service")]
        created = [e["target"] for e in audit[:3]]
        assert audit[3]["target"] == created[0] and audit[3]["details"] == {"by": "retention"}
        assert [b["id"] for b in listed] == created[1:]
        assert all(e["details"]["trigger"] == "api" for e in audit[:3])

        # A write after the newest backup: restorable once the archiver has copied it.
        late = insert("late", 99)
        wait_for(lambda: json.loads((target / "journal" / "horizon.json").read_text())["hlc"] >= late)
        out_dir = tmp_path / "restored"
        restored = vecraft("restore", "latest", "--target", target, "--data-dir", out_dir, "--to-hlc", late)
        assert "collection default/docs: 4 rows" in restored, restored

    # verify as a tracked operation of the admin API
    op = admin.post(f"/v1/backups/{listed[-1]['id']}/verify").json()["operation"]
    done = wait_for(lambda: (o := admin.get(f"/v1/operations/{op['id']}").json())["state"] != "running" and o)
    assert done["state"] == "done" and done["result"]["ok"] is True, done
    metrics = admin.get("/metrics").text
    assert 'vecraft_snapshot_archived_offset_entries{partition="data-0"}' in metrics
    admin.close()


def test_a_node_with_an_empty_disk_starts_from_the_newest_backup(cluster: LocalCluster) -> None:
    with httpx.Client(base_url=cluster.endpoint, timeout=30.0) as c:
        assert c.post("/v1/collections", json={"name": "disk", "dim": DIM, "metric": "l2"}).status_code == 201
        ids = [f"d{i}" for i in range(300)]
        r = c.post("/v1/vectors/batch", json={"collection": "disk", "ids": ids,
                                              "vectors": [vec(5000 + i, DIM) for i in range(300)]})
        assert r.status_code == 201, r.text
        vecraft("backup", "create", "--data-dir", cluster.data_dir)
        r = c.post("/v1/vectors/batch", json={"collection": "disk", "ids": ["after-1", "after-2"],
                                              "vectors": [vec(1, DIM), vec(2, DIM)]})
        assert r.status_code == 201, r.text

        node = cluster.process("storage-0")
        disk = cluster.data_dir / "storage" / "node-0"
        shards = sorted(int(p.name.split("-")[1]) for p in disk.glob("shard-*"))
        assert shards
        # Freeze the node, wipe its disk, kill it: the supervisor restarts it on an empty disk.
        os.kill(node["pid"], signal.SIGSTOP)
        for child in disk.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        old = cluster.kill("storage-0")
        cluster.wait_restarted("storage-0", old)

        log = (cluster.data_dir / "logs" / "storage-0.log").read_text().splitlines()
        seeded = [json.loads(line) for line in log if '"shard replica seeded from a backup"' in line]
        assert sorted(s["shard"] for s in seeded) == shards, seeded
        metrics = httpx.get(f"http://{cluster.process('storage-0')['http_address']}/metrics").text
        assert f"vecraft_storage_seeded_replicas_total {float(len(shards))}" in metrics
        # Every write is there, the ones after the backup replayed from the journal.
        for record_id in [*ids[::37], "after-1", "after-2"]:
            got = c.get(f"/v1/vectors/{record_id}",
                        params={"collection": "disk", "consistency_level": "strong"})
            assert got.status_code == 200, (record_id, got.text)
