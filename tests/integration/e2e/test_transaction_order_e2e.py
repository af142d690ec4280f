"""Order across partitions end to end: transactions, cold query processors, restarts (real processes).

Two cases that lost or hid acknowledged writes when transactions lived in a
partition of their own, which replicas applied in whatever order it arrived:

- create a collection, write into it by a transaction, then search STRONG on
  a query processor that starts cold (kill -9, restarted by the supervisor):
  the search must find the transaction's records;
- a transaction deletes an id, a later insert of the same id is acknowledged:
  after every query processor and storage node is killed and restarted, the
  insert must still be there, in searches and in reads by id.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import LocalCluster
from tests.support.e2e import checked_info, vec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SHARDS = 2
DIM = 4


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    logging.getLogger("httpx").setLevel(logging.WARNING)
    c = LocalCluster(Path(tmp_path_factory.mktemp("txn-order")) / "data", shards=SHARDS, data_partitions=2)
    c.start()
    try:
        yield c
    finally:
        c.stop()


def _restart(cluster: LocalCluster, role: str) -> None:
    for row in cluster.processes(role):
        old = cluster.kill(row["name"])
        cluster.wait_restarted(row["name"], old)
    cluster.wait_ready()


def _strong_search(c: httpx.Client, collection: str, vector: list[float], k: int = 10) -> list[str]:
    r = c.post("/v1/vectors/search", json={"collection": collection, "vector": vector, "k": k,
                                            "consistency_level": "strong"})
    info = checked_info(r)
    assert info["level_achieved"] == "strong"
    return [h["id"] for h in r.json()["results"]]


def _strong_get(c: httpx.Client, collection: str, record_id: str) -> httpx.Response:
    return c.get(f"/v1/vectors/{record_id}", params={"collection": collection, "consistency_level": "strong"})


def test_transaction_order_survives_cold_query_processors_and_restarts(cluster: LocalCluster) -> None:
    with httpx.Client(base_url=cluster.endpoint, timeout=30.0) as c:
        for name in ("orders", "stock"):
            r = c.post("/v1/collections", json={"name": name, "dim": DIM, "metric": "l2"})
            assert r.status_code == 201, r.text
        txn = c.post("/v1/transactions", json={"operations": [
            {"op": "insert", "collection": "orders", "ids": ["o1", "o2", "o3"],
             "vectors": [vec(1, DIM), vec(2, DIM), vec(3, DIM)]},
            {"op": "insert", "collection": "stock", "ids": ["s1"], "vectors": [vec(4, DIM)]}]})
        assert txn.status_code == 201, txn.text

        # Case 1: a cold query processor answers STRONG with the transaction's records.
        _restart(cluster, "query")
        assert sorted(_strong_search(c, "orders", vec(1, DIM))) == ["o1", "o2", "o3"]
        assert _strong_search(c, "stock", vec(4, DIM)) == ["s1"]

        # Case 2: a transactional delete, then an acknowledged insert of the same id.
        gone = c.post("/v1/transactions", json={"operations": [
            {"op": "delete", "collection": "orders", "ids": ["o2"]},
            {"op": "delete", "collection": "stock", "ids": ["s1"]}]})
        assert gone.status_code == 201, gone.text
        back = c.post("/v1/vectors", json={"collection": "orders", "id": "o2", "vector": vec(20, DIM),
                                           "metadata": {"version": 2}})
        assert back.status_code == 201, back.text
        assert back.json()["offset"] > gone.json()["offset"]
        for role in ("query", "storage"):
            _restart(cluster, role)
            assert sorted(_strong_search(c, "orders", vec(1, DIM))) == ["o1", "o2", "o3"]
            assert _strong_search(c, "stock", vec(4, DIM)) == []
            got = _strong_get(c, "orders", "o2")
            assert got.status_code == 200 and got.json()["metadata"] == {"version": 2}, got.text
            assert _strong_get(c, "stock", "s1").status_code == 404
