"""`vecraft up` shapes with the real services: nodes host shards, and every shape answers correctly.

* ``--shards 64`` on the default 2 storage nodes and 1 query node: six processes in all, which
  start and serve on a 2-core machine (a process per shard replica made that 131 processes).
* ``--storage-nodes 4 --query-nodes 2 --replicas 2``: each shard on two storage nodes (one per
  replica number) and one query node.

In each: ``vecraft status`` shows every node with the shards it hosts, and each node's own
``/healthz`` says it took exactly those; a batch written with ``ack=all`` is acknowledged by every
replica of the shards it touched; strong searches return the exact nearest neighbours (checked
against brute force) with no shard missing; every record read back by id is the one written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft.local.supervisor import module_available
from vecraft.local.topology import ROLE_MODULES, place_shards
from vecraft.shared.model.routing import shard_of
from vecraft_client import VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.skipif(not all(module_available(m) for m in ROLE_MODULES.values()),
                                 reason="not every service is installed in this build")]

ROWS, DIM, K = 300, 16, 10


@pytest.fixture
def started() -> Iterator[list[LocalCluster]]:
    clusters: list[LocalCluster] = []
    yield clusters
    for cluster in clusters:
        assert cluster.stop() == 0, cluster.tail()


def _check_placement(cluster: LocalCluster, shards: int, storage_nodes: int, query_nodes: int,
                     replicas: int, query_replicas: int = 1) -> None:
    status = cluster.status()
    assert status is not None and status["all_up"], status
    for role, nodes, copies in (("storage", storage_nodes, replicas), ("query", query_nodes, query_replicas)):
        rows = [r for r in status["processes"] if r["role"] == role]
        expected = place_shards(shards, nodes, copies)
        assert [(r["name"], r["shards"], r["replica"]) for r in rows] == [
            (f"{role}-{p.node}", list(p.shards), p.replica) for p in expected]
        for row in rows:
            # What the plan passed is what the node took.
            assert row["healthz"]["shards"] == row["shards"], row
            if role == "storage":
                assert row["healthz"]["replica"] == row["replica"], row


def _check_serves(cluster: LocalCluster, shards: int, replicas: int) -> None:
    rng = np.random.default_rng(64)
    vectors = rng.standard_normal((ROWS, DIM)).astype(np.float32)
    ids = [f"v-{i:04d}" for i in range(ROWS)]
    with VecraftClient(cluster.endpoint, timeout=120.0) as client:
        collection = client.create_collection("shapes", dim=DIM, metric="l2")
        assert (collection.shards, collection.replicas) == (shards, replicas)
        written = client.insert_vectors(vectors, ids=ids, metadatas=[{"i": i} for i in range(ROWS)],
                                        collection="shapes", ack="all")
        touched = len({shard_of(i, shards) for i in ids})
        assert written.replicas_expected == touched * replicas, written
        assert written.replicas_acked == written.replicas_expected, written

        for q in range(0, ROWS, 30):
            query = vectors[q] + rng.normal(0, 0.05, DIM).astype(np.float32)
            answer = client.vector_search(query, k=K, consistency_level="strong", collection="shapes")
            assert answer.missing_shards == []
            exact = np.argsort(((vectors - query) ** 2).sum(axis=1))[:K]
            assert [h.id for h in answer.results] == [ids[i] for i in exact], q

        for i in range(0, ROWS, 7):
            record = client.get_vector(ids[i], collection="shapes", consistency_level="strong")
            assert record.id == ids[i] and record.metadata == {"i": i}
            assert np.array_equal(np.asarray(record.vector, np.float32), vectors[i])


def test_64_shards_on_two_storage_nodes_and_one_query_node(tmp_path: Path,
                                                           started: list[LocalCluster]) -> None:
    cluster = LocalCluster(tmp_path / "data", shards=64)
    started.append(cluster)
    cluster.start(timeout=600)
    status = cluster.status()
    assert status is not None
    assert [r["name"] for r in status["processes"]] == [
        "journal", "meta", "storage-0", "storage-1", "query-0", "failover", "compactor", "gateway"]
    _check_placement(cluster, 64, 2, 1, 1)
    _check_serves(cluster, 64, 1)


def test_four_storage_nodes_two_query_nodes_two_replicas(tmp_path: Path,
                                                         started: list[LocalCluster]) -> None:
    cluster = LocalCluster(tmp_path / "data", shards=3, replicas=2,
                           extra_args=["--storage-nodes", "4", "--query-nodes", "2"])
    started.append(cluster)
    cluster.start(timeout=600)
    _check_placement(cluster, 3, 4, 2, 2)
    _check_serves(cluster, 3, 2)
