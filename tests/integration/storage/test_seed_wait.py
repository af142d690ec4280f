"""A storage node whose shard directories are wiped while the journal is trimmed and its only peer is
frozen waits for a seed source instead of rebuilding from the journal (which would halt with
``trimmed``): its replicas stay unhosted and reported as waiting, the node stays up, and once the
peer serves again the replicas seed from it and serve every record (real ``vecraft up``, 2 storage
nodes, 2 shards x 2 replicas, ``--trim-without-backup``)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from tests.support.waits import wait_for
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
    cluster = LocalCluster(tmp_path / "data", shards=2, replicas=2, env=ENV,
                           extra_args=["--storage-nodes", "2", "--trim-without-backup"]).start()
    name = f"wait_{uuid.uuid4().hex[:8]}"
    peer_pid = 0
    try:
        with VecraftClient(cluster.endpoint, timeout=60.0) as client:
            client.create_collection(name, dim=DIM, metric="l2")
            for round_ in range(ROUNDS):
                client.upsert_vectors(_vectors(round_), IDS, collection=name, batch_size=50)
            wait_for(lambda: _first_offset(cluster.data_dir) > 1, timeout=60, what="the journal trimmed")

            # The only peer freezes; once its registration lapses no node serves a copy.
            peer_pid = int(cluster.process("storage-1")["pid"])
            os.kill(peer_pid, signal.SIGSTOP)
            wait_for(lambda: "storage-1" not in _routed_storage(cluster), timeout=30,
                  what="the frozen peer out of the registry")

            victim = cluster.process("storage-0")
            shard_dirs = sorted((cluster.data_dir / "storage" / "node-0").glob("shard-*"))
            assert len(shard_dirs) == 2, shard_dirs
            os.kill(victim["pid"], signal.SIGSTOP)
            for directory in shard_dirs:
                shutil.rmtree(directory)
            os.kill(victim["pid"], signal.SIGKILL)
            row = cluster.wait_restarted("storage-0", victim["pid"])  # up: its other work goes on

            health = _health(row)
            waiting = health["hosting"]["failed"]
            assert sorted(waiting) == ["0", "1"], health
            assert all("waiting for one" in reason for reason in waiting.values()), waiting
            assert health["replicas"] == [] and health["halted"] == {}, health
            log = (cluster.data_dir / "logs" / "storage-0.log").read_text()
            restarted = log[log.rindex("supervisor starts storage-0"):]
            assert "halted" not in restarted, restarted[-3000:]
            metrics = httpx.get(f"http://{row['http_address']}/metrics").text
            assert _metric(metrics, "vecraft_storage_seeds_total", 'outcome="trimmed"')[0] >= 2, metrics

            # The peer serves again: the waiting replicas seed from it and serve every record.
            os.kill(peer_pid, signal.SIGCONT)
            peer_pid = 0
            wait_for(lambda: sorted(_health(row).get("shards", [])) == [0, 1], timeout=90,
                  what="storage-0 serving both shards again")
            log = (cluster.data_dir / "logs" / "storage-0.log").read_text()
            restarted = log[log.rindex("supervisor starts storage-0"):]
            assert restarted.count("shard replica seeded from a peer") == 2, restarted[-3000:]
            assert "halted" not in restarted, restarted[-3000:]
            metrics = httpx.get(f"http://{row['http_address']}/metrics").text
            assert sum(_metric(metrics, "vecraft_storage_index_records")) == len(IDS)
            last = _vectors(ROUNDS - 1)
            for i in range(0, len(IDS), 20):
                got = client.get_vector(IDS[i], collection=name, consistency_level="strong")
                np.testing.assert_allclose(got.vector, last[i], rtol=1e-6)
    finally:
        if peer_pid:
            os.kill(peer_pid, signal.SIGCONT)
        cluster.stop()
