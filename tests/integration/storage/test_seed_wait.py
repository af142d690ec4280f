"""A storage node whose shard directories are wiped while the journal is trimmed and its only peer is
frozen waits for a seed source instead of rebuilding from the journal (which would halt with
``trimmed``): its replicas stay unhosted and reported as waiting, the node stays up, and once the
peer serves again the replicas seed from it and serve every record (real ``vecraft up``, 2 storage
nodes, 2 shards x 2 replicas, ``--trim-without-backup``)."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.integration.storage import trimmed_journal as trim
from tests.support.cluster import LocalCluster
from tests.support.waits import wait_for
from vecraft_client import VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

def _health(row: dict[str, Any]) -> dict[str, Any]:
    try:
        body = httpx.get(f"http://{row['http_address']}/healthz", timeout=2.0).json()
    except (httpx.HTTPError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def _routed_storage(cluster: LocalCluster) -> set[str]:
    """The storage nodes the gateway routes to (from the meta manager's registry)."""
    shards = _health(cluster.process("gateway")).get("routing", {}).get("shards", {})
    return {entry.split("@")[0] for shard in shards.values() for entry in shard.get("storage", [])}


def test_a_wiped_replica_waits_for_a_seed_source_then_seeds_from_the_resumed_peer(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "data", shards=2, replicas=2, env=trim.ENV,
                           extra_args=["--storage-nodes", "2", "--trim-without-backup"]).start()
    name = f"wait_{uuid.uuid4().hex[:8]}"
    peer_pid = 0
    try:
        with VecraftClient(cluster.endpoint, timeout=60.0) as client:
            client.create_collection(name, dim=trim.DIM, metric="l2")
            for round_ in range(trim.ROUNDS):
                client.upsert_vectors(trim.vectors(round_), trim.IDS, collection=name, batch_size=50)
            wait_for(lambda: trim.first_offset(cluster.data_dir) > 1, timeout=60, what="the journal trimmed")

            # The only peer freezes; once its registration lapses no node serves a copy.
            peer_pid = int(cluster.process("storage-1")["pid"])
            os.kill(peer_pid, signal.SIGSTOP)
            wait_for(lambda: "storage-1" not in _routed_storage(cluster), timeout=30,
                  what="the frozen peer out of the registry")

            row = trim.wipe_and_restart(cluster)  # up: its other work goes on

            health = _health(row)
            waiting = health["hosting"]["failed"]
            assert sorted(waiting) == ["0", "1"], health
            assert all("waiting for one" in reason for reason in waiting.values()), waiting
            assert health["replicas"] == [] and health["halted"] == {}, health
            restarted = trim.log_since_restart(cluster)
            assert "halted" not in restarted, restarted[-3000:]
            metrics = httpx.get(f"http://{row['http_address']}/metrics").text
            assert trim.metric(metrics, "vecraft_storage_seeds_total", 'outcome="trimmed"')[0] >= 2, metrics

            # The peer serves again: the waiting replicas seed from it and serve every record.
            os.kill(peer_pid, signal.SIGCONT)
            peer_pid = 0
            wait_for(lambda: sorted(_health(row).get("shards", [])) == [0, 1], timeout=90,
                  what="storage-0 serving both shards again")
            restarted = trim.log_since_restart(cluster)
            assert restarted.count("shard replica seeded from a peer") == 2, restarted[-3000:]
            assert "halted" not in restarted, restarted[-3000:]
            metrics = httpx.get(f"http://{row['http_address']}/metrics").text
            assert sum(trim.metric(metrics, "vecraft_storage_index_records")) == len(trim.IDS)
            last = trim.vectors(trim.ROUNDS - 1)
            for i in range(0, len(trim.IDS), 20):
                got = client.get_vector(trim.IDS[i], collection=name, consistency_level="strong")
                np.testing.assert_allclose(got.vector, last[i], rtol=1e-6)
    finally:
        if peer_pid:
            os.kill(peer_pid, signal.SIGCONT)
        cluster.stop()
