"""Journal GC through a real ``vecraft up`` (distributed: a journal, storage and query processes and the
compactor): the same ids rewritten again and again leave a journal that stops growing, every record is
still read back as last written, and kill -9 of a storage node, of a query processor or of the compactor
after the trim loses nothing (the storage node resumes from its files; the query processor, whose cache
the journal can no longer rebuild, answers through the storage nodes; the compactor goes on trimming).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft_client import VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DIM = 16
IDS = [f"r{i}" for i in range(200)]
ROUNDS = 20
#: Small segments so a trim has files to delete; a short idempotency window so entries may go at once.
ENV = {"VECRAFT_GC_INTERVAL_S": "0.3", "VECRAFT_SEGMENT_BYTES": "32768",
       "VECRAFT_REQUEST_ID_RETENTION_S": "1", "VECRAFT_TRIM_WITHOUT_BACKUP": "true"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("gc") / "data"
    running = LocalCluster(data_dir, shards=2, env=ENV).start()
    try:
        yield running
    finally:
        assert running.stop() == 0, running.tail()


def _journal_bytes(cluster: LocalCluster) -> int:
    return sum(p.stat().st_size for p in (cluster.data_dir / "journal" / "data-0").glob("*.wal"))


def _first_offset(cluster: LocalCluster) -> int:
    start = cluster.data_dir / "journal" / "data-0" / "START"
    return int(start.read_text()) if start.exists() else 1


def _vectors(round_: int) -> np.ndarray:
    rng = np.random.default_rng(round_)
    return rng.standard_normal((len(IDS), DIM)).astype(np.float32)


def _wait(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


def _check_every_record(client: VecraftClient, name: str, expected: np.ndarray) -> None:
    for i in range(0, len(IDS), 25):
        got = client.get_vector(IDS[i], collection=name, consistency_level="strong")
        np.testing.assert_allclose(got.vector, expected[i], rtol=1e-6)
    for i in (0, 77, 199):
        hits = client.vector_search(expected[i], k=1, collection=name, consistency_level="strong").results
        assert hits and hits[0].id == IDS[i]


def test_rewrites_keep_the_journal_bounded_and_nothing_is_lost(cluster: LocalCluster) -> None:
    name = f"gc_{uuid.uuid4().hex[:8]}"
    sizes = []
    with VecraftClient(cluster.endpoint, timeout=60.0) as client:
        client.create_collection(name, dim=DIM, metric="l2")
        for round_ in range(ROUNDS):
            client.upsert_vectors(_vectors(round_), IDS, collection=name, batch_size=50)
            sizes.append(_journal_bytes(cluster))
        last = _vectors(ROUNDS - 1)
        # Past the 1 s idempotency window the compactor trims what every consumer applied.
        _wait(lambda: _first_offset(cluster) > ROUNDS * 2, 60, f"journal never trimmed: {cluster.tail()}")
        written = max(sizes)
        assert _journal_bytes(cluster) < written / 2, (sizes, _journal_bytes(cluster))
        metrics = httpx.get(f"http://{cluster.process('compactor')['http_address']}/metrics").text
        assert float(re.search(r'vecraft_compactor_trimmed_entries_total\{partition="data-0"\} (\S+)',
                               metrics)[1]) > 0
        _check_every_record(client, name, last)
        # Reading the journal from its start: the page starts where the log now does, and says so.
        first = _first_offset(cluster)
        page = httpx.get(f"{cluster.endpoint}/v1/journal/data-0",
                         params={"from_offset": 1, "limit": 3}).json()
        assert "trimmed_before" in page, page
        assert page["trimmed_before"] >= first and page["entries"][0]["offset"] == page["trimmed_before"]
        assert page["next_offset"] == page["trimmed_before"] + 3

        for role in ("storage", "query"):
            victim = cluster.processes(role)[0]["name"]
            cluster.wait_restarted(victim, cluster.kill(victim))
            _wait(lambda: httpx.get(f"{cluster.endpoint}/readyz").status_code == 200, 60, "not ready")
            _check_every_record(client, name, last)
        # A compactor killed -9 and restarted goes on trimming where it was; a new round reads back.
        trimmed_to = _first_offset(cluster)
        cluster.wait_restarted("compactor", cluster.kill("compactor"))
        for round_ in range(ROUNDS, ROUNDS + 5):
            client.upsert_vectors(_vectors(round_), IDS, collection=name, batch_size=50)
        _wait(lambda: _first_offset(cluster) > trimmed_to, 60, "no trim after the compactor's restart")
        _check_every_record(client, name, _vectors(ROUNDS + 4))




def test_with_a_backup_target_only_what_the_newest_backup_covers_is_trimmed(tmp_path: Path) -> None:
    """Nothing goes before the first base backup; after it, nothing the backup's shard copies do not
    reflect: a storage node whose disk is replaced seeds from the backup and replays the rest."""
    target = tmp_path / "backups"
    env = {**ENV, "VECRAFT_ARCHIVE_INTERVAL_MS": "300"}
    del env["VECRAFT_TRIM_WITHOUT_BACKUP"]
    cluster = LocalCluster(tmp_path / "data", shards=2, env=env,
                           extra_args=["--backup-target", str(target)]).start()
    name = f"gcb_{uuid.uuid4().hex[:8]}"
    try:
        with VecraftClient(cluster.endpoint, timeout=60.0) as client:
            client.create_collection(name, dim=DIM, metric="l2")
            for round_ in range(10):
                client.upsert_vectors(_vectors(round_), IDS, collection=name, batch_size=50)
            health = f"http://{cluster.process('compactor')['http_address']}/healthz"
            # Archived, out of the idempotency window, applied: only the missing backup holds it.
            _wait(lambda: httpx.get(health).json()["floors"][0]["held_by"] == "backup", 30,
                  "the compactor does not wait for a base backup")
            assert _first_offset(cluster) == 1
            done = subprocess.run([sys.executable, "-m", "vecraft", "backup", "create", "--data-dir",
                                   str(cluster.data_dir)], capture_output=True, text=True, timeout=120,
                                  stdin=subprocess.DEVNULL)
            assert done.returncode == 0, done.stdout + done.stderr
            (backup,) = [json.loads(p.read_text()) for p in (target / "backups").glob("*.json")]
            covered = min(copy["applied"]["data-0"][0] for copy in backup["shards"].values())
            for round_ in range(10, ROUNDS):
                client.upsert_vectors(_vectors(round_), IDS, collection=name, batch_size=50)
            _wait(lambda: _first_offset(cluster) > 1, 30, "never trimmed after the backup")
            time.sleep(1.0)  # a few more passes: still never past what the backup covers
            assert 1 < _first_offset(cluster) <= covered
        assert cluster.stop() == 0, cluster.tail()
        # A replaced disk: the node seeds its shard from the backup, then replays from the journal.
        shutil.rmtree(cluster.data_dir / "storage" / "node-0")
        cluster.start()
        log = (cluster.data_dir / "logs" / "storage-0.log").read_text()
        assert "shard replica seeded from a backup" in log
        with VecraftClient(cluster.endpoint, timeout=60.0) as client:
            _check_every_record(client, name, _vectors(ROUNDS - 1))
    finally:
        cluster.stop()
