"""Issue 15 ("what a new user hits in the first hour"), the HTTP side: each test failed before its fix."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from tests.unit.gateway.fakes import FakeDownstream
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.merge import merge_top_k
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.rpc.v1 import query_pb2, search_pb2

pytestmark = pytest.mark.unit


@pytest.fixture
def fake() -> FakeDownstream:
    return FakeDownstream()


@pytest.fixture
def client(fake: FakeDownstream) -> Iterator[TestClient]:
    app = create_app(Gateway(fake, SchemaCache(fake)), max_body_bytes=1 << 20)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


# --- 16: scores stay in the metric's documented range ------------------------------------------------

def _unit_float32_vector_scoring_above_one() -> np.ndarray:
    """A normalized float32 vector whose float32 cosine similarity with itself rounds above 1."""
    v = np.array([0.1865168660879135, -0.1959734559059143, 0.9500470757484436, 0.15561605989933014],
                 dtype=np.float32)
    assert (v @ v) / (np.linalg.norm(v) * np.linalg.norm(v)) > 1  # the float error the fix is about
    return v


def test_cosine_score_of_a_vector_with_itself_is_at_most_one(client: TestClient) -> None:
    v = _unit_float32_vector_scoring_above_one()
    r = client.post("/v1/vectors", json={"id": "self", "vector": v.tolist()})
    assert r.status_code == 201, r.text
    r = client.post("/v1/vectors/search", json={"vector": v.tolist(), "k": 1})
    assert r.status_code == 200, r.text
    # Parsed from the raw bytes: the wire must say 1.0, not 1.0000001.
    assert orjson.loads(r.content)["results"][0] == {"id": "self", "score": 1.0, "metadata": None}


def _answer(*hits: tuple[str, float]) -> query_pb2.QuerySearchResponse:
    return query_pb2.QuerySearchResponse(results=[search_pb2.ScoredVector(id=i, score=s) for i, s in hits])


def test_merge_clamps_scores_per_metric_and_ties_fall_back_to_id() -> None:
    answers = [_answer(("b", 1.0000001), ("c", -1.0000001)), _answer(("a", 1.0))]
    cosine = merge_top_k(answers, 3, metric="cosine")
    assert [(h.id, h.score) for h in cosine] == [("a", 1.0), ("b", 1.0), ("c", -1.0)]
    l2 = merge_top_k([_answer(("x", 1e-7), ("y", -2.0))], 2, metric="l2")
    assert [(h.id, h.score) for h in l2] == [("x", 0.0), ("y", -2.0)]
    ip = merge_top_k([_answer(("x", 7.5), ("y", -3.0))], 2, metric="ip")
    assert [(h.id, h.score) for h in ip] == [("x", 7.5), ("y", -3.0)]


# --- 1: ?collection= is honoured by every endpoint that takes a collection ---------------------------

def _create(client: TestClient, name: str, dim: int = 4) -> None:
    r = client.post("/v1/collections", json={"name": name, "dim": dim})
    assert r.status_code == 201, r.text


def _collections(fake: FakeDownstream) -> set[str]:
    return {name for _, name in fake.collections}


def test_query_collection_routes_every_write_search_and_delete(client: TestClient,
                                                               fake: FakeDownstream) -> None:
    _create(client, "docs")
    r = client.post("/v1/vectors?collection=docs", json={"id": "one", "vector": [1, 0, 0, 0]})
    assert r.status_code == 201, r.text
    r = client.post("/v1/vectors/batch?collection=docs",
                    json={"ids": ["two", "three"], "vectors": [[0, 1, 0, 0], [0, 0, 1, 0]]})
    assert r.status_code == 201, r.text
    r = client.post("/v1/vectors/upsert?collection=docs", json={"ids": ["four"], "vectors": [[0, 0, 0, 1]]})
    assert r.status_code == 201, r.text
    # The reported bug: PUT with ?collection= answered 200, then GET of the same collection 404.
    r = client.put("/v1/vectors/doc_124?collection=docs", json={"vector": [1, 1, 0, 0]})
    assert r.status_code == 200, r.text
    r = client.get("/v1/vectors/doc_124?collection=docs")
    assert r.status_code == 200, r.text
    r = client.post("/v1/vectors/search?collection=docs", json={"vector": [1, 0, 0, 0], "k": 10})
    assert r.status_code == 200, r.text
    assert {h["id"] for h in r.json()["results"]} == {"one", "two", "three", "four", "doc_124"}
    r = client.post("/v1/vectors/delete?collection=docs", json={"ids": ["one", "nope"]})
    assert r.status_code == 200, r.text
    assert r.json()["deleted_ids"] == ["one"] and r.json()["missing_ids"] == ["nope"]
    assert client.get("/v1/vectors/one?collection=docs").status_code == 404
    # Nothing went to, or created, the default collection.
    assert _collections(fake) == {"docs"}


WRITE_REQUESTS = [
    ("POST", "/v1/vectors", {"id": "x", "vector": [1, 0, 0, 0]}),
    ("POST", "/v1/vectors/batch", {"ids": ["x"], "vectors": [[1, 0, 0, 0]]}),
    ("POST", "/v1/vectors/upsert", {"ids": ["x"], "vectors": [[1, 0, 0, 0]]}),
    ("PUT", "/v1/vectors/x", {"vector": [1, 0, 0, 0]}),
    ("POST", "/v1/vectors/search", {"vector": [1, 0, 0, 0]}),
    ("POST", "/v1/vectors/delete", {"ids": ["x"]}),
]


@pytest.mark.parametrize(("method", "path", "body"), WRITE_REQUESTS)
def test_body_and_query_collection_must_agree(client: TestClient, fake: FakeDownstream, method: str,
                                              path: str, body: dict[str, object]) -> None:
    _create(client, "docs")
    _create(client, "papers")
    r = client.request(method, f"{path}?collection=docs", json={**body, "collection": "papers"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert "'papers'" in error["message"] and "'docs'" in error["message"]
    assert error["details"] == {"body": "papers", "query": "docs"}
    # Agreeing is fine.
    r = client.request(method, f"{path}?collection=docs", json={**body, "collection": "docs"})
    assert r.status_code < 300, r.text
    assert _collections(fake) == {"docs", "papers"}


@pytest.mark.parametrize(("method", "path", "body"), WRITE_REQUESTS)
def test_an_unknown_collection_in_the_query_is_404_and_creates_nothing(
        client: TestClient, fake: FakeDownstream, method: str, path: str, body: dict[str, object]) -> None:
    r = client.request(method, f"{path}?collection=docs", json=body)
    assert r.status_code == 404, r.text
    assert "docs" in r.json()["error"]["message"]
    assert _collections(fake) == set()


@pytest.mark.parametrize(("method", "path", "body"), WRITE_REQUESTS)
def test_a_misspelt_query_parameter_is_refused_not_dropped(
        client: TestClient, fake: FakeDownstream, method: str, path: str, body: dict[str, object]) -> None:
    r = client.request(method, f"{path}?colection=docs", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert "'colection'" in error["message"] and "collection" in error["message"]
    assert error["details"] == {"unknown_query_parameters": ["colection"]}
    # Never a write to an implicitly created default collection.
    assert _collections(fake) == set()


def test_query_parameters_of_reads_are_still_accepted(client: TestClient) -> None:
    _create(client, "docs")
    client.put("/v1/vectors/a?collection=docs", json={"vector": [1, 0, 0, 0]})
    r = client.get("/v1/vectors/a?collection=docs&include_vector=false&consistency_level=strong")
    assert r.status_code == 200, r.text
    assert client.get("/v1/journal/data-0?from_offset=1&limit=5").status_code == 200
    assert client.get("/v1/collections?x=1").status_code == 400


# --- 2: ids holding "/" are addressable by path ------------------------------------------------------

@pytest.mark.parametrize("path_id", ["a/b", "a%2Fb", "x/y/z.txt", "x%2Fy%2Fz.txt"])
def test_ids_with_slashes_can_be_read_replaced_and_deleted_by_path(client: TestClient,
                                                                   path_id: str) -> None:
    record_id = path_id.replace("%2F", "/")
    r = client.post("/v1/vectors", json={"id": record_id, "vector": [1, 0, 0, 0], "metadata": {"v": 1}})
    assert r.status_code == 201, r.text
    r = client.get(f"/v1/vectors/{path_id}")
    assert r.status_code == 200, r.text
    assert r.json()["id"] == record_id and r.json()["metadata"] == {"v": 1}
    r = client.put(f"/v1/vectors/{path_id}", json={"vector": [0, 1, 0, 0], "metadata": {"v": 2}})
    assert r.status_code == 200, r.text
    assert r.json()["ids"] == [record_id]
    assert client.get(f"/v1/vectors/{path_id}").json()["metadata"] == {"v": 2}
    r = client.delete(f"/v1/vectors/{path_id}")
    assert r.status_code == 200, r.text
    assert r.json()["deleted_ids"] == [record_id]
    assert client.get(f"/v1/vectors/{path_id}").status_code == 404


def test_action_paths_still_win_for_post(client: TestClient) -> None:
    r = client.post("/v1/vectors/batch", json={"ids": ["search/1", "batch"], "vectors": [[1, 0, 0, 0]] * 2})
    assert r.status_code == 201, r.text
    r = client.post("/v1/vectors/upsert", json={"ids": ["delete/x"], "vectors": [[0, 1, 0, 0]]})
    assert r.status_code == 201, r.text
    r = client.post("/v1/vectors/search", json={"vector": [1, 0, 0, 0], "k": 5})
    assert r.status_code == 200 and {h["id"] for h in r.json()["results"]} == {"search/1", "batch",
                                                                               "delete/x"}
    # Ids that merely begin with an action name are ids.
    assert client.get("/v1/vectors/search/1").json()["id"] == "search/1"
    assert client.get("/v1/vectors/delete/x").json()["id"] == "delete/x"
    r = client.post("/v1/vectors/delete", json={"ids": ["search/1"]})
    assert r.status_code == 200 and r.json()["deleted_ids"] == ["search/1"]


def test_openapi_and_metrics_keep_the_plain_id_template(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/v1/vectors/{vector_id}" in paths
    assert not any(":" in p for p in paths)


# --- 11: a known path with the wrong method is 405, not a read of an id ------------------------------

@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/v1/vectors/search", "POST"),
    ("PUT", "/v1/vectors/search", "POST"),
    ("DELETE", "/v1/vectors/batch", "POST"),
    ("GET", "/v1/vectors/upsert", "POST"),
    ("GET", "/v1/vectors/delete", "POST"),
    ("GET", "/v1/vectors", "POST"),
    ("GET", "/v1/transactions", "POST"),
    ("PUT", "/v1/collections", "GET, POST"),
    ("POST", "/v1/collections/docs", "DELETE, GET, PATCH"),
    ("POST", "/v1/vectors/a/b", "DELETE, GET, PUT"),
])
def test_wrong_method_on_a_known_path_is_405_with_allow(client: TestClient, fake: FakeDownstream,
                                                        method: str, path: str, allow: str) -> None:
    r = client.request(method, path, json={"vector": [1, 0, 0, 0]})
    assert r.status_code == 405, r.text
    assert r.headers["Allow"] == allow
    assert r.headers["X-Request-Id"]
    error = r.json()["error"]
    assert error["code"] == "method_not_allowed"
    assert error["message"] == f"{method} is not allowed on {path}; allowed: {allow}"
    assert error["details"] == {"method": method, "path": path, "allowed": allow.split(", ")}
    assert _collections(fake) == set()


def test_vector_actions_are_exactly_the_fixed_paths_under_vectors(client: TestClient) -> None:
    from vecraft.services.api_gateway.handlers.http_routes import VECTOR_ACTIONS
    paths = client.get("/openapi.json").json()["paths"]
    fixed = {p.removeprefix("/v1/vectors/") for p in paths if p.startswith("/v1/vectors/") and "{" not in p}
    assert fixed == set(VECTOR_ACTIONS)
    assert all(set(paths[f"/v1/vectors/{action}"]) == {"post"} for action in VECTOR_ACTIONS)


# --- 15: /docs works offline: every asset it loads is served by the gateway --------------------------

def test_swagger_ui_page_loads_only_local_assets(client: TestClient) -> None:
    import re

    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert "://" not in page  # no CDN, no online validator
    urls = re.findall(r'(?:src|href)="([^"]+)"', page) + re.findall(r"url: '([^']+)'", page)
    assert len(urls) == 4, urls
    expected_types = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "json"}
    for url in urls:
        assert url.startswith("/")
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert expected_types[url[url.rindex("."):]] in asset.headers["content-type"], url
    js = client.get(next(u for u in urls if u.endswith(".js"))).text
    assert "SwaggerUIBundle" in js and len(js) > 100_000
    # FastAPI's CDN pages are gone, not shadowing ours.
    assert client.get("/redoc").status_code == 404


def test_swagger_ui_urls_follow_the_root_path(fake: FakeDownstream) -> None:
    app = create_app(Gateway(fake, SchemaCache(fake)))
    with TestClient(app, root_path="/vecraft") as c:
        page = c.get("/docs").text
    assert 'src="/vecraft/docs-assets/swagger-ui-bundle.js"' in page
    assert "url: '/vecraft/openapi.json'" in page
