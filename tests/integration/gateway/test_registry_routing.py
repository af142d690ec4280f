"""The gateway routes from the meta manager's node registry, with real processes and no address
flags: nodes register themselves, the gateway follows the registry.

* Two query processors each serving shards {0, 1} of a 2-shard collection: a search is one
  QuerySearch call (naming both shards), eventual searches alternate between the two, a session's
  read-your-writes searches stay on one; /healthz shows the routing table.
* SIGSTOP of the meta manager: searches and reads by id keep working from the last table.
* kill -9 of one of two storage nodes hosting the same shard: reads by id keep answering (0 errors)
  and, once its lease expired, it is out of the table and no longer tried.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.gateway.cluster import Cluster, run_cluster
from tests.support.waits import until

pytestmark = pytest.mark.integration

DIM = 4
N = 20


def samples(address: str, name: str) -> list[tuple[dict[str, str], float]]:
    text = httpx.get(f"http://{address}/metrics", timeout=10).text
    return [(dict(s.labels), s.value) for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == name]


def routes(cluster: Cluster) -> dict[tuple[str, str], float]:
    """(query node id, reason) -> QuerySearch calls the gateway made."""
    out: dict[tuple[str, str], float] = {}
    for labels, value in samples(cluster.gateway.http_address, "vecraft_gateway_query_routes_total"):
        key = (labels["node"], labels["reason"])
        out[key] = out.get(key, 0.0) + value
    return out


def searches_served(cluster: Cluster) -> list[float]:
    """QuerySearch requests each query processor answered (its own metric)."""
    return [sum(v for _, v in samples(q.http_address, "vecraft_query_requests_total")) for q in cluster.query]


def routing(cluster: Cluster) -> dict[str, Any]:
    health = httpx.get(f"http://{cluster.gateway.http_address}/healthz", timeout=10).json()
    table: dict[str, Any] = health["routing"]
    return table


def seed(client: httpx.Client, collection: str, shards: int) -> None:
    r = client.post("/v1/collections", json={"name": collection, "dim": DIM, "metric": "l2",
                                             "shards": shards})
    assert r.status_code == 201, r.text
    r = client.post("/v1/vectors/batch", json={
        "collection": collection, "ids": [f"r{i}" for i in range(N)], "ack": "all",
        "vectors": [[float(i), 0.0, 0.0, 1.0] for i in range(N)]})
    assert r.status_code == 201, r.text


def search(client: httpx.Client, collection: str, **extra: Any) -> dict[str, Any]:
    r = client.post("/v1/vectors/search", json={"collection": collection, "vector": [0.0, 0.0, 0.0, 1.0],
                                                "k": N, **extra})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert len(body["results"]) == N and body["missing_shards"] == []
    return body


@pytest.fixture(scope="module")
def two_query_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with run_cluster(tmp_path_factory.mktemp("registry-routing"), shards=2, data_partitions=1,
                     storage_shards=[[0, 1]], query_shards=[[0, 1], [0, 1]]) as c:
        with c.client() as client:
            seed(client, "both", 2)
        yield c


def test_a_search_is_one_call_to_one_query_node_serving_all_its_shards(two_query_nodes: Cluster) -> None:
    cluster = two_query_nodes
    table = routing(cluster)
    assert table["registry_watch"] is True and table["shard_count"] == 2
    assert [[n.split("@")[0] for n in table["shards"][s]["query"]] for s in ("0", "1")] == \
        [["query-0", "query-1"]] * 2
    assert [n.split("@")[0] for n in table["shards"]["0"]["storage"]] == ["storage-0"]
    with cluster.client() as client:
        before, served_before = routes(cluster), searches_served(cluster)
        for _ in range(6):
            search(client, "both", consistency_level="eventual")
        after, served = routes(cluster), searches_served(cluster)
        calls = {k: v - before.get(k, 0.0) for k, v in after.items() if v > before.get(k, 0.0)}
        assert calls == {("query-0", "round_robin"): 3, ("query-1", "round_robin"): 3}, calls
        assert [b - a for a, b in zip(served_before, served, strict=True)] == [3, 3]

        # A session's read-your-writes searches all go to one node.
        token = client.post("/v1/vectors", json={"collection": "both", "id": "mine", "ack": "journal",
                                                 "vector": [0.0, 0.0, 0.0, 1.0]}).json()["session_token"]
        before = routes(cluster)
        for _ in range(4):
            search(client, "both", consistency_level="read_your_writes", session_token=token, k=N)
        calls = {k: v - before.get(k, 0.0) for k, v in routes(cluster).items() if v > before.get(k, 0.0)}
        assert len(calls) == 1 and list(calls.values()) == [4] and next(iter(calls))[1] == "affinity", calls


def test_searches_and_reads_keep_working_while_the_meta_manager_is_stopped(two_query_nodes: Cluster) -> None:
    cluster = two_query_nodes
    os.kill(cluster.meta.pid, signal.SIGSTOP)
    try:
        with cluster.client(timeout=10) as client:
            for _ in range(10):
                search(client, "both", consistency_level="eventual")
                search(client, "both", consistency_level="strong")
            r = client.get("/v1/vectors/r3", params={"collection": "both"})
            assert r.status_code == 200 and r.json()["id"] == "r3", r.text
        ready = httpx.get(f"http://{cluster.gateway.http_address}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
    finally:
        os.kill(cluster.meta.pid, signal.SIGCONT)
    with cluster.client() as client:
        search(client, "both")


@pytest.fixture(scope="module")
def two_storage_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with run_cluster(tmp_path_factory.mktemp("registry-storage"), shards=1, data_partitions=1,
                     storage_shards=[[0], [0]], query_shards=[[0]], node_args=["--node-ttl-ms", "3000"]) as c:
        with c.client() as client:
            seed(client, "replicated", 1)
        yield c


async def test_reads_by_id_survive_kill_9_of_a_storage_replica(two_storage_nodes: Cluster) -> None:
    cluster = two_storage_nodes
    ids = [f"r{i}" for i in range(0, N, 7)]

    def storage_nodes() -> list[str]:
        return [n.split("@")[0] for n in routing(cluster)["shards"]["0"]["storage"]]

    def tried(node: str) -> float:
        calls = samples(cluster.gateway.http_address, "vecraft_gateway_storage_calls_total")
        return sum(v for labels, v in calls if labels["node"] == node)

    assert storage_nodes() == ["storage-0", "storage-1"]
    with cluster.client() as client:
        def get_all() -> None:
            for record_id in ids:
                r = client.get(f"/v1/vectors/{record_id}", params={"collection": "replicated"})
                assert r.status_code == 200 and r.json()["id"] == record_id, r.text

        get_all()
        answered = next(n for n in ("storage-0", "storage-1") if tried(n) > 0)
        victim = next(p for p in cluster.storage if p.name == answered)
        victim.kill()
        reads = 0

        def read_until_gone() -> bool:
            nonlocal reads
            get_all()  # every read answers while the dead node is still in the table
            reads += 1
            return answered not in storage_nodes()

        await until(read_until_gone, timeout=60)
        assert reads >= 1 and storage_nodes() == [n for n in ("storage-0", "storage-1") if n != answered]
        before = tried(answered)
        for _ in range(5):
            get_all()
        assert tried(answered) == before  # out of the table: never tried again
