"""Gateway reads and answers end to end, through a real ``vecraft up`` cluster (3 shards).

- the gRPC Delete answer reports ``deleted`` / ``deleted_ids`` / ``missing_ids`` like HTTP;
- searches return each hit's document when asked, also when the query processors' caches (which
  keep no documents) answer, over HTTP and gRPC;
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft_client import VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SHARDS = 3
DIM = 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("e2e-reads") / "data"
    running = LocalCluster(data_dir, shards=SHARDS).start()
    yield running
    assert running.stop() == 0, running.tail()


@pytest.fixture(scope="module")
def http(cluster: LocalCluster) -> Iterator[VecraftClient]:
    with VecraftClient(cluster.endpoint, timeout=60.0) as client:
        yield client


@pytest.fixture(scope="module")
def grpc(cluster: LocalCluster) -> Iterator[VecraftClient]:
    with VecraftClient(f"grpc://{cluster.grpc_endpoint}", transport="grpc", timeout=60.0) as client:
        yield client


def _collection(client: VecraftClient, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dim=DIM, metric="l2")
    return name


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


# ---- gRPC delete answer --------------------------------------------------------------------------

def test_grpc_delete_reports_which_ids_existed_like_http(http: VecraftClient, grpc: VecraftClient) -> None:
    name = _collection(http, "del")
    ids = [f"r{i}" for i in range(6)]
    http.insert_vectors(_vectors(6), ids=ids, collection=name)

    over_grpc = grpc.delete_vectors(["r0", "nope", "r3"], collection=name)
    assert over_grpc.deleted is True
    assert over_grpc.deleted_ids == ["r0", "r3"] and over_grpc.missing_ids == ["nope"]
    over_http = http.delete_vectors(["r3", "r4"], collection=name)
    assert (over_http.deleted, over_http.deleted_ids, over_http.missing_ids) == (True, ["r4"], ["r3"])
    none_left = grpc.delete_vector("r0", collection=name)
    assert (none_left.deleted, none_left.deleted_ids, none_left.missing_ids) == (False, [], ["r0"])

    retried = grpc.delete_vectors(["r0", "nope", "r3"], collection=name, request_id=over_grpc.request_id)
    assert retried.duplicate and retried.offset == over_grpc.offset


# ---- documents in search results -----------------------------------------------------------------

@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_search_hits_carry_documents_when_asked(http: VecraftClient, grpc: VecraftClient,
                                                transport: str) -> None:
    client = http if transport == "http" else grpc
    name = _collection(http, "docs")
    n = 30
    vectors = _vectors(n, seed=5)
    ids = [f"d{i}" for i in range(n)]
    documents = [None if i % 4 == 0 else f"document {i} " + "x" * i for i in range(n)]
    http.insert_vectors(vectors, ids=ids, documents=documents, metadatas=[{"i": i} for i in range(n)],
                        collection=name)
    http.upsert_vector("d1", vectors[1], metadata={"i": 1}, document="rewritten", collection=name)
    expected = dict(zip(ids, documents, strict=True)) | {"d1": "rewritten"}

    strong = client.vector_search(vectors[1], k=n, collection=name, consistency_level="strong",
                                  include_documents=True)
    assert strong.results[0].id == "d1"
    assert {h.id: h.document for h in strong.results} == expected
    # Every cache has now applied every write: an eventual search is answered from the caches.
    eventual = client.vector_search(vectors[7], k=10, collection=name, include_documents=True)
    assert eventual.consistency_info.cache_hit
    assert eventual.results[0].id == "d7"
    assert all(h.document == expected[h.id] for h in eventual.results), eventual.results
    assert eventual.results[0].metadata == {"i": 7}

    plain = client.vector_search(vectors[7], k=10, collection=name)
    assert [h.id for h in plain.results] == [h.id for h in eventual.results]
    assert all(h.document is None for h in plain.results)
    assert [h.score for h in plain.results] == pytest.approx([h.score for h in eventual.results], abs=1e-5)
