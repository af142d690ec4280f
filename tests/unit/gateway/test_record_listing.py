"""Record listing: GET /v1/collections/{name}/records and gRPC ListRecords over an in-memory cluster,
and the shard merge that keeps paging exact."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.gateway.fakes import FakeDownstream
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers.grpc_servicers import VectorServicer
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.listing import merge_scans
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.common.errors import InvalidRequest, NotFound
from vecraft.shared.rpc.v1 import gateway_pb2, search_pb2, storage_pb2

pytestmark = pytest.mark.unit

N = 250
DIM = 4


@pytest.fixture
def fake() -> FakeDownstream:
    return FakeDownstream()


@pytest.fixture
def client(fake: FakeDownstream) -> Iterator[TestClient]:
    with TestClient(create_app(Gateway(fake, SchemaCache(fake))), raise_server_exceptions=False) as c:
        yield c


def _seed(client: TestClient, n: int = N) -> dict[str, dict[str, Any]]:
    assert client.post("/v1/collections", json={"name": "docs", "dim": DIM}).status_code == 201
    vectors = np.random.default_rng(1).normal(size=(n, DIM)).astype(np.float32)
    ids = [f"rec-{i:04d}" for i in range(n)]
    metas = [{"i": i, "even": i % 2 == 0} for i in range(n)]
    docs = [f"text {i}" if i % 5 else None for i in range(n)]
    r = client.post("/v1/vectors/batch", json={"collection": "docs", "ids": ids, "vectors": vectors.tolist(),
                                               "metadatas": metas, "documents": docs})
    assert r.status_code == 201, r.text
    return {rid: {"vector": vectors[i], "metadata": metas[i], "document": docs[i]}
            for i, rid in enumerate(ids)}


def _pages(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    pages, after = [], None
    for _ in range(1000):
        r = client.get("/v1/collections/docs/records",
                       params={**params, **({"after": after} if after is not None else {})})
        assert r.status_code == 200, r.text
        pages.append(r.json())
        after = pages[-1]["next_cursor"]
        if after is None:
            return pages
    raise AssertionError("the listing never ended")


def test_pages_cover_every_record_once_in_id_order(client: TestClient, fake: FakeDownstream) -> None:
    written = _seed(client)
    pages = _pages(client, limit=100)
    assert [len(p["records"]) for p in pages] == [100, 100, 50]
    ids = [rec["id"] for p in pages for rec in p["records"]]
    assert ids == sorted(written)
    assert pages[0]["next_cursor"] == ids[99] and pages[-1]["next_cursor"] is None
    first = pages[0]["records"][0]
    assert set(first) == {"id", "vector", "metadata", "document", "offset", "hlc"}
    assert first["vector"] is None  # vectors are left out by default
    assert all(rec["metadata"] == written[rec["id"]]["metadata"] for p in pages for rec in p["records"])
    assert all(rec["document"] == written[rec["id"]]["document"] for p in pages for rec in p["records"])
    assert {p["collection"] for p in pages} == {"docs"} and pages[0]["partition"].startswith("data-")
    assert len(fake.scan_requests) == 3 * 3  # one scan per shard per page


def test_default_page_and_include_flags(client: TestClient) -> None:
    written = _seed(client, 120)
    r = client.get("/v1/collections/docs/records", params={
        "include_vectors": "true", "include_metadata": "false", "include_documents": "false"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["records"]) == 100 and body["next_cursor"] == body["records"][-1]["id"]
    for rec in body["records"]:
        assert rec["metadata"] is None and rec["document"] is None
        np.testing.assert_allclose(rec["vector"], written[rec["id"]]["vector"], rtol=1e-6)


def test_deleted_records_are_not_listed(client: TestClient) -> None:
    written = _seed(client)
    gone = sorted(written)[::7]
    r = client.post("/v1/vectors/delete", json={"collection": "docs", "ids": gone})
    assert r.status_code == 200, r.text
    ids = [rec["id"] for p in _pages(client, limit=37) for rec in p["records"]]
    assert ids == sorted(set(written) - set(gone))


def test_filter_pages_with_a_small_scan_budget_stay_exact(client: TestClient, fake: FakeDownstream) -> None:
    written = _seed(client)
    fake.scan_budget = 7  # each shard examines at most 7 ids per call: short pages, exact union
    pages = _pages(client, limit=20, filter='{"even": true, "i": {"$gte": 40}}')
    ids = [rec["id"] for p in pages for rec in p["records"]]
    expected = sorted(rid for rid, w in written.items() if w["metadata"]["even"] and w["metadata"]["i"] >= 40)
    assert ids == expected
    assert any(len(p["records"]) < 20 for p in pages[:-1])


@pytest.mark.parametrize(("params", "parameter"), [
    ({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"limit": "ten"}, "limit"),
    ({"include_vectors": "maybe"}, "include_vectors"), ({"min_required_offset": -1}, "min_required_offset"),
    ({"after": "has space"}, "after"), ({"filter": "{"}, "filter"), ({"filter": "[1]"}, "filter"),
    ({"filter": '{"i": {"$near": 1}}'}, "filter"), ({"consistency_level": "bounded"}, "consistency_level"),
    ({"consistency_level": "nope"}, "consistency_level"), ({"colection": "x"}, "colection"),
])
def test_bad_parameters_are_400_naming_the_parameter(client: TestClient, params: dict[str, Any],
                                                     parameter: str) -> None:
    _seed(client, 3)
    r = client.get("/v1/collections/docs/records", params=params)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    assert parameter in error["message"], error["message"]


def test_unknown_collection_is_404(client: TestClient) -> None:
    r = client.get("/v1/collections/nope/records")
    assert r.status_code == 404, r.text
    assert r.json()["error"]["code"] == "not_found"


def test_levels_choose_the_offset_every_shard_reads_at(client: TestClient, fake: FakeDownstream) -> None:
    _seed(client, 10)
    w = client.post("/v1/vectors", json={"collection": "docs", "id": "late", "vector": [1, 0, 0, 0]})
    assert w.status_code == 201
    head, token = w.json()["offset"], w.json()["session_token"]

    def offsets(**params: Any) -> set[int]:
        fake.scan_requests.clear()
        headers = params.pop("headers", {})
        r = client.get("/v1/collections/docs/records", params=params, headers=headers)
        assert r.status_code == 200, r.text
        return {req.min_offset for _, req in fake.scan_requests}

    assert offsets() == {0}
    assert offsets(consistency_level="strong") == {head}
    assert offsets(consistency_level="read_your_writes", headers={"X-Session-Token": token}) == {head}
    assert offsets(min_required_offset=1) == {1}


async def test_grpc_list_records_pages_like_http(fake: FakeDownstream) -> None:
    gateway = Gateway(fake, SchemaCache(fake))
    with TestClient(create_app(gateway)) as http:
        written = _seed(http, 60)
        over_http = http.get("/v1/collections/docs/records", params={"limit": 25}).json()

    class Context:
        def invocation_metadata(self) -> list[tuple[str, Any]]:
            return []

    servicer = VectorServicer(gateway)
    ids: list[str] = []
    after = ""
    while True:
        page = await servicer.ListRecords(gateway_pb2.ListRecordsRequest(
            collection="docs", after=after, limit=25, include_vectors=True), Context())
        ids += [rec.id for rec in page.records]
        if not after:
            assert [rec.id for rec in page.records] == [rec["id"] for rec in over_http["records"]]
            rec = page.records[0]
            assert rec.metadata_json and np.frombuffer(rec.vector, dtype="<f4").shape == (DIM,)
        after = page.next_cursor
        if not after:
            break
    assert ids == sorted(written)

    bare = await servicer.ListRecords(gateway_pb2.ListRecordsRequest(
        collection="docs", include_metadata=False, include_documents=False), Context())
    assert len(bare.records) == 60 and bare.next_cursor == ""
    assert all(not r.metadata_json and not r.document and not r.vector for r in bare.records)
    with pytest.raises(InvalidRequest):
        await servicer.ListRecords(gateway_pb2.ListRecordsRequest(
            collection="docs", consistency_level=search_pb2.BOUNDED_STALENESS), Context())
    with pytest.raises(NotFound):
        await servicer.ListRecords(gateway_pb2.ListRecordsRequest(collection="other"), Context())


# ---- the merge, against a model of the storage nodes' scans --------------------------------------

def _scan(ids: list[str], after: str, limit: int, budget: int,
          keep: set[str]) -> storage_pb2.ShardScanResponse:
    """One shard's Scan over its sorted ``ids``; ``keep`` are the ids the filter matches."""
    records, scanned_to, exhausted = [], "", True
    for examined, rid in enumerate(i for i in ids if i > after):
        if len(records) >= limit or examined >= budget:
            exhausted = False
            break
        scanned_to = rid
        if rid in keep:
            records.append(storage_pb2.StoredRecord(id=rid))
    return storage_pb2.ShardScanResponse(records=records, exhausted=exhausted, scanned_to=scanned_to)


@given(ids=st.sets(st.text("abcdef", min_size=1, max_size=4), max_size=60),
       shards=st.integers(1, 4), limit=st.integers(1, 12), budget=st.integers(1, 30),
       keep_every=st.integers(1, 3))
def test_paging_through_merged_scans_yields_every_matching_id_once(
        ids: set[str], shards: int, limit: int, budget: int, keep_every: int) -> None:
    ordered = sorted(ids)
    keep = set(ordered[::keep_every])
    per_shard = [[rid for rid in ordered if sum(map(ord, rid)) % shards == s] for s in range(shards)]
    seen: list[str] = []
    after: str | None = ""
    for _ in range(len(ordered) + 10):
        assert after is not None
        # Any budget, even below the limit (a byte budget can stop a page after one record).
        page, after = merge_scans([_scan(p, after, limit, budget, keep) for p in per_shard], limit)
        assert len(page) <= limit
        seen += [rec.id for rec in page]
        if after is None:
            break
    assert after is None, "the listing never ended"
    assert seen == sorted(keep)
