"""Client affinity over two query processors per shard, through a real ``vecraft up``
(``--query-nodes 2 --query-replicas 2``, one shard, push path delayed by ``APPLY_DELAY_MS`` -- far
longer than a test takes between a write and its reads, even on a loaded machine -- so that every
read-your-writes read right after an ``ack=journal`` write needs a pull-before-read "sync").

* A session's READ_YOUR_WRITES reads all land on one processor, which syncs once per write; the
  same reads spread over both processors (sent to them directly) sync on each of them.
* EVENTUAL reads are spread over both processors.
* After ``kill -9`` of the session's processor its reads fail over to the other one and still see
  the session's writes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.cluster import LocalCluster
from tests.support.e2e import vec
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.rpc.convert import level_to_proto
from vecraft.shared.rpc.v1 import query_pb2, query_pb2_grpc

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
log = logging.getLogger(__name__)

DIM = 8
COLL = "affinity"
READS = 10
WRITES = 3
TIMEOUT_S = 30.0
# The sync counts below hold only while no push has delivered the writes yet: with a 1 s delay a
# slow machine let pushes win and the reads stopped syncing. The journal's simulated-lag
# back-pressure limit is 2 x this + 1 s, so writes are never refused meanwhile.
APPLY_DELAY_MS = 60_000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("query-affinity") / "data"
    running = LocalCluster(data_dir, shards=1, apply_delay_ms=APPLY_DELAY_MS,
                           extra_args=["--query-nodes", "2", "--query-replicas", "2"]).start()
    try:
        r = httpx.post(f"{running.endpoint}/v1/collections", json={"name": COLL, "dim": DIM, "metric": "l2"},
                       timeout=TIMEOUT_S)
        assert r.status_code == 201, r.text
        yield running
    finally:
        assert running.stop() == 0, running.tail()


def _samples(address: str, name: str) -> list[tuple[dict[str, str], float]]:
    text = httpx.get(f"http://{address}/metrics", timeout=TIMEOUT_S).text
    return [(dict(s.labels), s.value) for fam in text_string_to_metric_families(text)
            for s in fam.samples if s.name == name]


def processors(cluster: LocalCluster) -> dict[str, dict[str, str]]:
    """grpc address -> status row of each query processor."""
    return {row["grpc_address"]: row for row in cluster.processes("query")}


def sync_pulls(cluster: LocalCluster) -> float:
    """Pull-before-read syncs made so far, summed over every live query processor."""
    total = 0.0
    for row in processors(cluster).values():
        if row["health"] == "up":
            total += sum(v for _, v in _samples(row["http_address"], "vecraft_query_sync_pulls_total"))
    return total


def routes(cluster: LocalCluster) -> dict[tuple[str, str], float]:
    """(processor address, reason) -> searches the gateway routed there."""
    gateway = cluster.process("gateway")["http_address"]
    out: dict[tuple[str, str], float] = {}
    for labels, value in _samples(gateway, "vecraft_gateway_query_routes_total"):
        key = (labels["processor"], labels["reason"])
        out[key] = out.get(key, 0.0) + value
    return out


def delta(after: dict[tuple[str, str], float], before: dict[tuple[str, str], float]
          ) -> dict[tuple[str, str], float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def write(cluster: LocalCluster, record_id: str, token: str | None) -> dict[str, object]:
    body: dict[str, object] = {"collection": COLL, "id": record_id, "vector": vec(hash(record_id) % 997, DIM),
                               "metadata": {"tag": record_id}, "ack": "journal"}
    if token:
        body["session_token"] = token
    r = httpx.post(f"{cluster.endpoint}/v1/vectors", json=body, timeout=TIMEOUT_S)
    assert r.status_code == 201, r.text
    answer: dict[str, object] = r.json()
    return answer


def search(cluster: LocalCluster, level: str, token: str | None = None) -> dict[str, object]:
    body: dict[str, object] = {"collection": COLL, "vector": vec(1, DIM), "k": 100,
                               "consistency_level": level}
    if token:
        body["session_token"] = token
    r = httpx.post(f"{cluster.endpoint}/v1/vectors/search", json=body, timeout=TIMEOUT_S)
    assert r.status_code == 200, r.text
    answer: dict[str, object] = r.json()
    return answer


def found(answer: dict[str, object]) -> set[str]:
    results = answer["results"]
    assert isinstance(results, list)
    return {hit["id"] for hit in results}


def test_a_session_reads_from_one_processor_and_syncs_once_per_write(cluster: LocalCluster) -> None:
    token: str | None = None
    written: set[str] = set()
    syncs_before, routes_before = sync_pulls(cluster), routes(cluster)
    synced_answers = 0
    for w in range(WRITES):
        answer = write(cluster, f"aff-{w}", token)
        token = str(answer["session_token"])
        written.add(f"aff-{w}")
        for _ in range(READS):
            out = search(cluster, "read_your_writes", token)
            assert written <= found(out)
            info = out["consistency_info"]
            assert isinstance(info, dict)
            synced_answers += bool(info["sync_performed"])
    syncs = sync_pulls(cluster) - syncs_before
    used = delta(routes(cluster), routes_before)
    log.info("affinity: %d writes x %d reads: %d syncs (%d answers synced), routes %s",
             WRITES, READS, syncs, synced_answers, used)
    assert len(used) == 1 and next(iter(used))[1] == "affinity", used
    assert sum(used.values()) == WRITES * READS
    assert synced_answers <= WRITES and syncs <= WRITES
    assert syncs >= 1  # the delayed push really made the reads wait for a sync

    # The same session's reads spread over both processors (sent to each in turn) sync on each.
    spread = 0
    for w in range(WRITES, 2 * WRITES):
        answer = write(cluster, f"aff-{w}", token)
        token = str(answer["session_token"])
        request = query_pb2.QuerySearchRequest(
            collection=COLL, tenant="default", k=100, shards=[0], timeout_ms=10_000,
            vector=np.asarray(vec(1, DIM), dtype="<f4").tobytes(),
            level=level_to_proto(ConsistencyLevel.READ_YOUR_WRITES), min_offset=int(str(answer["offset"])))
        addresses = sorted(processors(cluster))
        for i in range(READS):
            with grpc.insecure_channel(addresses[i % len(addresses)]) as channel:
                reply = query_pb2_grpc.QueryProcessorServiceStub(channel).Search(request, timeout=TIMEOUT_S)
            spread += reply.consistency_info.sync_performed
    log.info("without affinity: %d writes x %d reads alternating over 2 processors: %d syncs",
             WRITES, READS, spread)
    assert spread > WRITES  # both processors synced for (nearly) every write


def strong_on_every_processor(cluster: LocalCluster) -> None:
    """A strong search sent to each query processor itself: each syncs to the journal head.

    An eventual read never syncs, so a processor that has not applied the collection's DDL yet
    (the push lags APPLY_DELAY_MS) answers it NotFound.
    """
    request = query_pb2.QuerySearchRequest(
        collection=COLL, tenant="default", k=1, shards=[0], timeout_ms=10_000,
        vector=np.asarray(vec(1, DIM), dtype="<f4").tobytes(), level=level_to_proto(ConsistencyLevel.STRONG))
    for address in sorted(processors(cluster)):
        with grpc.insecure_channel(address) as channel:
            query_pb2_grpc.QueryProcessorServiceStub(channel).Search(request, timeout=TIMEOUT_S)


def test_eventual_reads_are_spread_over_both_processors(cluster: LocalCluster) -> None:
    strong_on_every_processor(cluster)  # not left to an earlier test: this one may run alone
    before = routes(cluster)
    for _ in range(20):
        search(cluster, "eventual")
    used = delta(routes(cluster), before)
    assert {reason for _, reason in used} == {"round_robin"}, used
    assert set(processors(cluster)) == {address for address, _ in used}
    assert all(v >= 5 for v in used.values()), used


def test_session_fails_over_when_its_processor_is_killed(cluster: LocalCluster) -> None:
    first = write(cluster, "fo-0", None)
    token = str(first["session_token"])
    before = routes(cluster)
    assert "fo-0" in found(search(cluster, "read_your_writes", token))
    (home, reason), = delta(routes(cluster), before)
    assert reason == "affinity"
    rows = processors(cluster)
    name = rows[home]["name"]
    pid = cluster.kill(name)
    started = time.monotonic()
    second = write(cluster, "fo-1", token)
    token = str(second["session_token"])
    before = routes(cluster)
    for _ in range(5):
        assert {"fo-0", "fo-1"} <= found(search(cluster, "read_your_writes", token))
    used = delta(routes(cluster), before)
    others = set(rows) - {home}
    log.info("failover after kill -9 of %s: routes %s in %.1f s", name, used, time.monotonic() - started)
    assert any(address in others and why == "failover" for address, why in used), used
    # Every read was answered by the other processor (the first attempt on the dead one, if any,
    # is counted as an affinity route that failed).
    assert sum(v for (address, _), v in used.items() if address in others) == 5, used
    cluster.wait_restarted(name, pid)
