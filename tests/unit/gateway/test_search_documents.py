"""Searches return documents when asked: read for the final top-k from the storage replicas.

The fake's query processors answer like the real caches, without documents.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.unit.gateway.fakes import FakeDownstream
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers.grpc_servicers import VectorSearchServicer
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.model.routing import shard_of
from vecraft.shared.rpc.v1 import query_pb2, search_pb2, storage_pb2

pytestmark = pytest.mark.unit

N = 12


class CacheLikeDownstream(FakeDownstream):
    """Searches answer without documents (as the processors' caches do); reads are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.gets: list[tuple[int, storage_pb2.ShardGetRequest]] = []

    async def search_node(self, shards: Sequence[int],
                          request: query_pb2.QuerySearchRequest) -> query_pb2.QuerySearchResponse:
        answer = await super().search_node(shards, request)
        for hit in answer.results:
            hit.document = ""
        return answer

    async def get_records(self, shard: int, request: storage_pb2.ShardGetRequest,
                          timeout_s: float) -> storage_pb2.ShardGetResponse:
        self.gets.append((shard, request))
        return await super().get_records(shard, request, timeout_s)


@pytest.fixture
def fake() -> CacheLikeDownstream:
    return CacheLikeDownstream()


@pytest.fixture
def client(fake: CacheLikeDownstream) -> Iterator[TestClient]:
    with TestClient(create_app(Gateway(fake, SchemaCache(fake))), raise_server_exceptions=False) as c:
        yield c


def _seed(client: TestClient) -> np.ndarray:
    vectors = np.random.default_rng(3).normal(size=(N, 4)).astype(np.float32)
    # Every third record has no document.
    documents = [None if i % 3 == 0 else f"text of r{i}" for i in range(N)]
    r = client.post("/v1/vectors/batch", json={
        "ids": [f"r{i}" for i in range(N)], "vectors": vectors.tolist(), "documents": documents,
        "metadatas": [{"i": i} for i in range(N)]})
    assert r.status_code == 201, r.text
    return vectors


def _search(client: TestClient, vector: Any, **extra: Any) -> dict[str, Any]:
    r = client.post("/v1/vectors/search", json={"vector": vector, "k": N, **extra})
    assert r.status_code == 200, r.text
    return r.json()


def test_include_documents_fills_every_hit_from_storage(client: TestClient,
                                                        fake: CacheLikeDownstream) -> None:
    vectors = _seed(client)
    body = _search(client, vectors[1].tolist(), include_documents=True)
    docs = {hit["id"]: hit["document"] for hit in body["results"]}
    assert len(docs) == N
    assert docs == {f"r{i}": None if i % 3 == 0 else f"text of r{i}" for i in range(N)}
    assert body["results"][0]["id"] == "r1"
    # One read per shard holding hits, vectors left out, each at the version its shard was searched at.
    shards = sorted(shard for shard, _ in fake.gets)
    assert shards == sorted({shard_of(f"r{i}", 3) for i in range(N)})
    for shard, request in fake.gets:
        assert not request.include_vectors
        assert all(shard_of(rid, 3) == shard for rid in request.ids)
        head = len(fake.journal[fake.collections[("default", "default")].partition])
        assert request.min_offset == max(head - shard, 0)  # the fake's per-shard index version


def test_without_include_documents_storage_is_not_read(client: TestClient, fake: CacheLikeDownstream) -> None:
    vectors = _seed(client)
    body = _search(client, vectors[1].tolist())
    assert all("document" not in hit for hit in body["results"])
    assert fake.gets == []


def test_a_storage_outage_fails_a_search_that_asks_for_documents(client: TestClient,
                                                                 fake: CacheLikeDownstream) -> None:
    vectors = _seed(client)

    async def down(shard: int, request: storage_pb2.ShardGetRequest,
                   timeout_s: float) -> storage_pb2.ShardGetResponse:
        raise Unavailable(f"storage replica of shard {shard} is unavailable")

    fake.get_records = down  # type: ignore[method-assign]
    r = client.post("/v1/vectors/search", json={"vector": vectors[1].tolist(), "include_documents": True})
    assert r.status_code == 503, r.text
    assert _search(client, vectors[1].tolist())["results"]  # the same search without documents works


class _Context:
    def invocation_metadata(self) -> list[tuple[str, Any]]:
        return []


async def test_grpc_search_returns_documents_only_when_asked(fake: CacheLikeDownstream) -> None:
    gateway = Gateway(fake, SchemaCache(fake))
    with TestClient(create_app(gateway)) as http:
        vectors = _seed(http)
    servicer = VectorSearchServicer(gateway)
    asked = await servicer.Search(search_pb2.SearchRequest(vector=vectors[2].tolist(), k=3,
                                                           include_documents=True), _Context())
    assert asked.results[0].id == "r2" and asked.results[0].document == "text of r2"
    plain = await servicer.Search(search_pb2.SearchRequest(vector=vectors[2].tolist(), k=3), _Context())
    assert [h.id for h in plain.results] == [h.id for h in asked.results]
    assert all(h.document == "" for h in plain.results)
