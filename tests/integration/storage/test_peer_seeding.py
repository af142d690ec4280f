"""A storage node whose shard directories are wiped seeds them from its live peer (``CopyShard``), through
a real ``vecraft up`` with 2 replicas per shard on 2 storage nodes and a journal the compactor trims
(``--trim-without-backup``): the journal alone can no longer rebuild the replicas (its follower would
halt with ``trimmed``), the peer's copy can, and every record reads back, from the seeded node too."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft_client import VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

DIM = 16
IDS = [f"r{i}" for i in range(200)]
ROUNDS = 8
#: Small segments so a trim has files to delete; a short idempotency window so entries may go at once.
ENV = {"VECRAFT_GC_INTERVAL_S": "0.3", "VECRAFT_SEGMENT_BYTES": "32768",
       "VECRAFT_REQUEST_ID_RETENTION_S": "1"}


def _vectors(round_: int) -> np.ndarray:
    return np.random.default_rng(round_).standard_normal((len(IDS), DIM)).astype(np.float32)


def _first_offset(data_dir: Path) -> int:
    start = data_dir / "journal" / "data-0" / "START"
    return int(start.read_text()) if start.exists() else 1


def _metric(text: str, name: str, labels: str = "") -> list[float]:
    pattern = rf"^{re.escape(name)}\{{[^}}]*{labels}[^}}]*\}} (\S+)$"
    return [float(m[1]) for m in re.finditer(pattern, text, re.MULTILINE)]


def test_a_wiped_replica_seeds_from_its_peer_after_the_journal_was_trimmed(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "data", shards=2, replicas=2, env=ENV,
                           extra_args=["--storage-nodes", "2", "--trim-without-backup"]).start()
    name = f"seed_{uuid.uuid4().hex[:8]}"
    try:
        with VecraftClient(cluster.endpoint, timeout=60.0) as client:
            client.create_collection(name, dim=DIM, metric="l2")
            for round_ in range(ROUNDS):
                client.upsert_vectors(_vectors(round_), IDS, collection=name, batch_size=50)
            deadline = time.monotonic() + 60  # LocalCluster is synchronous: a polled condition
            while _first_offset(cluster.data_dir) == 1:
                assert time.monotonic() < deadline, f"journal never trimmed: {cluster.tail()}"
                time.sleep(0.2)
            trimmed_to = _first_offset(cluster.data_dir)

            # Frozen (no write of its own after the wipe), wiped, then killed: the supervisor restarts it
            # with no shard files at all.
            victim = cluster.process("storage-0")
            shard_dirs = sorted((cluster.data_dir / "storage" / "node-0").glob("shard-*"))
            assert len(shard_dirs) == 2, shard_dirs
            os.kill(victim["pid"], signal.SIGSTOP)
            for directory in shard_dirs:
                shutil.rmtree(directory)
            os.kill(victim["pid"], signal.SIGKILL)
            row = cluster.wait_restarted("storage-0", victim["pid"])  # health "up": caught up, not halted

            log = (cluster.data_dir / "logs" / "storage-0.log").read_text()
            restarted = log[log.rindex("supervisor starts storage-0"):]
            assert restarted.count("shard replica seeded from a peer") == 2, restarted[-3000:]
            assert "trimmed" not in restarted, restarted[-3000:]
            metrics = httpx.get(f"http://{row['http_address']}/metrics").text
            assert _metric(metrics, "vecraft_storage_seeds_total", 'outcome="seeded",source="peer"') == [2.0]
            # The seeded node holds every record itself (both shards' indexes together).
            assert sum(_metric(metrics, "vecraft_storage_index_records")) == len(IDS)
            assert _first_offset(cluster.data_dir) >= trimmed_to

            last = _vectors(ROUNDS - 1)
            for i in range(0, len(IDS), 20):
                got = client.get_vector(IDS[i], collection=name, consistency_level="strong")
                np.testing.assert_allclose(got.vector, last[i], rtol=1e-6)
            for i in (0, 77, 199):
                hits = client.vector_search(last[i], k=1, collection=name, consistency_level="strong").results
                assert hits and hits[0].id == IDS[i]
            # A write after the seeding reaches the seeded replica through the journal as usual.
            client.upsert_vectors(_vectors(ROUNDS), IDS, collection=name, batch_size=50)
            got = client.get_vector(IDS[5], collection=name, consistency_level="strong")
            np.testing.assert_allclose(got.vector, _vectors(ROUNDS)[5], rtol=1e-6)
    finally:
        cluster.stop()
