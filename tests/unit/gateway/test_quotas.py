"""Quotas and rate limits at the gateway (docs/quotas.md): the limiter's wiring into every operation,
HTTP and gRPC, and the /v1/quotas routes, over an in-memory cluster and an in-memory meta manager."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.unit.gateway.fakes import FakeDownstream
from vecraft.clients.meta import MetaClient
from vecraft.services.api_gateway.auth.principal import Principal, Role
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers.grpc_servicers import VectorServicer
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.models import CollectionSpec, RequestContext
from vecraft.services.api_gateway.quotas.book import QuotaBook
from vecraft.services.api_gateway.quotas.counts import StoredVectors
from vecraft.services.api_gateway.quotas.limiter import THROTTLED, Quotas
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.common.errors import InvalidRequest, NotFound, PayloadTooLarge, RateLimited
from vecraft.shared.rpc.v1 import gateway_pb2, meta_pb2

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


class FakeMeta:
    """The quota calls of MetaClient, in memory."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], meta_pb2.Quota] = {}

    async def set_quota(self, quota: meta_pb2.Quota) -> meta_pb2.Quota:
        stored = meta_pb2.Quota()
        stored.CopyFrom(quota)
        stored.updated_unix_ms = 1
        self.records[(quota.tenant, quota.key_id)] = stored
        return stored

    async def list_quotas(self, tenant: str = "") -> list[meta_pb2.Quota]:
        return [q for s, q in sorted(self.records.items()) if not tenant or q.tenant == tenant]

    async def delete_quota(self, tenant: str, key_id: str = "") -> meta_pb2.Quota:
        found = self.records.pop((tenant, key_id), None)
        if found is None:
            raise NotFound("no quota")
        return found


class Setup:
    def __init__(self) -> None:
        self.fake = FakeDownstream()
        self.meta = FakeMeta()
        self.book = QuotaBook(cast(MetaClient, self.meta))
        self.stored_reading: dict[str, int] = {}

        async def read() -> dict[str, int]:
            return dict(self.stored_reading)

        async def names(tenant: str) -> set[str]:
            return {s.name for s in await self.fake.list_collections(tenant)}

        self.quotas = Quotas(self.book, collection_names=names, stored=StoredVectors(read, max_age_s=3600))
        self.gateway = Gateway(self.fake, SchemaCache(self.fake), quotas=self.quotas)

    def set(self, tenant: str, key_id: str = "", **limits: int) -> None:
        self.book.put(meta_pb2.Quota(tenant=tenant, key_id=key_id, **limits))


@pytest.fixture
def setup() -> Setup:
    return Setup()


@pytest.fixture
def client(setup: Setup) -> Iterator[TestClient]:
    with TestClient(create_app(setup.gateway, quotas=setup.book), raise_server_exceptions=False) as c:
        yield c


def _batch(n: int, start: int = 0) -> dict[str, Any]:
    return {"ids": [f"v{start + i}" for i in range(n)], "vectors": np.eye(n, 4).tolist()}


def _count(client: TestClient, tenant: str, collection: str = "docs") -> int:
    r = client.get(f"/v1/collections/{collection}/records", headers={"X-Tenant": tenant},
                   params={"limit": 1000})
    assert r.status_code == 200, r.text
    return len(r.json()["records"])


def _throttled(tenant: str, limit: str) -> float:
    return THROTTLED.labels(tenant, limit)._value.get()


def test_a_tenant_over_its_write_rate_gets_429_and_nothing_is_written(setup: Setup,
                                                                      client: TestClient) -> None:
    for tenant in ("acme", "globex"):
        assert client.post("/v1/collections", json={"name": "docs", "dim": 4},
                           headers={"X-Tenant": tenant}).status_code == 201
    setup.set("acme", write_requests_per_s=2)
    before = _throttled("acme", "write_requests_per_s")
    for n in range(2):
        r = client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(1, n),
                        headers={"X-Tenant": "acme"})
        assert r.status_code == 201, r.text
    r = client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(1, 9),
                    headers={"X-Tenant": "acme"})
    assert r.status_code == 429, r.text
    assert int(r.headers["Retry-After"]) >= 1
    error = r.json()["error"]
    assert error["code"] == "rate_limited" and "write_requests_per_s" in error["message"]
    assert error["details"]["limit"] == "write_requests_per_s" and error["details"]["retry_after_ms"] > 0
    assert _count(client, "acme") == 2  # the refused write was not applied
    assert _throttled("acme", "write_requests_per_s") == before + 1
    # Another tenant is not limited by acme's quota.
    for n in range(5):
        assert client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(1, n),
                           headers={"X-Tenant": "globex"}).status_code == 201


def test_written_vectors_per_second_count_rows(setup: Setup, client: TestClient) -> None:
    setup.set("default", write_vectors_per_s=5)
    assert client.post("/v1/collections", json={"name": "docs", "dim": 4}).status_code == 201
    too_big = client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(6))
    assert too_big.status_code == 400 and "split the batch" in too_big.json()["error"]["message"]
    assert client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(3)).status_code == 201
    r = client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(3, 3))
    assert r.status_code == 429 and r.json()["error"]["details"]["limit"] == "write_vectors_per_s"
    assert _count(client, "default") == 3


def test_reads_are_limited_by_read_requests_per_s(setup: Setup, client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "docs", "dim": 4}).status_code == 201
    setup.set("default", read_requests_per_s=1)
    search = {"vector": [1, 0, 0, 0], "k": 1, "collection": "docs"}
    assert client.post("/v1/vectors/search", json=search).status_code == 200
    r = client.post("/v1/vectors/search", json=search)
    assert r.status_code == 429 and r.json()["error"]["details"]["limit"] == "read_requests_per_s"
    assert client.get("/v1/collections").status_code == 429
    # Writes have their own limits (none here).
    assert client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(1)).status_code == 201


def test_a_changed_or_cleared_quota_applies_at_once(setup: Setup, client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "docs", "dim": 4}).status_code == 201
    setup.set("default", read_requests_per_s=1)
    assert client.get("/v1/collections").status_code == 200
    assert client.get("/v1/collections").status_code == 429
    setup.set("default", read_requests_per_s=100)  # a new quota: fresh buckets
    assert client.get("/v1/collections").status_code == 200
    setup.set("default", read_requests_per_s=1)
    client.get("/v1/collections")
    assert client.get("/v1/collections").status_code == 429
    setup.book.remove("default", "")
    assert all(client.get("/v1/collections").status_code == 200 for _ in range(5))


def test_max_collections_counts_live_collections(setup: Setup, client: TestClient) -> None:
    setup.set("default", max_collections=1)
    assert client.post("/v1/collections", json={"name": "one", "dim": 4}).status_code == 201
    r = client.post("/v1/collections", json={"name": "two", "dim": 4})
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert r.json()["error"]["code"] == "quota_exceeded"
    assert r.json()["error"]["details"] == {"tenant": "default", "limit": "max_collections", "quota": 1,
                                            "have": 1}
    # Creating the existing one again is not a new collection: its own answer (409), not the quota's.
    assert client.post("/v1/collections", json={"name": "one", "dim": 4}).status_code == 409
    # Nor may the implicit default collection be created past the quota.
    r = client.post("/v1/vectors", json={"vector": [1, 0, 0, 0], "id": "x"})
    assert r.status_code == 429 and r.json()["error"]["details"]["limit"] == "max_collections"
    assert [c["name"] for c in client.get("/v1/collections").json()["collections"]] == ["one"]
    assert client.delete("/v1/collections/one").status_code == 200
    assert client.post("/v1/collections", json={"name": "two", "dim": 4}).status_code == 201


def test_max_vectors_counts_stored_and_just_written_vectors(setup: Setup, client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "docs", "dim": 4}).status_code == 201
    setup.set("default", max_vectors=5)
    setup.stored_reading = {"default/docs": 2, "other/docs": 100}
    assert client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(2)).status_code == 201
    # 2 stored (the reading) + 2 just written (counted until the next reading) + 2 > 5.
    r = client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(2, 2))
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    assert r.json()["error"]["details"]["have"] == 4
    r = client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(1, 2))
    assert r.status_code == 201
    # Deletes are never refused for max_vectors.
    assert client.post("/v1/vectors/delete", params={"collection": "docs"}, json={"ids": ["v0"]}
                       ).status_code == 200


def test_max_request_bytes(setup: Setup, client: TestClient) -> None:
    assert client.post("/v1/collections", json={"name": "docs", "dim": 4}).status_code == 201
    setup.set("default", max_request_bytes=200)
    assert client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(1)).status_code == 201
    r = client.post("/v1/vectors/batch", params={"collection": "docs"}, json=_batch(10))
    assert r.status_code == 413 and r.json()["error"]["details"]["limit"] == "max_request_bytes"
    assert _count(client, "default") == 1


async def test_per_key_quota_and_the_tenant_quota_both_apply(setup: Setup) -> None:
    await setup.gateway.create_collection(CollectionSpec(name="docs", dim=4),
                                          RequestContext(request_id="c", tenant="acme"))
    setup.set("acme", read_requests_per_s=3)
    setup.set("acme", key_id="aaaaaaaaaaaa", read_requests_per_s=1)
    key_a = Principal(key_id="aaaaaaaaaaaa", role=Role.READ, tenant="acme")
    key_b = Principal(key_id="bbbbbbbbbbbb", role=Role.READ, tenant="acme")

    def ctx(p: Principal) -> RequestContext:
        return RequestContext(request_id="r", tenant="acme", principal=p)

    await setup.gateway.list_collections(ctx(key_a))
    with pytest.raises(RateLimited) as refused:
        await setup.gateway.list_collections(ctx(key_a))
    assert "key aaaaaaaaaaaa of tenant 'acme'" in refused.value.message
    assert refused.value.retry_after_ms is not None and refused.value.retry_after_ms > 0
    # Key b has no quota of its own, but shares the tenant's 3 per second with key a.
    await setup.gateway.list_collections(ctx(key_b))
    with pytest.raises(RateLimited) as refused:
        await setup.gateway.list_collections(ctx(key_b))
    assert "tenant 'acme'" in refused.value.message and refused.value.details.get("key_id") is None


class _Context:
    def invocation_metadata(self) -> list[tuple[str, Any]]:
        return [("x-tenant", "acme")]


async def test_grpc_calls_are_limited_like_http(setup: Setup) -> None:
    servicer = VectorServicer(setup.gateway)
    setup.set("acme", write_requests_per_s=1, max_request_bytes=1000)
    request = gateway_pb2.WriteVectorsRequest(collection="default", ids=["a"], dim=4,
                                              vectors=np.eye(1, 4, dtype="<f4").tobytes())
    await servicer.Insert(request, _Context())
    with pytest.raises(RateLimited):
        await servicer.Insert(request, _Context())
    big = gateway_pb2.WriteVectorsRequest(collection="default", ids=[f"b{i}" for i in range(100)], dim=4,
                                          vectors=np.zeros((100, 4), dtype="<f4").tobytes())
    with pytest.raises(PayloadTooLarge):
        await servicer.Insert(big, _Context())


# --- /v1/quotas ----------------------------------------------------------------------------------

def test_quota_routes_set_get_list_clear(setup: Setup, client: TestClient) -> None:
    r = client.put("/v1/quotas/acme", json={"write_requests_per_s": 10, "max_vectors": 1000})
    assert r.status_code == 200, r.text
    assert r.json()["write_requests_per_s"] == 10 and r.json()["max_vectors"] == 1000
    assert r.json()["read_requests_per_s"] == 0 and r.json()["key_id"] == ""
    assert setup.book.get("acme") is not None  # applied on this gateway at once
    r = client.put("/v1/quotas/acme", params={"key_id": "0123456789ab"}, json={"read_requests_per_s": 5})
    assert r.status_code == 200 and r.json()["key_id"] == "0123456789ab"
    assert client.get("/v1/quotas/acme").json()["max_vectors"] == 1000
    assert client.get("/v1/quotas/acme", params={"key_id": "0123456789ab"}).json()["read_requests_per_s"] == 5
    listed = client.get("/v1/quotas").json()["quotas"]
    assert [(q["tenant"], q["key_id"]) for q in listed] == [("acme", ""), ("acme", "0123456789ab")]
    assert client.delete("/v1/quotas/acme").status_code == 200
    assert setup.book.get("acme") is None
    assert client.get("/v1/quotas/acme").status_code == 404
    assert client.delete("/v1/quotas/acme").status_code == 404


@pytest.mark.parametrize(("path", "params", "body", "needle"), [
    ("/v1/quotas/acme", {}, {"write_requests_per_s": -1}, "between 0"),
    ("/v1/quotas/acme", {}, {"writes": 1}, "unknown field"),
    ("/v1/quotas/acme", {}, {"max_collections": "3"}, "integer"),
    ("/v1/quotas/acme", {"key_id": "0123456789ab"}, {"max_vectors": 5}, "whole tenant"),
    ("/v1/quotas/acme", {"key_id": "nope"}, {"read_requests_per_s": 1}, "key id"),
    ("/v1/quotas/9bad", {}, {"read_requests_per_s": 1}, "tenant name"),
    ("/v1/quotas/acme", {"tenant": "x"}, {"read_requests_per_s": 1}, "unknown query parameter"),
])
def test_bad_quotas_are_400(client: TestClient, path: str, params: dict[str, str], body: dict[str, Any],
                            needle: str) -> None:
    r = client.put(path, params=params, json=body)
    assert r.status_code == 400, r.text
    assert needle in r.json()["error"]["message"]


def test_limiter_refuses_a_batch_larger_than_a_second(setup: Setup) -> None:
    setup.set("acme", write_vectors_per_s=10)
    with pytest.raises(InvalidRequest):
        setup.quotas.admit_write(RequestContext(request_id="r", tenant="acme"), 11)
    setup.quotas.admit_write(RequestContext(request_id="r", tenant="acme"), 10)
