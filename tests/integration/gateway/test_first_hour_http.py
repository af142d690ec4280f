"""Issue 15 over a real cluster: ?collection= honoured (1), ids with "/" addressable by path (2),
405 for a known path with the wrong method (11)."""

from __future__ import annotations

import uuid

import pytest

from tests.integration.gateway.cluster import Cluster

pytestmark = pytest.mark.integration


def test_query_collection_is_honoured_and_never_creates_default(cluster: Cluster) -> None:
    # A tenant of its own, so "no default collection" is checkable on the shared cluster.
    headers = {"X-Tenant": f"t{uuid.uuid4().hex[:12]}"}
    with cluster.client() as c:
        r = c.post("/v1/collections", json={"name": "docs", "dim": 4}, headers=headers)
        assert r.status_code == 201, r.text
        r = c.put("/v1/vectors/doc_124?collection=docs", json={"vector": [1, 0, 0, 0]}, headers=headers)
        assert r.status_code == 200, r.text
        r = c.post("/v1/vectors/batch?collection=docs&ack=all",
                   json={"ids": ["a", "b"], "vectors": [[0, 1, 0, 0], [0, 0, 1, 0]]}, headers=headers)
        assert r.status_code == 201, r.text
        r = c.get("/v1/vectors/doc_124?collection=docs&consistency_level=strong", headers=headers)
        assert r.status_code == 200, r.text
        r = c.post("/v1/vectors/search?collection=docs",
                   json={"vector": [1, 0, 0, 0], "k": 5, "consistency_level": "strong"}, headers=headers)
        assert r.status_code == 200, r.text
        assert {h["id"] for h in r.json()["results"]} == {"doc_124", "a", "b"}
        r = c.post("/v1/vectors?collection=docs", json={"id": "c", "vector": [0, 0, 0, 1],
                                                         "collection": "other"}, headers=headers)
        assert r.status_code == 400 and r.json()["error"]["details"] == {"body": "other", "query": "docs"}
        r = c.post("/v1/vectors/delete?colection=docs", json={"ids": ["a"]}, headers=headers)
        assert r.status_code == 400, r.text
        r = c.post("/v1/vectors/delete?collection=docs", json={"ids": ["a"]}, headers=headers)
        assert r.status_code == 200 and r.json()["deleted_ids"] == ["a"]
        listed = c.get("/v1/collections", headers=headers).json()["collections"]
        assert [col["name"] for col in listed] == ["docs"]


def test_ids_with_slashes_by_path_and_405_for_action_paths(cluster: Cluster) -> None:
    headers = {"X-Tenant": f"t{uuid.uuid4().hex[:12]}"}
    with cluster.client() as c:
        assert c.post("/v1/collections", json={"name": "files", "dim": 2}, headers=headers).status_code == 201
        r = c.post("/v1/vectors?collection=files", json={"id": "dir/a.txt", "vector": [1, 0]},
                   headers=headers)
        assert r.status_code == 201, r.text
        for path_id in ("dir/a.txt", "dir%2Fa.txt"):
            r = c.get(f"/v1/vectors/{path_id}?collection=files&consistency_level=strong", headers=headers)
            assert r.status_code == 200 and r.json()["id"] == "dir/a.txt", r.text
        r = c.put("/v1/vectors/dir%2Fa.txt?collection=files", json={"vector": [0, 1], "metadata": {"v": 2}},
                  headers=headers)
        assert r.status_code == 200 and r.json()["ids"] == ["dir/a.txt"], r.text
        r = c.get("/v1/vectors/dir/a.txt?collection=files&consistency_level=strong", headers=headers)
        assert r.json()["metadata"] == {"v": 2}
        r = c.delete("/v1/vectors/dir/a.txt?collection=files", headers=headers)
        assert r.status_code == 200 and r.json()["deleted_ids"] == ["dir/a.txt"], r.text
        r = c.get("/v1/vectors/search", headers=headers)
        assert r.status_code == 405 and r.headers["Allow"] == "POST", r.text
        assert r.json()["error"]["code"] == "method_not_allowed"
