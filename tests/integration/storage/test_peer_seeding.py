"""A storage node whose shard directories are wiped seeds them from its live peer (``CopyShard``), through
a real ``vecraft up`` with 2 replicas per shard on 2 storage nodes and a journal the compactor trims
(``--trim-without-backup``): the journal alone can no longer rebuild the replicas (its follower would
halt with ``trimmed``), the peer's copy can, and every record reads back, from the seeded node too."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.storage import trimmed_journal as trim
from tests.support.cluster import LocalCluster
from vecraft_client import VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

def test_a_wiped_replica_seeds_from_its_peer_after_the_journal_was_trimmed(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "data", shards=2, replicas=2, env=trim.ENV,
                           extra_args=["--storage-nodes", "2", "--trim-without-backup"]).start()
    name = f"seed_{uuid.uuid4().hex[:8]}"
    try:
        with VecraftClient(cluster.endpoint, timeout=60.0) as client:
            client.create_collection(name, dim=trim.DIM, metric="l2")
            for round_ in range(trim.ROUNDS):
                client.upsert_vectors(trim.vectors(round_), trim.IDS, collection=name, batch_size=50)
            deadline = time.monotonic() + 60  # LocalCluster is synchronous: a polled condition
            while trim.first_offset(cluster.data_dir) == 1:
                assert time.monotonic() < deadline, f"journal never trimmed: {cluster.tail()}"
                time.sleep(0.2)
            trimmed_to = trim.first_offset(cluster.data_dir)

            # Frozen (no write of its own after the wipe), wiped, then killed: the supervisor restarts it
            # with no shard files at all.
            row = trim.wipe_and_restart(cluster)  # health "up": caught up, not halted

            restarted = trim.log_since_restart(cluster)
            assert restarted.count("shard replica seeded from a peer") == 2, restarted[-3000:]
            assert "trimmed" not in restarted, restarted[-3000:]
            metrics = httpx.get(f"http://{row['http_address']}/metrics").text
            seeded = trim.metric(metrics, "vecraft_storage_seeds_total", 'outcome="seeded",source="peer"')
            assert seeded == [2.0]
            # The seeded node holds every record itself (both shards' indexes together).
            assert sum(trim.metric(metrics, "vecraft_storage_index_records")) == len(trim.IDS)
            assert trim.first_offset(cluster.data_dir) >= trimmed_to

            last = trim.vectors(trim.ROUNDS - 1)
            for i in range(0, len(trim.IDS), 20):
                got = client.get_vector(trim.IDS[i], collection=name, consistency_level="strong")
                np.testing.assert_allclose(got.vector, last[i], rtol=1e-6)
            for i in (0, 77, 199):
                hits = client.vector_search(last[i], k=1, collection=name, consistency_level="strong").results
                assert hits and hits[0].id == trim.IDS[i]
            # A write after the seeding reaches the seeded replica through the journal as usual.
            client.upsert_vectors(trim.vectors(trim.ROUNDS), trim.IDS, collection=name, batch_size=50)
            got = client.get_vector(trim.IDS[5], collection=name, consistency_level="strong")
            np.testing.assert_allclose(got.vector, trim.vectors(trim.ROUNDS)[5], rtol=1e-6)
    finally:
        cluster.stop()
