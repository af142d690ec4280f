"""gRPC codec defaults and the schema cache's freshness rule."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.unit.gateway.fakes import FakeDownstream
from vecraft.services.api_gateway.handlers import grpc_codec
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.common.errors import InvalidRequest, NotFound
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.filters import filter_to_obj
from vecraft.shared.rpc.v1 import collection_pb2, gateway_pb2, search_pb2

pytestmark = pytest.mark.unit


def test_spec_search_request_converts_with_proto3_defaults() -> None:
    q = grpc_codec.search_query(search_pb2.SearchRequest(
        vector=[0.1, 0.2], consistency_level=search_pb2.BOUNDED_STALENESS, filters={"category": "documents"}))
    assert q.k == 10 and q.level is ConsistencyLevel.BOUNDED_STALENESS and q.max_staleness_ms is None
    assert q.collection == "default" and q.vector.dtype == np.float32
    assert filter_to_obj(q.filter) == {"category": {"$eq": "documents"}}
    full = grpc_codec.search_query(search_pb2.SearchRequest(
        vector=[1], k=3, filter_json='{"year": {"$gte": 2020}}', filters={"ignored": "x"}, collection="c"))
    assert filter_to_obj(full.filter) == {"year": {"$gte": 2020}} and full.k == 3
    for bad in (search_pb2.SearchRequest(vector=[1], k=-1),
                search_pb2.SearchRequest(vector=[1], filter_json="{"),
                search_pb2.SearchRequest(vector=[1], consistency_level=9),
                search_pb2.SearchRequest(vector=[1], min_required_offset=-3)):
        with pytest.raises(InvalidRequest):
            grpc_codec.search_query(bad)


def test_write_request_checks_vector_bytes_and_metadata() -> None:
    ok = grpc_codec.write_batch(gateway_pb2.WriteVectorsRequest(
        dim=2, vectors=np.ones((3, 2), dtype="<f4").tobytes(), metadata_json=["", '{"a": 1}', ""]),
        upsert=True)
    assert ok.vectors.shape == (3, 2) and ok.metadata == [None, {"a": 1}, None]
    assert ok.ids is None and ok.upsert
    for bad in (gateway_pb2.WriteVectorsRequest(dim=0, vectors=b"\0" * 8),
                gateway_pb2.WriteVectorsRequest(dim=3, vectors=b"\0" * 8),
                gateway_pb2.WriteVectorsRequest(dim=2, vectors=b"\0" * 8, metadata_json=["{nope"]),
                gateway_pb2.WriteVectorsRequest(dim=2, vectors=b"\0" * 8, ack=7)):
        with pytest.raises(InvalidRequest):
            grpc_codec.write_batch(bad, upsert=False)


def test_request_context_from_metadata() -> None:
    ctx = grpc_codec.request_context([("x-request-id", "abc"), ("x-tenant", "acme")])
    assert (ctx.request_id, ctx.tenant, ctx.journal_request_id) == ("abc", "acme", "acme/abc")
    assert grpc_codec.request_context(None, request_id="given").request_id == "given"
    assert len(grpc_codec.request_context(None).request_id) == 32
    with pytest.raises(InvalidRequest):
        grpc_codec.request_context([("x-tenant", "no/slashes")])


async def test_schema_cache_keeps_entries_only_while_watching() -> None:
    fake = FakeDownstream()
    cache = SchemaCache(fake)
    await fake.create_collection(collection_pb2.CreateCollectionRequest(name="a", dim=2))
    assert (await cache.get("default", "a")).dim == 2
    assert not cache.watching and cache._schemas == {}  # not trusted without the stream
    task = asyncio.create_task(cache.run_watch())
    for _ in range(100):
        if cache.watching:
            break
        await asyncio.sleep(0.01)
    assert cache.watching
    fake.collections.clear()  # the cache answers without asking
    assert (await cache.get("default", "a")).dim == 2
    await fake.create_collection(collection_pb2.CreateCollectionRequest(name="a", dim=5))
    await asyncio.sleep(0.05)
    assert (await cache.get("default", "a")).dim == 5  # the PUT event replaced it
    await fake.drop_collection(collection_pb2.DropCollectionRequest(name="a"))
    await asyncio.sleep(0.05)
    with pytest.raises(NotFound):
        await cache.get("default", "a")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
