"""The gateway validates at its edge, once, and forwards what it validated.

A search's filter reaches the query nodes as the JSON text of the object the
client sent (compact), not re-encoded from its parsed form; a bad staleness
bound is refused by the codec, over HTTP and gRPC alike; a write's vectors are
validated once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from tests.unit.gateway.fakes import FakeDownstream
from vecraft.services.api_gateway import gateway as gateway_module
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers import grpc_codec, http_codec
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model import records, validation
from vecraft.shared.rpc.v1 import gateway_pb2, query_pb2, search_pb2

pytestmark = pytest.mark.unit

FILTER = {"i": {"$gte": 2, "$lt": 9}, "$or": [{"tag": "a"}, {"tag": {"$in": ["b", "c"]}}]}


class RecordingDownstream(FakeDownstream):
    """Keeps every QuerySearch request the fan-out sends."""

    def __init__(self) -> None:
        super().__init__()
        self.searches: list[query_pb2.QuerySearchRequest] = []

    async def search_node(self, shards: Sequence[int],
                          request: query_pb2.QuerySearchRequest) -> query_pb2.QuerySearchResponse:
        self.searches.append(request)
        return await super().search_node(shards, request)


@pytest.fixture
def fake() -> RecordingDownstream:
    return RecordingDownstream()


@pytest.fixture
def client(fake: RecordingDownstream) -> Iterator[TestClient]:
    with TestClient(create_app(Gateway(fake, SchemaCache(fake))), raise_server_exceptions=False) as c:
        rows = 12
        r = c.post("/v1/vectors/batch", json={
            "ids": [f"r{i}" for i in range(rows)],
            "vectors": np.random.default_rng(5).normal(size=(rows, 4)).tolist(),
            "metadatas": [{"i": i, "tag": "abcd"[i % 4]} for i in range(rows)]})
        assert r.status_code == 201, r.text
        yield c


def test_http_search_forwards_the_filter_text_it_validated(client: TestClient,
                                                           fake: RecordingDownstream) -> None:
    r = client.post("/v1/vectors/search", json={"vector": [1, 0, 0, 0], "k": 12, "filters": FILTER})
    assert r.status_code == 200, r.text
    assert {hit["id"] for hit in r.json()["results"]} == {"r2", "r4", "r5", "r6", "r8"}
    assert fake.searches and {s.filter_json for s in fake.searches} == {orjson.dumps(FILTER).decode()}
    fake.searches.clear()
    assert client.post("/v1/vectors/search", json={"vector": [1, 0, 0, 0], "filters": {}}).status_code == 200
    assert {s.filter_json for s in fake.searches} == {""}


def test_grpc_search_forwards_the_filter_text_compact() -> None:
    spaced = '{ "i" : { "$gte" : 2 } }'
    assert grpc_codec.search_query(search_pb2.SearchRequest(vector=[1.0], filter_json=spaced)).filter_json \
        == '{"i":{"$gte":2}}'
    by_map = grpc_codec.search_query(search_pb2.SearchRequest(vector=[1.0], filters={"tag": "a"}))
    assert by_map.filter_json == '{"tag":"a"}'
    assert grpc_codec.search_query(search_pb2.SearchRequest(vector=[1.0])).filter_json == ""


def test_listings_forward_the_filter_text_they_validated() -> None:
    spaced = '{ "i" : { "$gte" : 2 } }'
    assert grpc_codec.list_query(gateway_pb2.ListRecordsRequest(filter_json=spaced)).filter_json \
        == '{"i":{"$gte":2}}'
    assert grpc_codec.list_query(gateway_pb2.ListRecordsRequest()).filter_json == ""
    assert http_codec.filter_param(spaced) == '{"i":{"$gte":2}}' and http_codec.filter_param(None) == ""
    for bad in ('{"i": {"$near": 2}}', "[1]", "{"):
        with pytest.raises(InvalidRequest):
            grpc_codec.list_query(gateway_pb2.ListRecordsRequest(filter_json=bad))
        with pytest.raises(InvalidRequest):
            http_codec.filter_param(bad)


@pytest.mark.parametrize("bound, refused", [(-1, True), (3_600_001, True), (0, False), (250, False)])
def test_grpc_codec_refuses_a_bad_staleness_bound_of_a_bounded_search(bound: int, refused: bool) -> None:
    req = search_pb2.SearchRequest(vector=[1.0], consistency_level=search_pb2.BOUNDED_STALENESS,
                                   max_staleness_ms=bound)
    if refused:
        with pytest.raises(InvalidRequest, match="max_staleness_ms"):
            grpc_codec.search_query(req)
    else:
        assert grpc_codec.search_query(req).max_staleness_ms == (bound or None)
    # Other levels have no bound: the field is ignored, as before.
    req.consistency_level = search_pb2.EVENTUAL
    assert grpc_codec.search_query(req).max_staleness_ms is None


def test_a_bounded_search_is_sent_the_bound_the_edge_validated(client: TestClient,
                                                               fake: RecordingDownstream) -> None:
    r = client.post("/v1/vectors/search", json={"vector": [1, 0, 0, 0], "max_staleness_ms": 70})
    assert r.status_code == 200, r.text
    assert {s.max_staleness_ms for s in fake.searches} == {70}
    r = client.post("/v1/vectors/search", json={"vector": [1, 0, 0, 0], "max_staleness_ms": -3})
    assert r.status_code == 400 and "max_staleness_ms" in r.text


def test_a_write_validates_its_vectors_once(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = validation.validate_vectors

    def counted(values: Any, dim: int | None = None, **kw: Any) -> np.ndarray:
        calls.append(1)
        return real(values, dim, **kw)

    monkeypatch.setattr(gateway_module, "validate_vectors", counted)
    monkeypatch.setattr(records, "validate_vectors", counted)
    r = client.post("/v1/vectors/batch", json={"ids": ["x", "y"], "vectors": [[1, 2, 3, 4], [5, 6, 7, 8]]})
    assert r.status_code == 201, r.text
    assert len(calls) == 1
    r = client.post("/v1/vectors/batch", json={"ids": ["z"], "vectors": [[1, 2, 3, 1e39]]})
    assert r.status_code == 400 and "beyond float32 range" in r.text
