"""gRPC codec defaults and the schema cache's freshness rule."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.waits import until
from tests.unit.gateway.fakes import FakeDownstream
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers import grpc_codec
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.models import MAX_JOURNAL_KEY_BYTES, ddl_request_id, journal_request_id
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.common.errors import InvalidRequest, NotFound
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.filters import parse_filter
from vecraft.shared.model.routing import DEFAULT_TENANT
from vecraft.shared.rpc.v1 import collection_pb2, gateway_pb2, search_pb2

pytestmark = pytest.mark.unit


def test_spec_search_request_converts_with_proto3_defaults() -> None:
    q = grpc_codec.search_query(search_pb2.SearchRequest(
        vector=[0.1, 0.2], consistency_level=search_pb2.BOUNDED_STALENESS, filters={"category": "documents"}))
    assert q.k == 10 and q.level is ConsistencyLevel.BOUNDED_STALENESS and q.max_staleness_ms is None
    assert q.collection == "default" and q.vector.dtype == np.float32
    assert q.filter == parse_filter({"category": {"$eq": "documents"}})
    full = grpc_codec.search_query(search_pb2.SearchRequest(
        vector=[1], k=3, filter_json='{"year": {"$gte": 2020}}', filters={"ignored": "x"}, collection="c"))
    assert full.filter == parse_filter({"year": {"$gte": 2020}}) and full.k == 3
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
    assert (ctx.request_id, ctx.tenant, ctx.journal_request_id) == ("abc", "acme", "~w4:acme3:abc")
    assert grpc_codec.request_context(None, request_id="given").request_id == "given"
    assert len(grpc_codec.request_context(None).request_id) == 32
    with pytest.raises(InvalidRequest):
        grpc_codec.request_context([("x-tenant", "no/slashes")])


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    await until(predicate, timeout)


async def test_schema_cache_follows_the_watch() -> None:
    fake = FakeDownstream()
    cache = SchemaCache(fake)
    await fake.create_collection(collection_pb2.CreateCollectionRequest(name="a", dim=2))
    assert (await cache.get("default", "a")).dim == 2
    # Kept (the meta manager answered it), possibly stale until the stream is connected.
    assert not cache.watching and ("default", "a") in cache._schemas
    task = asyncio.create_task(cache.run_watch())
    await _until(lambda: cache.watching)
    fake.collections.clear()  # the cache answers without asking
    assert (await cache.get("default", "a")).dim == 2
    await fake.create_collection(collection_pb2.CreateCollectionRequest(name="a", dim=5))
    # The PUT event replaces the entry once the watch has read it.
    await _until(lambda: ("default", "a") in cache._schemas and cache._schemas["default", "a"].dim == 5)
    assert (await cache.get("default", "a")).dim == 5
    await fake.drop_collection(collection_pb2.DropCollectionRequest(name="a"))
    await _until(lambda: ("default", "a") not in cache._schemas)
    with pytest.raises(NotFound):
        await cache.get("default", "a")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- idempotency keys: one namespace per (kind, tenant, collection, verb, id) ---------------------------

def _decode_key(key: str) -> tuple[str, ...]:
    """The fields a journal key stands for, read back the one way the encoding allows."""
    if not key.startswith("~") or key.startswith("~~"):
        return ("w", DEFAULT_TENANT, key[1:] if key.startswith("~~") else key)
    kind, rest, fields = key[1], key[2:], []
    if kind == "h":
        return ("h", rest)
    while rest:
        m = re.match(r"(\d+):", rest)
        assert m is not None, key
        n = int(m.group(1))
        fields.append(rest[m.end():m.end() + n])
        rest = rest[m.end() + n:]
    return (kind, *fields)


def test_a_default_tenant_id_that_spells_another_tenants_key_is_its_own() -> None:
    assert journal_request_id(DEFAULT_TENANT, "acme/o-1") != journal_request_id("acme", "o-1")
    assert journal_request_id(DEFAULT_TENANT, "o-1") == "o-1"  # the default tenant's ids stay as given
    for tenant in (DEFAULT_TENANT, "acme"):
        ddl = ddl_request_id(tenant, "create", "c", "r1")
        assert journal_request_id(DEFAULT_TENANT, ddl) != ddl  # a data write never answers as a DDL
        assert journal_request_id(tenant, "c/create/r1") != ddl
        assert journal_request_id(DEFAULT_TENANT, journal_request_id("acme", "o-1")) != \
            journal_request_id("acme", "o-1")
    assert ddl_request_id("a", "drop", "b_c", "r") != ddl_request_id("a_b", "drop", "c", "r")


_names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_-]{0,127}", fullmatch=True)
_ids = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=128)
_verbs = st.sampled_from(["create", "create-default", "alter", "drop"])


@settings(max_examples=500, deadline=None)
@given(_names, _ids)
def test_data_write_keys_round_trip(tenant: str, request_id: str) -> None:
    key = journal_request_id(tenant, request_id)
    assert len(key.encode()) <= MAX_JOURNAL_KEY_BYTES
    if not key.startswith("~h"):
        assert _decode_key(key) == ("w", tenant, request_id)


@settings(max_examples=500, deadline=None)
@given(_names, _verbs, _names, _ids)
def test_ddl_keys_round_trip(tenant: str, verb: str, collection: str, request_id: str) -> None:
    key = ddl_request_id(tenant, verb, collection, request_id)
    assert len(key.encode()) <= MAX_JOURNAL_KEY_BYTES
    if not key.startswith("~h"):
        assert _decode_key(key) == ("d", tenant, collection, verb, request_id)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.just("w"), _names, _ids),
                          st.tuples(st.just("d"), _names, _verbs, _names, _ids)), min_size=2, max_size=6))
def test_keys_of_different_requests_differ(requests: list[tuple[str, ...]]) -> None:
    keys = {journal_request_id(r[1], r[2]) if r[0] == "w" else ddl_request_id(r[1], r[2], r[3], r[4])
            for r in set(requests)}
    assert len(keys) == len(set(requests))


@pytest.fixture
def http() -> Iterator[tuple[TestClient, FakeDownstream]]:
    fake = FakeDownstream()  # deduplicates appends by key across partitions, as the journal does
    with TestClient(create_app(Gateway(fake, SchemaCache(fake)), max_body_bytes=1 << 20),
                    raise_server_exceptions=False) as client:
        yield client, fake


def test_http_tenants_request_ids_never_answer_for_each_other(
        http: tuple[TestClient, FakeDownstream]) -> None:
    client, fake = http
    acme = {"X-Tenant": "acme", "X-Request-Id": "o-1"}
    first = client.post("/v1/vectors", json={"id": "a", "vector": [1, 0]}, headers=acme)
    assert first.status_code == 201, first.text
    # The default tenant's id spells acme's old key: a write of its own, not acme's duplicate.
    other = client.post("/v1/vectors", json={"id": "b", "vector": [0, 1]},
                        headers={"X-Request-Id": "acme/o-1"})
    assert other.status_code == 201, other.text
    assert other.json()["duplicate"] is False
    assert (other.json()["partition"], other.json()["offset"]) != \
        (first.json()["partition"], first.json()["offset"])
    # Round trips: a retry in the same tenant is the duplicate, and each tenant finds its own operation.
    again = client.post("/v1/vectors", json={"id": "a", "vector": [1, 0]}, headers=acme).json()
    assert (again["duplicate"], again["offset"]) == (True, first.json()["offset"])
    mine = client.get("/v1/operations/o-1", headers={"X-Tenant": "acme"}).json()
    assert (mine["partition"], mine["offset"]) == (first.json()["partition"], first.json()["offset"])
    assert client.get("/v1/operations/o-1").status_code == 404  # acme's id is not the default tenant's
    page = client.get(f"/v1/journal/{other.json()['partition']}",
                      params={"from_offset": other.json()["offset"], "limit": 1}).json()
    assert page["entries"][0]["request_id"] == "acme/o-1"  # the default tenant's ids read as given
    assert sum(len(rows) for rows in fake.rows.values()) == 2
