"""Backup and point-in-time restore of a running cluster (real processes, the real CLI).

A reference history of acknowledged writes (each with the HLC the journal gave
it) is kept while a background writer goes on during the backup. Restores to
several moments must hold exactly the writes with HLC <= the moment: compared
entry by entry with the source journal, and record by record (strong reads) on
a cluster started on the restored directory. A transaction is restored whole or
not at all. A damaged backup file is named by ``verify`` and by ``restore``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import LocalCluster
from tests.support.e2e import vec
from tests.support.waits import until
from vecraft.clients.journal import JournalClient
from vecraft.services.journal_service.wal.records import iter_records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DIM = 4


@dataclass(frozen=True)
class Write:
    hlc: int
    #: id -> vector (None: deleted)
    effects: dict[str, list[float] | None]


def vecraft(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "vecraft", *map(str, args)], capture_output=True, text=True,
                          timeout=120, stdin=subprocess.DEVNULL)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def state_at(history: list[Write], hlc: int) -> dict[str, list[float]]:
    state: dict[str, list[float] | None] = {}
    for write in sorted(history, key=lambda w: w.hlc):
        if write.hlc <= hlc:
            state.update(write.effects)
    return {k: v for k, v in state.items() if v is not None}


class Writer:
    def __init__(self, endpoint: str) -> None:
        self.client = httpx.Client(base_url=endpoint, timeout=30.0)
        self.history: list[Write] = []
        self.lock = threading.Lock()

    def _done(self, r: httpx.Response, effects: dict[str, list[float] | None]) -> int:
        assert r.status_code in (200, 201), r.text
        hlc = int(r.json()["hlc"])
        with self.lock:
            self.history.append(Write(hlc, effects))
        return hlc

    def insert(self, ids: list[str], seed: int) -> int:
        vectors = [vec(seed + i, DIM) for i in range(len(ids))]
        r = self.client.post("/v1/vectors/batch", json={"collection": "docs", "ids": ids, "vectors": vectors})
        return self._done(r, dict(zip(ids, vectors, strict=True)))

    def delete(self, ids: list[str]) -> int:
        r = self.client.post("/v1/vectors/delete", json={"collection": "docs", "ids": ids})
        return self._done(r, dict.fromkeys(ids))

    def transaction(self, insert: list[str], delete: list[str], seed: int) -> int:
        vectors = [vec(seed + i, DIM) for i in range(len(insert))]
        r = self.client.post("/v1/transactions", json={"operations": [
            {"op": "insert", "collection": "docs", "ids": insert, "vectors": vectors},
            {"op": "delete", "collection": "docs", "ids": delete}]})
        effects: dict[str, list[float] | None] = dict.fromkeys(delete)
        effects.update(zip(insert, vectors, strict=True))
        return self._done(r, effects)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    c = LocalCluster(Path(tmp_path_factory.mktemp("backup-src")) / "data", shards=2)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def journal_entries(address: str) -> dict[str, list[tuple[int, int, bytes]]]:
    async def pull() -> dict[str, list[tuple[int, int, bytes]]]:
        client = JournalClient(address)
        try:
            heads = await client.get_offsets()
            out = {}
            for p, (head, _) in heads.items():
                entries = await client.pull(p, 1, head) if head else []
                out[p] = [(e.offset, e.hlc, e.payload) for e in entries]
            return out
        finally:
            await client.close()
    return asyncio.run(pull())


def restored_entries(data_dir: Path) -> dict[str, list[tuple[int, int, bytes]]]:
    out = {}
    for part_dir in sorted((data_dir / "journal").iterdir()):
        if not part_dir.is_dir():
            continue
        entries = []
        for seg in sorted(part_dir.glob("*.wal")):
            for _, rec in iter_records(seg.read_bytes()):
                entries.append((rec.offset, rec.hlc, rec.payload))
        out[part_dir.name] = entries
    return out


def test_backup_during_writes_then_restore_to_moments(cluster: LocalCluster, tmp_path: Path) -> None:
    target = tmp_path / "backups"
    writer = Writer(cluster.endpoint)
    r = writer.client.post("/v1/collections", json={"name": "docs", "dim": DIM, "metric": "l2"})
    assert r.status_code == 201, r.text
    writer.insert([f"a{i}" for i in range(20)], seed=0)
    writer.delete(["a0", "a1"])

    # A background writer goes on while the backup is taken.
    stop = threading.Event()

    def keep_writing() -> None:
        n = 0
        while not stop.is_set() and n < 200:
            writer.insert([f"bg{n}"], seed=1000 + n)
            n += 1

    background = threading.Thread(target=keep_writing)
    background.start()
    try:
        first = vecraft("backup", "create", "--target", target, "--data-dir", cluster.data_dir)
    finally:
        stop.set()
        background.join()
    assert "2 of 2 shards' files" in first.stdout, first.stdout

    t_before = writer.insert(["t-keep"], seed=500)
    txn = writer.transaction(insert=["t1", "t2", "t3"], delete=["a2", "t-keep"], seed=600)
    writer.insert(["after"], seed=700)
    writer.delete(["a3"])
    vecraft("backup", "create", "--target", target, "--data-dir", cluster.data_dir)
    writer.insert(["not-backed-up"], seed=800)

    backups = json.loads(vecraft("backup", "list", "--target", target, "--json").stdout)
    assert len(backups) == 2 and backups[0]["hlc"] < backups[1]["hlc"]
    vecraft("backup", "verify", "--target", target)

    journal_address = cluster.process("journal")["grpc_address"]
    source = journal_entries(journal_address)

    def expect(cut_hlc: int) -> dict[str, list[tuple[int, int, bytes]]]:
        return {p: [e for e in entries if e[1] <= cut_hlc] for p, entries in source.items()}

    # 1. The first backup's own cut (taken while the background writer ran).
    out1 = tmp_path / "r1"
    vecraft("restore", backups[0]["id"], "--target", target, "--data-dir", out1)
    assert restored_entries(out1) == expect(backups[0]["hlc"])
    # 2. Just before the transaction: none of it; at the transaction: all of it.
    out2, out3 = tmp_path / "r2", tmp_path / "r3"
    vecraft("restore", "latest", "--target", target, "--data-dir", out2, "--to-hlc", str(txn - 1))
    assert restored_entries(out2) == expect(txn - 1)
    done = vecraft("restore", "latest", "--target", target, "--data-dir", out3, "--to-hlc", str(txn))
    assert restored_entries(out3) == expect(txn)
    assert "collection default/docs" in done.stdout
    # The second backup's shard files reflect entries past the transaction: the first backup's
    # are restored instead, and the storage nodes replay the rest from the restored journal.
    first_copies = {int(s): c for s, c in backups[0]["shards"].items()}
    assert sorted(first_copies) == [0, 1]
    for shard, copy in first_copies.items():
        at = ", ".join(f"{p} {off}" for p, (off, _) in sorted(copy["applied"].items()))
        assert f"shard {shard}: files at {at}" in done.stdout, done.stdout
        assert (out3 / "storage" / f"node-{shard % 2}" / f"shard-{shard}" / "records.bin").is_file()
    # 3. By offset: the entry of the write before the transaction.
    data_partition = next(p for p, entries in source.items() if any(e[1] == t_before for e in entries))
    offset = next(e[0] for e in source[data_partition] if e[1] == t_before)
    out4 = tmp_path / "r4"
    vecraft("restore", "latest", "--target", target, "--data-dir", out4, "--to-offset",
            f"{data_partition}:{offset}")
    assert restored_entries(out4) == expect(t_before)
    # Past the newest backup: refused, nothing written.
    late = vecraft("restore", "latest", "--target", target, "--data-dir", tmp_path / "r5", "--to-hlc",
                   str(backups[1]["hlc"] + (10 << 16)), check=False)
    assert late.returncode == 1 and "create a backup first" in late.stderr
    assert not (tmp_path / "r5").exists()

    # The restored cluster at the transaction's HLC serves exactly that state.
    expected = state_at(writer.history, txn)
    assert {"t1", "t2", "t3"} <= expected.keys() and "t-keep" not in expected
    restored = LocalCluster(out3, shards=2)
    restored.start()
    try:
        with httpx.Client(base_url=restored.endpoint, timeout=30.0) as c:
            # The meta manager rebuilds the catalog from the system partition after it is ready.
            asyncio.run(until(lambda: c.get("/v1/collections/docs").status_code == 200, timeout=60))
            every_id = {i for w in writer.history for i in w.effects}
            for record_id in sorted(every_id):
                got = c.get(f"/v1/vectors/{record_id}", params={"collection": "docs",
                                                                "consistency_level": "strong",
                                                                "include_vector": "true"})
                if record_id in expected:
                    assert got.status_code == 200, (record_id, got.text)
                    assert got.json()["vector"] == pytest.approx(expected[record_id]), record_id
                else:
                    assert got.status_code == 404, (record_id, got.text)
        # The storage nodes opened the restored files (index snapshots included), not an empty state.
        logs = "".join((out3 / "logs" / f"{row['name']}.log").read_text()
                       for row in restored.processes("storage"))
        opened = [json.loads(line) for line in logs.splitlines() if '"local state open"' in line]
        assert len(opened) == 2 and all(o["from_snapshot"] for o in opened), opened
        assert sorted(o["applied"]["data-0"] for o in opened) == sorted(
            c["applied"]["data-0"][0] for c in first_copies.values())
        assert "damaged" not in logs
        # The restored cluster's journal is another history than the target's archive (it ends
        # before the archive does): backing it up to the same target is refused.
        refused = vecraft("backup", "create", "--target", target, "--data-dir", out3, check=False)
        assert refused.returncode == 1 and "another journal history" in refused.stderr, refused.stderr
        assert len(json.loads(vecraft("backup", "list", "--target", target, "--json").stdout)) == 2
    finally:
        restored.stop()


def test_a_damaged_backup_file_is_named(cluster: LocalCluster, tmp_path: Path) -> None:
    target = tmp_path / "backups"
    with httpx.Client(base_url=cluster.endpoint, timeout=30.0) as c:
        c.post("/v1/collections", json={"name": "dmg", "dim": DIM, "metric": "l2"})
        r = c.post("/v1/vectors/batch", json={"collection": "dmg", "ids": ["x", "y"],
                                              "vectors": [vec(1, DIM), vec(2, DIM)]})
        assert r.status_code == 201, r.text
    vecraft("backup", "create", "--target", target, "--data-dir", cluster.data_dir)
    chunk = sorted((target / "journal").glob("*/*.entries"))[-1]
    data = bytearray(chunk.read_bytes())
    data[len(data) // 2] ^= 0xFF
    chunk.write_bytes(bytes(data))
    name = chunk.relative_to(target).as_posix()

    checked = vecraft("backup", "verify", "--target", target, check=False)
    assert checked.returncode == 1 and name in checked.stderr and "checksum" in checked.stderr
    restored = vecraft("restore", "latest", "--target", target, "--data-dir", tmp_path / "out", check=False)
    assert restored.returncode == 1 and name in restored.stderr
    assert not (tmp_path / "out").exists()


def test_a_killed_backup_leaves_a_restorable_target(cluster: LocalCluster, tmp_path: Path) -> None:
    """kill -9 of `vecraft backup create` at spread-out moments: every listed backup verifies and
    restores; the next backup completes over whatever the killed one left."""
    target = tmp_path / "backups"
    with httpx.Client(base_url=cluster.endpoint, timeout=30.0) as c:
        c.post("/v1/collections", json={"name": "killed", "dim": DIM, "metric": "l2"})
        for batch in range(10):
            ids = [f"k{batch}-{i}" for i in range(200)]
            vectors = [vec(batch * 1000 + i, DIM) for i in range(200)]
            r = c.post("/v1/vectors/batch", json={"collection": "killed", "ids": ids, "vectors": vectors})
            assert r.status_code == 201, r.text
    command = [sys.executable, "-m", "vecraft", "backup", "create", "--target", str(target), "--data-dir",
               str(cluster.data_dir)]
    for delay_s in (0.3, 0.6, 0.9, 1.2):
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                stdin=subprocess.DEVNULL)
        try:
            proc.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        vecraft("backup", "verify", "--target", target)
    vecraft("backup", "create", "--target", target, "--data-dir", cluster.data_dir)
    vecraft("backup", "verify", "--target", target)
    listed = json.loads(vecraft("backup", "list", "--target", target, "--json").stdout)
    for i, backup in enumerate(listed):
        vecraft("restore", backup["id"], "--target", target, "--data-dir", tmp_path / f"r{i}")
