"""The HTTP layer over an in-memory cluster: request parsing, headers, merge, error mapping."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from tests.unit.gateway.fakes import FakeDownstream
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.journal_router.sessions import decode_session, decode_token
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.common.errors import DeadlineExceeded, InvalidRequest, RateLimited, Unavailable

pytestmark = pytest.mark.unit

SPEC_BODY = {"vector": [0.1, 0.2, 0.3, 0.4], "k": 10, "consistency_level": "bounded",
             "max_staleness_ms": 500, "filters": {"category": "documents"}}


@pytest.fixture
def fake() -> FakeDownstream:
    return FakeDownstream()


@pytest.fixture
def client(fake: FakeDownstream) -> Iterator[TestClient]:
    app = create_app(Gateway(fake, SchemaCache(fake)), max_body_bytes=1 << 20)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _seed(client: TestClient, n: int = 30, dim: int = 4) -> np.ndarray:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    metas = [{"category": "documents" if i % 2 else "images", "i": i} for i in range(n)]
    r = client.post("/v1/vectors/batch", json={"ids": [f"doc_{i}" for i in range(n)],
                                               "vectors": vectors.tolist(), "metadatas": metas})
    assert r.status_code == 201, r.text
    return vectors


def test_spec_search_shape_and_headers(client: TestClient) -> None:
    _seed(client)
    r = client.post("/v1/vectors/search", json=SPEC_BODY,
                    headers={"X-Consistency-Level": "bounded", "X-Max-Staleness-Ms": "500"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"results", "consistency_info", "partition", "missing_shards"}
    assert len(body["results"]) == 10
    assert all(set(hit) == {"id", "score", "metadata"} for hit in body["results"])
    assert all(hit["metadata"]["category"] == "documents" for hit in body["results"])
    scores = [hit["score"] for hit in body["results"]]
    assert scores == sorted(scores, reverse=True)
    info = body["consistency_info"]
    assert info == {"level_requested": "bounded", "level_achieved": "bounded", "staleness_ms": 6,
                    "max_allowed_staleness_ms": 500, "index_version": info["index_version"],
                    "cache_hit": False, "sync_performed": True}
    # The fake reports index_version = head - shard (head is 1): the combined minimum is 0.
    assert info["index_version"] == 0
    assert r.headers["X-Actual-Staleness-Ms"] == "6"
    assert r.headers["X-Index-Version-Used"] == str(info["index_version"])
    assert r.headers["X-Consistency-Achieved"] == "bounded"
    assert r.headers["X-Cache-Hit"] == "false"
    assert r.headers["X-Sync-Performed"] == "true"
    assert r.headers["X-Request-Id"]


def test_search_matches_exact_numpy(client: TestClient) -> None:
    vectors = _seed(client, n=50)
    q = np.array([0.3, -0.1, 0.9, 0.2], dtype=np.float32)
    r = client.post("/v1/vectors/search", json={"vector": q.tolist(), "k": 7})
    cos = vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
    expected = [f"doc_{i}" for i in np.argsort(-cos)[:7]]
    assert [h["id"] for h in r.json()["results"]] == expected


def test_headers_apply_when_body_is_silent_and_body_wins(client: TestClient, fake: FakeDownstream) -> None:
    _seed(client)
    body = {"vector": [1, 0, 0, 0], "k": 3}
    r = client.post("/v1/vectors/search", json=body, headers={"X-Consistency-Level": "strong"})
    assert r.json()["consistency_info"]["level_requested"] == "strong"
    assert r.json()["consistency_info"]["max_allowed_staleness_ms"] == 0
    assert fake.search_requests[-1].min_offset == 1  # the journal head, read once
    r = client.post("/v1/vectors/search", json={**body, "consistency_level": "eventual"},
                    headers={"X-Consistency-Level": "strong"})
    assert r.json()["consistency_info"]["level_requested"] == "eventual"
    assert r.json()["consistency_info"]["max_allowed_staleness_ms"] is None
    r = client.post("/v1/vectors/search", json=body, headers={"X-Max-Staleness-Ms": "250"})
    assert r.json()["consistency_info"]["level_requested"] == "bounded"
    assert fake.search_requests[-1].max_staleness_ms == 250


def test_read_your_writes_passes_the_session_offset(client: TestClient, fake: FakeDownstream) -> None:
    first = client.post("/v1/vectors", json={"vector": [1, 2, 3, 4], "id": "a"}).json()
    second = client.post("/v1/vectors", json={"vector": [1, 2, 3, 5], "id": "b"},
                         headers={"X-Session-Token": first["session_token"]}).json()
    assert decode_session(second["session_token"]) == {second["partition"]: 2}
    r = client.post("/v1/vectors/search", json={"vector": [1, 2, 3, 4], "k": 2,
                                                "consistency_level": "read_your_writes",
                                                "session_token": second["session_token"]})
    assert r.status_code == 200
    assert {q.min_offset for q in fake.search_requests} == {2}


def test_session_keeps_its_identity_and_pins_its_reads(client: TestClient, fake: FakeDownstream) -> None:
    first = client.post("/v1/vectors", json={"vector": [1, 2, 3, 4], "id": "a"}).json()
    second = client.post("/v1/vectors", json={"vector": [1, 2, 3, 5], "id": "b"},
                         headers={"X-Session-Token": first["session_token"]}).json()
    sid = decode_token(first["session_token"])[1]
    assert sid and decode_token(second["session_token"])[1] == sid
    other = client.post("/v1/vectors", json={"vector": [1, 2, 3, 6], "id": "c"}).json()
    assert decode_token(other["session_token"])[1] not in ("", sid)
    seen = []
    for level in ("read_your_writes", "eventual"):
        client.post("/v1/vectors/search", json={"vector": [1, 2, 3, 4], "k": 2, "consistency_level": level,
                                                "session_token": second["session_token"]})
        seen.append(set(fake.search_affinities))
        fake.search_affinities.clear()
    assert seen == [{f"s:{sid}"}, {None}]  # only read-your-writes reads are pinned


def test_write_get_delete_round_trip(client: TestClient) -> None:
    r = client.post("/v1/vectors", json={"vector": [0.5, 0.25, 0, 1], "metadata": {"t": "x"},
                                         "document": "hello"})
    assert r.status_code == 201
    out = r.json()
    assert out["id"] == out["ids"][0] and len(out["id"]) == 32
    assert out["partition"].startswith("data-") and out["offset"] == 1 and out["duplicate"] is False
    got = client.get(f"/v1/vectors/{out['id']}").json()
    assert got == {"id": out["id"], "vector": [0.5, 0.25, 0.0, 1.0], "metadata": {"t": "x"},
                   "document": "hello", "offset": 1, "hlc": out["hlc"]}
    got = client.get(f"/v1/vectors/{out['id']}", params={"include_vector": "false"}).json()
    assert got["vector"] is None
    r = client.put(f"/v1/vectors/{out['id']}", json={"vector": [1, 1, 1, 1]})
    assert r.status_code == 200
    assert client.get(f"/v1/vectors/{out['id']}").json()["metadata"] is None
    r = client.delete(f"/v1/vectors/{out['id']}")
    assert r.json()["deleted"] is True and r.json()["deleted_ids"] == [out["id"]]
    assert client.get(f"/v1/vectors/{out['id']}").status_code == 404
    again = client.delete(f"/v1/vectors/{out['id']}").json()
    assert again["deleted"] is False and again["missing_ids"] == [out["id"]]


def test_retry_with_same_request_id_returns_original_position(client: TestClient,
                                                              fake: FakeDownstream) -> None:
    headers = {"X-Request-Id": "retry-1"}
    first = client.post("/v1/vectors", json={"vector": [1, 2, 3, 4]}, headers=headers).json()
    second = client.post("/v1/vectors", json={"vector": [1, 2, 3, 4]}, headers=headers).json()
    assert (second["offset"], second["id"], second["duplicate"]) == (first["offset"], first["id"], True)
    assert sum(len(rows) for rows in fake.rows.values()) == 1


def test_batch_b64_and_implicit_default_collection(client: TestClient) -> None:
    matrix = np.arange(12, dtype="<f4").reshape(3, 4) + 1
    r = client.post("/v1/vectors/batch", json={"vectors_b64": base64.b64encode(matrix.tobytes()).decode(),
                                               "dim": 4, "ids": ["x", "y", "z"]})
    assert r.status_code == 201 and r.json()["ids"] == ["x", "y", "z"] and r.json()["id"] is None
    coll = client.get("/v1/collections/default").json()
    assert (coll["dim"], coll["metric"]) == (4, "cosine")
    r = client.post("/v1/vectors/batch", json={"vectors": [[1, 2, 3]]})
    assert r.status_code == 400 and "expects 4" in r.json()["error"]["message"]


def test_collection_crud(client: TestClient) -> None:
    r = client.post("/v1/collections", json={"name": "papers", "dim": 8, "metric": "l2", "shards": 2,
                                             "hnsw": {"m": 8}})
    assert r.status_code == 201, r.text
    assert r.json()["hnsw"]["m"] == 8 and r.json()["created_at"].endswith("Z")
    assert client.post("/v1/collections", json={"name": "papers", "dim": 8}).status_code == 409
    assert [c["name"] for c in client.get("/v1/collections").json()["collections"]] == ["papers"]
    r = client.patch("/v1/collections/papers", json={"hnsw": {"ef_search": 99}})
    assert r.json()["hnsw"]["ef_search"] == 99
    assert client.delete("/v1/collections/papers").json()["dropped"] is True
    assert client.get("/v1/collections/papers").status_code == 404


def test_operations_and_journal(client: TestClient) -> None:
    client.post("/v1/vectors", json={"vector": [1, 2, 3, 4], "id": "a"}, headers={"X-Request-Id": "op-1"})
    op = client.get("/v1/operations/op-1").json()
    assert op["offset"] == 1 and op["replicas_applied"] == ["storage-0-r0"]
    assert client.get("/v1/operations/nope").status_code == 404
    # Request ids may hold '/' (any printable ASCII but space): the route takes the rest of the path.
    client.post("/v1/vectors", json={"vector": [1, 2, 3, 4], "id": "b"},
                headers={"X-Request-Id": "batch/2026/7"})
    slashed = client.get("/v1/operations/batch/2026/7").json()
    assert slashed["request_id"] == "batch/2026/7" and slashed["offset"] > op["offset"]
    page = client.get(f"/v1/journal/{op['partition']}").json()
    assert page["entries"][0]["summary"]["mutations"][0] == {
        "kind": "insert", "collection": "default", "collection_id": "c1", "count": 1, "dim": 4, "ids": ["a"]}
    assert page["next_offset"] == slashed["offset"] + 1
    assert client.get("/v1/journal/data-99").status_code == 404


def _b64(values: list[float]) -> str:
    return base64.b64encode(np.asarray(values, dtype="<f4").tobytes()).decode()


def test_a_base64_query_vector_finds_what_the_list_finds(client: TestClient) -> None:
    _seed(client, n=50)
    q = [0.3, -0.1, 0.9, 0.2]
    as_list = client.post("/v1/vectors/search", json={"vector": q, "k": 7}).json()
    as_b64 = client.post("/v1/vectors/search", json={"vector_b64": _b64(q), "k": 7}).json()
    assert [h["id"] for h in as_b64["results"]] == [h["id"] for h in as_list["results"]]
    assert [h["score"] for h in as_b64["results"]] == [h["score"] for h in as_list["results"]]


def test_searches_are_answered_by_the_lean_route_not_fastapis(client: TestClient) -> None:
    """The first route matching POST /v1/vectors/search is the plain Starlette one (no FastAPI
    parameter solving per search); the FastAPI route behind it still documents it."""
    from fastapi.routing import APIRoute
    from starlette.routing import Match
    scope = {"type": "http", "path": "/v1/vectors/search", "method": "POST", "root_path": ""}
    app = client.app
    first = next(r for r in app.router.routes if r.matches(scope)[0] is Match.FULL)  # type: ignore[attr-defined]
    assert not isinstance(first, APIRoute)
    assert client.get("/v1/vectors/search").status_code == 405
    r = client.post("/v1/vectors/search?colection=docs", json={"vector": [1, 0, 0, 0]})
    assert r.status_code == 400
    assert r.json()["error"]["details"] == {"unknown_query_parameters": ["colection"]}


@pytest.mark.parametrize(("kwargs", "status", "fragment"), [
    ({"content": b"{not json"}, 400, "not valid JSON"),
    ({"content": b'{"vector": [NaN, 1, 2, 3]}'}, 400, "NaN and Infinity"),
    ({"content": b""}, 400, "empty"),
    ({"content": b"[1, 2]"}, 400, "must be a JSON object"),
    ({"json": {"vector": [1, 2, 3, 4], "filter": {}}}, 400, "unknown field 'filter'"),
    ({"json": {"vector": [1, 2, 3, 4], "k": 0}}, 400, "between 1 and 1024"),
    ({"json": {"vector": [1, 2, 3, 4], "k": "ten"}}, 400, "k must be an integer"),
    ({"json": {"vector": [1, 2, 3, 4], "consistency_level": "perfect"}}, 400, "accepted: eventual"),
    ({"json": {"vector": [1, 2, 3, 4], "max_staleness_ms": -5}}, 400, "between 0 and"),
    ({"json": {"vector": [1, 2, 3, 4], "filters": {"a": {"$regex": "x"}}}}, 400, "$regex"),
    ({"json": {"k": 3}}, 400, "vector is required"),
    ({"json": {"vector": [1, 2, 3]}}, 400, "dimension"),
    ({"json": {"vector_b64": _b64([1, 2, 3])}}, 400, "dimension"),
    ({"json": {"vector_b64": _b64([1, 2, 3, 4]), "vector": [1, 2, 3, 4]}}, 400, "not both"),
    ({"json": {"vector_b64": "not base64!"}}, 400, "vector_b64 is not valid base64"),
    ({"json": {"vector_b64": base64.b64encode(b"12345").decode()}}, 400, "5 bytes"),
    ({"json": {"vector_b64": _b64([1, float("nan"), 3, 4])}}, 400, "nan"),
])
def test_bad_searches_are_400(client: TestClient, kwargs: dict, status: int, fragment: str) -> None:
    _seed(client)
    r = client.post("/v1/vectors/search", headers={"Content-Type": "application/json"}, **kwargs)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and fragment in r.json()["error"]["message"]


def test_framework_errors_use_the_error_shape(client: TestClient) -> None:
    r = client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = client.put("/v1/collections")
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = client.get("/v1/vectors/a", params={"include_vector": "maybe"})
    assert r.status_code == 400 and "include_vector" in r.json()["error"]["message"]
    r = client.get("/v1/journal/data-0", params={"limit": 0})
    assert r.status_code == 400
    r = client.post("/v1/vectors/search", content=b"x" * (2 << 20))
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    r = client.post("/v1/vectors", json={"vector": [1, 2, 3, 4]}, headers={"X-Request-Id": "a b"})
    assert r.status_code == 400 and "X-Request-Id" in r.json()["error"]["message"]


def test_rate_limit_maps_to_429_with_retry_after(client: TestClient, fake: FakeDownstream) -> None:
    fake.fail_append = RateLimited("journal back-pressure", retry_after_ms=1200)
    r = client.post("/v1/vectors", json={"vector": [1, 2, 3, 4]})
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert r.json()["error"]["details"]["retry_after_ms"] == 1200


def test_shard_failure_fails_or_is_partial(client: TestClient, fake: FakeDownstream) -> None:
    _seed(client)
    fake.fail_shards[1] = Unavailable("query processor for shard 1 is unavailable")
    r = client.post("/v1/vectors/search", json={"vector": [1, 0, 0, 0], "k": 50})
    assert r.status_code == 503 and r.json()["error"]["details"]["failed_shards"] == [1]
    r = client.post("/v1/vectors/search", json={"vector": [1, 0, 0, 0], "k": 50, "allow_partial": True})
    assert r.status_code == 200 and r.json()["missing_shards"] == [1]
    assert len(r.json()["results"]) == 30 - sum(1 for i in range(30) if _shard(f"doc_{i}") == 1)
    fake.fail_shards[1] = DeadlineExceeded("too slow")
    assert client.post("/v1/vectors/search", json={"vector": [1, 0, 0, 0]}).status_code == 504
    fake.fail_shards[1] = InvalidRequest("bad filter for this shard")
    r = client.post("/v1/vectors/search", json={"vector": [1, 0, 0, 0], "allow_partial": True})
    assert r.status_code == 400


def _shard(record_id: str) -> int:
    from vecraft.shared.model.routing import shard_of
    return shard_of(record_id, 3)


def test_scores_are_short_float32_and_metadata_is_embedded(client: TestClient) -> None:
    client.post("/v1/vectors", json={"vector": [1, 0, 0, 0], "id": "a", "metadata": {"x": [1, {"y": None}]}})
    raw = client.post("/v1/vectors/search", json={"vector": [1, 0, 0, 0], "k": 1}).content
    hit = orjson.loads(raw)["results"][0]
    assert hit == {"id": "a", "score": 1.0, "metadata": {"x": [1, {"y": None}]}}


def test_openapi_documents_every_route_and_body(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert {"/v1/vectors/search", "/v1/vectors", "/v1/vectors/batch", "/v1/collections"} <= set(doc["paths"])
    ref = doc["paths"]["/v1/vectors/search"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert ref == {"$ref": "#/components/schemas/SearchRequest"}
    assert "SearchRequest" in doc["components"]["schemas"]


def test_collections_cannot_have_more_shards_than_the_cluster_serves(client: TestClient) -> None:
    r = client.post("/v1/collections", json={"name": "wide", "dim": 4, "shards": 4})
    assert r.status_code == 400 and r.json()["error"]["details"] == {"max_shards": 3}


def test_transaction_writes_several_collections_in_one_entry_of_their_partition(
        client: TestClient, fake: FakeDownstream) -> None:
    for name in ("left", "right"):
        assert client.post("/v1/collections", json={"name": name, "dim": 2}).status_code == 201
    client.post("/v1/vectors", json={"collection": "right", "id": "old", "vector": [1, 1]})
    r = client.post("/v1/transactions", json={"operations": [
        {"op": "insert", "collection": "left", "ids": ["l1"], "vectors": [[1, 0]]},
        {"op": "upsert", "collection": "right", "vectors": [[0, 1], [1, 1]]},
        {"op": "delete", "collection": "right", "ids": ["old"]}]}, headers={"X-Request-Id": "txn-1"})
    assert r.status_code == 201, r.text
    out = r.json()
    partition = fake.collections[("default", "left")].partition
    before = len(fake.journal[partition]) - 1
    assert out["partition"] == partition and len(out["ids"]) == 4 and out["ids"][0] == "l1"
    assert decode_session(out["session_token"]) == {partition: out["offset"]}
    assert set(fake.rows[fake.collections[("default", "right")].collection_id]) == set(out["ids"][1:3])
    again = client.post("/v1/transactions", json={"operations": [
        {"op": "upsert", "collection": "right", "vectors": [[0, 1], [1, 1]]}]},
        headers={"X-Request-Id": "txn-1"})
    assert again.json()["offset"] == out["offset"] and again.json()["duplicate"] is True
    # One bad step refuses the whole transaction before anything is appended.
    r = client.post("/v1/transactions", json={"operations": [
        {"op": "insert", "collection": "left", "vectors": [[1, 0]]},
        {"op": "insert", "collection": "right", "vectors": [[1, 0, 0]]}]})
    assert r.status_code == 400 and "operations[1]" in r.json()["error"]["message"]
    r = client.post("/v1/transactions", json={"operations": [{"op": "merge", "collection": "left"}]})
    assert r.status_code == 400 and "insert, upsert, delete" in r.json()["error"]["message"]
    assert len(fake.journal[partition]) == before + 1


def test_default_collection_is_empty_before_its_first_insert(client: TestClient) -> None:
    r = client.post("/v1/vectors/search", json={"vector": [0.1, 0.2, 0.3, 0.4],
                                                "consistency_level": "bounded", "max_staleness_ms": 500})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == [] and r.json()["consistency_info"]["max_allowed_staleness_ms"] == 500
    assert r.headers["X-Consistency-Achieved"] == "bounded"
    other = client.post("/v1/vectors/search", json={"vector": [1, 2], "collection": "other"})
    assert other.status_code == 404
    assert client.post("/v1/vectors/search", json={"vector": ["x"]}).status_code == 400
