"""kill -9 behind and of the gateway: a dead query processor fails searches with a 503 naming the
shard (or yields a partial answer when allowed); a restarted gateway still answers a retried
request with the original journal position."""

from __future__ import annotations

import time
from collections.abc import Iterator

import numpy as np
import pytest

from tests.integration.gateway.cluster import Cluster, run_cluster
from vecraft.shared.model.routing import shard_of

pytestmark = pytest.mark.chaos

COLL = "victim"
N = 90


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with run_cluster(tmp_path_factory.mktemp("shard-failures"), shards=3, data_partitions=1,
                     gateway_args=["--search-timeout-ms", "5000"]) as c:
        with c.client() as client:
            created = client.post("/v1/collections", json={"name": COLL, "dim": 8, "metric": "l2"})
            assert created.status_code == 201
            data = np.random.default_rng(9).normal(size=(N, 8)).astype(np.float32)
            r = client.post("/v1/vectors/batch", json={"collection": COLL, "ids": [f"v{i}" for i in range(N)],
                                                       "vectors": data.tolist()})
            assert r.status_code == 201, r.text
        yield c


def _search(client, **extra):  # type: ignore[no-untyped-def]
    return client.post("/v1/vectors/search", json={"collection": COLL, "vector": [0] * 8, "k": N, **extra})


def test_dead_query_processor_fails_or_degrades_the_search(cluster: Cluster) -> None:
    with cluster.client() as client:
        assert len(_search(client).json()["results"]) == N
        cluster.query[1].kill()
        r = _search(client)
        assert r.status_code == 503, r.text
        error = r.json()["error"]
        assert error["code"] == "unavailable" and "shard 1" in error["message"]
        assert error["details"]["failed_shards"] == [1]
        r = _search(client, allow_partial=True)
        assert r.status_code == 200, r.text
        assert r.json()["missing_shards"] == [1]
        expected = {f"v{i}" for i in range(N) if shard_of(f"v{i}", 3) != 1}
        assert {h["id"] for h in r.json()["results"]} == expected
        # Writes do not need the query processor: the journal and storage still take them.
        late = client.post("/v1/vectors", json={"collection": COLL, "id": "late", "vector": [1] * 8})
        assert late.status_code == 201
        cluster.query[1].start()
        # The gateway reconnects within its (short) reconnect backoff; the deadline only catches a
        # processor that never comes back (a restart can take long on a loaded machine).
        deadline = time.monotonic() + 90
        while ((r := _search(client, consistency_level="strong", k=N + 1)).status_code == 503
               and time.monotonic() < deadline):
            time.sleep(0.2)
        assert r.status_code == 200 and len(r.json()["results"]) == N + 1
        assert r.json()["missing_shards"] == []


def test_retry_after_gateway_crash_returns_the_original_position(cluster: Cluster) -> None:
    # A collection of its own: a record added to COLL would change the other test's exact answers
    # whenever this test runs first (-k, reordering) or the other is retried.
    coll = "crash"
    body = {"collection": coll, "id": "crash-safe", "vector": [2] * 8}
    headers = {"X-Request-Id": "gateway-crash-retry"}
    with cluster.client() as client:
        created = client.post("/v1/collections", json={"name": coll, "dim": 8, "metric": "l2"})
        assert created.status_code == 201, created.text
        first = client.post("/v1/vectors", json=body, headers=headers).json()
    cluster.gateway.kill()
    cluster.gateway.start()
    with cluster.client() as client:
        again = client.post("/v1/vectors", json=body, headers=headers).json()
        assert ((again["partition"], again["offset"], again["duplicate"])
                == (first["partition"], first["offset"], True))
        r = client.get("/v1/operations/gateway-crash-retry").json()
        assert r["offset"] == first["offset"] and r["replicas_pending"] == []
        hits = _search(client, collection=coll, consistency_level="strong", k=1,
                       vector=[2] * 8).json()["results"]
        assert [h["id"] for h in hits] == ["crash-safe"]
    assert cluster.healthy(), cluster.logs()
