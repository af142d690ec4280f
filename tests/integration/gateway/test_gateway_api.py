"""The gateway over a real cluster: the spec's HTTP example, round trips, exact search across shards,
idempotent retries, sessions and gRPC parity."""

from __future__ import annotations

import base64
import uuid

import grpc
import numpy as np
import orjson
import pytest

from tests.integration.gateway.cluster import Cluster
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.model.routing import shard_of
from vecraft.shared.rpc.v1 import gateway_pb2, gateway_pb2_grpc, search_pb2, search_pb2_grpc

pytestmark = pytest.mark.integration

SPEC_HEADERS = {"Content-Type": "application/json", "X-Consistency-Level": "bounded",
                "X-Max-Staleness-Ms": "500"}
SPEC_BODY = b"""{
  "vector": [0.1, 0.2, 0.3, 0.4],
  "k": 10,
  "consistency_level": "bounded",
  "max_staleness_ms": 500,
  "filters": {
    "category": "documents"
  }
}"""


def _create(cluster: Cluster, name: str, dim: int, metric: str = "cosine") -> dict:
    with cluster.client() as c:
        r = c.post("/v1/collections", json={"name": name, "dim": dim, "metric": metric,
                                            "hnsw": {"ef_construction": 200}})
        assert r.status_code == 201, r.text
        return r.json()


def test_spec_http_example(cluster: Cluster) -> None:
    """The spec's curl-able example: exact body and headers, the spec's response shape and headers."""
    with cluster.client() as c:
        for i, (category, title) in enumerate([("documents", "ML Paper"), ("images", "Cat"),
                                               ("documents", "Databases")]):
            r = c.post("/v1/vectors", json={"id": f"doc_{123 + i}", "vector": [0.1 * (i + 1), 0.2, 0.3, 0.4],
                                            "metadata": {"title": title, "category": category}})
            assert r.status_code == 201, r.text
        r = c.post("/v1/vectors/search", content=SPEC_BODY, headers=SPEC_HEADERS)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert [hit["id"] for hit in body["results"]] == ["doc_123", "doc_125"]
    top = body["results"][0]
    assert set(top) == {"id", "score", "metadata"}
    assert top["metadata"] == {"title": "ML Paper", "category": "documents"}
    assert top["score"] == pytest.approx(1.0, abs=1e-5)
    info = body["consistency_info"]
    assert set(info) == {"level_requested", "level_achieved", "staleness_ms", "max_allowed_staleness_ms",
                         "index_version", "cache_hit", "sync_performed"}
    assert info["level_requested"] == info["level_achieved"] == "bounded"
    assert info["max_allowed_staleness_ms"] == 500 and info["staleness_ms"] <= 500
    assert info["index_version"] >= 3
    # The headers always tell the same story as consistency_info.
    assert r.headers["X-Actual-Staleness-Ms"] == str(info["staleness_ms"])
    assert r.headers["X-Index-Version-Used"] == str(info["index_version"])
    assert r.headers["X-Consistency-Achieved"] == "bounded"
    assert r.headers["X-Cache-Hit"] == str(info["cache_hit"]).lower()
    assert r.headers["X-Sync-Performed"] == str(info["sync_performed"]).lower()
    assert r.headers["X-Request-Id"]


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_three_shard_search_equals_exact_numpy(cluster: Cluster, metric: str) -> None:
    dim, n = 24, 900
    rng = np.random.default_rng(11)
    data = rng.normal(size=(n, dim)).astype(np.float32)
    ids = [f"{metric}-{i}" for i in range(n)]
    assert len({shard_of(i, 3) for i in ids}) == 3
    name = f"exact_{metric}"
    _create(cluster, name, dim, metric)
    with cluster.client() as c:
        for lo in range(0, n, 300):
            r = c.post("/v1/vectors/batch", json={
                "collection": name, "ids": ids[lo:lo + 300],
                "vectors_b64": base64.b64encode(data[lo:lo + 300].tobytes()).decode(), "dim": dim})
            assert r.status_code == 201, r.text
        queries = rng.normal(size=(5, dim)).astype(np.float32)
        for q in queries:
            r = c.post("/v1/vectors/search", json={"collection": name, "vector": q.tolist(), "k": 10,
                                                   "ef_search": 1024, "consistency_level": "strong"})
            assert r.status_code == 200, r.text
            got = r.json()["results"]
            if metric == "cosine":
                exact = data @ q / (np.linalg.norm(data, axis=1) * np.linalg.norm(q))
            elif metric == "ip":
                exact = data @ q
            else:
                exact = -((data - q) ** 2).sum(axis=1)
            order = np.argsort(-exact)[:10]
            assert [h["id"] for h in got] == [ids[i] for i in order]
            assert [h["score"] for h in got] == pytest.approx(exact[order].tolist(), rel=1e-3, abs=1e-3)
            assert r.json()["consistency_info"]["level_achieved"] == "strong"


def test_insert_get_upsert_delete_round_trip(cluster: Cluster) -> None:
    _create(cluster, "rt", 3)
    with cluster.client() as c:
        r = c.post("/v1/vectors", json={"collection": "rt", "vector": [1, 2, 3], "metadata": {"a": 1},
                                        "document": "first"})
        assert r.status_code == 201, r.text
        rid = r.json()["id"]
        got = c.get(f"/v1/vectors/{rid}", params={"collection": "rt", "consistency_level": "strong"}).json()
        assert got["vector"] == [1, 2, 3] and got["metadata"] == {"a": 1} and got["document"] == "first"
        assert got["offset"] == r.json()["offset"]
        r = c.put(f"/v1/vectors/{rid}", json={"collection": "rt", "vector": [3, 2, 1], "metadata": {"a": 2}})
        assert r.status_code == 200, r.text
        got = c.get(f"/v1/vectors/{rid}", params={"collection": "rt", "consistency_level": "strong"}).json()
        assert got["vector"] == [3, 2, 1] and got["metadata"] == {"a": 2} and got["document"] is None
        r = c.post("/v1/vectors/upsert", json={"collection": "rt", "ids": [rid, "other"],
                                               "vectors": [[0, 0, 1], [0, 1, 0]]})
        assert r.status_code == 201 and r.json()["ids"] == [rid, "other"]
        r = c.post("/v1/vectors/delete", json={"collection": "rt", "ids": [rid, "never-was"]})
        assert r.status_code == 200, r.text
        assert r.json()["deleted_ids"] == [rid] and r.json()["missing_ids"] == ["never-was"]
        r = c.get(f"/v1/vectors/{rid}", params={"collection": "rt", "consistency_level": "strong"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = c.delete(f"/v1/vectors/{rid}", params={"collection": "rt"})
        assert r.status_code == 200 and r.json()["deleted"] is False


def test_idempotent_retry_same_offset_one_record(cluster: Cluster) -> None:
    _create(cluster, "idem", 2)
    rid = f"retry-{uuid.uuid4().hex}"
    with cluster.client() as c:
        answers = [c.post("/v1/vectors", json={"collection": "idem", "vector": [1, 0]},
                          headers={"X-Request-Id": rid}).json() for _ in range(3)]
        assert len({(a["offset"], a["id"]) for a in answers}) == 1
        assert [a["duplicate"] for a in answers] == [False, True, True]
        r = c.post("/v1/vectors/search", json={"collection": "idem", "vector": [1, 0], "k": 10,
                                               "consistency_level": "strong"})
        assert [h["id"] for h in r.json()["results"]] == [answers[0]["id"]]
        op = c.get(f"/v1/operations/{rid}").json()
        assert (op["partition"], op["offset"]) == (answers[0]["partition"], answers[0]["offset"])
        page = c.get(f"/v1/journal/{op['partition']}",
                     params={"from_offset": op["offset"], "limit": 1}).json()
        assert page["entries"][0]["request_id"] == rid
        assert page["entries"][0]["summary"]["mutations"][0]["ids"] == [answers[0]["id"]]


def test_read_your_writes_with_the_session_token(cluster: Cluster) -> None:
    _create(cluster, "ryw", 4)
    with cluster.client() as c:
        token = ""
        for i in range(5):
            r = c.post("/v1/vectors", json={"collection": "ryw", "id": f"w{i}", "vector": [1, i, 0, 0],
                                            "ack": "journal", "session_token": token or None})
            assert r.status_code == 201, r.text
            token = r.json()["session_token"]
        r = c.post("/v1/vectors/search", json={"collection": "ryw", "vector": [1, 4, 0, 0], "k": 5,
                                               "consistency_level": "read_your_writes"},
                   headers={"X-Session-Token": token})
        assert r.status_code == 200, r.text
        assert {h["id"] for h in r.json()["results"]} == {f"w{i}" for i in range(5)}
        got = c.get("/v1/vectors/w4", params={"collection": "ryw", "consistency_level": "read_your_writes"},
                    headers={"X-Session-Token": token})
        assert got.status_code == 200


def test_collection_lifecycle(cluster: Cluster) -> None:
    coll = _create(cluster, "life", 8, "l2")
    assert coll["partition"].startswith("data-") and coll["collection_id"] and coll["shards"] == 3
    with cluster.client() as c:
        assert c.post("/v1/collections", json={"name": "life", "dim": 8}).status_code == 409
        assert "life" in {x["name"] for x in c.get("/v1/collections").json()["collections"]}
        r = c.patch("/v1/collections/life", json={"hnsw": {"ef_search": 321}})
        assert r.status_code == 200 and r.json()["hnsw"]["ef_search"] == 321
        assert c.delete("/v1/collections/life").status_code == 200
        assert c.get("/v1/collections/life").status_code == 404
        r = c.post("/v1/vectors", json={"collection": "life", "vector": [0] * 8})
        assert r.status_code == 404


def test_grpc_search_matches_http(cluster: Cluster) -> None:
    dim = 8
    _create(cluster, "parity", dim)
    rng = np.random.default_rng(3)
    data = rng.normal(size=(60, dim)).astype(np.float32)
    with cluster.client() as c:
        r = c.post("/v1/vectors/batch", json={
            "collection": "parity", "ids": [f"p{i}" for i in range(60)], "vectors": data.tolist(),
            "metadatas": [{"category": "documents" if i % 3 else "images"} for i in range(60)]})
        assert r.status_code == 201, r.text
        q = rng.normal(size=dim).astype(np.float32)
        http = c.post("/v1/vectors/search", json={"collection": "parity", "vector": q.tolist(), "k": 7,
                                                  "consistency_level": "strong",
                                                  "filters": {"category": "documents"}}).json()

    async def call() -> search_pb2.SearchResponse:
        async with grpc_channel(cluster.grpc_address) as channel:
            stub = search_pb2_grpc.VectorSearchServiceStub(channel)
            return await stub.Search(search_pb2.SearchRequest(
                vector=q.tolist(), k=7, consistency_level=search_pb2.STRONG, max_staleness_ms=0,
                min_required_offset=0, filters={"category": "documents"}, collection="parity"), timeout=30)

    import asyncio
    answer = asyncio.run(call())
    assert [x.id for x in answer.results] == [h["id"] for h in http["results"]]
    assert [x.score for x in answer.results] == pytest.approx([h["score"] for h in http["results"]], rel=1e-6)
    assert [orjson.loads(x.metadata_json) for x in answer.results] == [h["metadata"] for h in http["results"]]
    info = answer.consistency_info
    assert info.level_requested == info.level_achieved == search_pb2.STRONG
    assert info.index_version_used >= http["consistency_info"]["index_version"]


def test_grpc_write_get_and_errors(cluster: Cluster) -> None:
    _create(cluster, "grpcw", 2)

    async def run() -> None:
        async with grpc_channel(cluster.grpc_address) as channel:
            vectors = gateway_pb2_grpc.VectorServiceStub(channel)
            vec = np.array([[1, 2], [3, 4]], dtype="<f4")
            w = await vectors.Insert(gateway_pb2.WriteVectorsRequest(
                collection="grpcw", ids=["g1", "g2"], dim=2, vectors=vec.tobytes(),
                metadata_json=['{"k": 1}', ""], request_id="grpc-write-1"), timeout=30)
            again = await vectors.Insert(gateway_pb2.WriteVectorsRequest(
                collection="grpcw", ids=["g1", "g2"], dim=2, vectors=vec.tobytes(),
                request_id="grpc-write-1"), timeout=30)
            assert (again.partition, again.offset) == (w.partition, w.offset)
            got = await vectors.Get(gateway_pb2.GetVectorsRequest(
                collection="grpcw", ids=["g1", "g2", "g3"], include_vectors=True, strong=True), timeout=30)
            assert [r.id for r in got.records] == ["g1", "g2"] and list(got.missing_ids) == ["g3"]
            assert np.frombuffer(got.records[1].vector, dtype="<f4").tolist() == [3, 4]
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await vectors.Insert(gateway_pb2.WriteVectorsRequest(
                    collection="grpcw", dim=3, vectors=np.zeros(3, dtype="<f4").tobytes()), timeout=30)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "dimension 3" in (err.value.details() or "")

    import asyncio
    asyncio.run(run())


def test_transaction_across_collections(cluster: Cluster) -> None:
    _create(cluster, "txn_a", 2)
    _create(cluster, "txn_b", 3)
    with cluster.client() as c:
        r = c.post("/v1/transactions", json={"operations": [
            {"op": "insert", "collection": "txn_a", "ids": ["a1", "a2"], "vectors": [[1, 0], [0, 1]]},
            {"op": "upsert", "collection": "txn_b", "ids": ["b1"], "vectors": [[1, 2, 3]],
             "metadatas": [{"from": "txn"}]}]})
        assert r.status_code == 201, r.text
        # Every collection of a tenant lives in its data partition: one entry there.
        assert r.json()["partition"].startswith("data-") and r.json()["ids"] == ["a1", "a2", "b1"]
        a = c.post("/v1/vectors/search", json={"collection": "txn_a", "vector": [1, 0], "k": 5,
                                               "consistency_level": "strong"}).json()
        b = c.get("/v1/vectors/b1", params={"collection": "txn_b", "consistency_level": "strong"}).json()
        assert [h["id"] for h in a["results"]] == ["a1", "a2"]
        assert b["metadata"] == {"from": "txn"} and b["offset"] == r.json()["offset"]
        summary = c.get(f"/v1/journal/{r.json()['partition']}",
                        params={"from_offset": r.json()["offset"], "limit": 1}).json()
        kinds = [(m["kind"], m["collection"]) for m in summary["entries"][0]["summary"]["mutations"]]
        assert kinds == [("insert", "txn_a"), ("upsert", "txn_b")]
