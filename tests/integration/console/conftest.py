"""One ``vecraft up`` cluster for the console's tests (2 shards x 2 replicas on 2 storage nodes, one
query node), with the data they show."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft_client import VecraftClient

SHARDS, REPLICAS, DIM, ROWS = 2, 2, 8, 60
#: storage-0 hosts replica 0 of both shards, storage-1 replica 1; query-0 serves both shards.
STORAGE_NODES, QUERY_NODES = 2, 1
CATEGORIES = ("documents", "images", "audio")
#: Searches made while seeding, by level (the overview's consistency level mix shows them).
SEED_LEVELS = ("eventual", "eventual", "bounded", "read_your_writes", "strong")


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("console") / "data"
    running = LocalCluster(data_dir, shards=SHARDS, replicas=REPLICAS,
                           extra_args=["--storage-nodes", str(STORAGE_NODES),
                                       "--query-nodes", str(QUERY_NODES)]).start()
    yield running
    assert running.stop() == 0, running.tail()


@pytest.fixture(scope="package")
def seed_request_id(cluster: LocalCluster) -> str:
    """Collection ``papers``: ROWS records in one batch (its request id is returned), then a few
    searches per level, the last one strong (so every query processor has applied the batch)."""
    rng = np.random.default_rng(16)
    with VecraftClient(cluster.endpoint, timeout=60.0) as client:
        client.create_collection("papers", dim=DIM, metric="cosine")
        written = client.insert_vectors(
            rng.standard_normal((ROWS, DIM)).astype(np.float32), ids=[f"paper-{i:03d}" for i in range(ROWS)],
            metadatas=[{"category": CATEGORIES[i % 3], "year": 2016 + i % 10, "title": f"Paper {i}"}
                       for i in range(ROWS)],
            documents=[f"Abstract of paper {i}." for i in range(ROWS)], collection="papers",
            request_id="console-seed")
        for level in SEED_LEVELS:
            client.vector_search(rng.standard_normal(DIM).tolist(), k=5, collection="papers",
                                 consistency_level=level)
    return str(written.request_id)
