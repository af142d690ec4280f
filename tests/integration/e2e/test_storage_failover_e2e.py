"""Fail-over of a storage node in a real ``vecraft up`` cluster (3 storage nodes, 2 replicas per shard).

A storage node is frozen (SIGSTOP: its connections stay open and nothing answers, the
hardest case for its peers) for longer than its lease and the fail-over manager's grace
period. Meanwhile every read by id keeps answering; the node is marked down, its shard
replicas are re-placed on the node that did not hold them, which catches up and serves:
every shard has two serving replicas again. Resumed, the frozen node finds itself out of
the map and stops serving its old shards. The times and the read error rate and P99 during
the fault are printed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft.local.placement_report import placement_report

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROWS = 30
GRACE_MS = 2000


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    config = tmp_path / "vecraft.toml"
    config.write_text(f"[failover]\ngrace_ms = {GRACE_MS}\n")
    running = LocalCluster(tmp_path / "data", shards=3, replicas=2,
                           extra_args=["--storage-nodes", "3", "--config", str(config)]).start()
    yield running
    assert running.stop() == 0, running.tail()


def placement(cluster: LocalCluster) -> dict[str, object]:
    meta = cluster.process("meta")
    report = placement_report(meta["grpc_address"], timeout=5)
    assert report is not None
    return report


def serving(report: dict[str, object]) -> dict[int, list[str]]:
    return {e["shard"]: sorted(r["node"] for r in e["storage"] if r["state"] == "serving")  # type: ignore[index]
            for e in report["shards"]}  # type: ignore[attr-defined]


def test_a_frozen_storage_node_is_replaced_while_reads_keep_answering(cluster: LocalCluster) -> None:
    with httpx.Client(base_url=cluster.endpoint, timeout=30) as http:
        created = http.post("/v1/collections", json={"name": "fo", "dim": 4, "shards": 3, "replicas": 2})
        assert created.status_code == 201, created.text
        vectors = np.random.default_rng(5).standard_normal((ROWS, 4)).astype(np.float32)
        ids = [f"r{i}" for i in range(ROWS)]
        written = http.post("/v1/vectors/batch", json={"collection": "fo", "ids": ids,
                                                        "vectors": vectors.tolist(), "ack": "all"})
        assert written.status_code == 201, written.text
        # The cluster is ready once the fail-over manager wrote the map; wait for every replica to serve.
        deadline = time.monotonic() + 60
        while True:
            before = placement(cluster)
            if serving(before) and all(len(nodes) == 2 for nodes in serving(before).values()):
                break
            assert time.monotonic() < deadline, before
            time.sleep(0.1)
        victim = "storage-0"
        held = sorted(s for s, nodes in serving(before).items() if victim in nodes)
        assert held, before

        pid = cluster.process(victim)["pid"]
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        latencies: list[float] = []
        errors = 0
        marked_s = restored_s = None
        try:
            while restored_s is None:
                assert time.monotonic() - stopped < 120, f"never restored: {placement(cluster)}"
                for i in range(0, ROWS, 3):
                    t0 = time.monotonic()
                    got = http.get(f"/v1/vectors/{ids[i]}", params={"collection": "fo",
                                                                    "consistency_level": "strong"})
                    latencies.append(time.monotonic() - t0)
                    errors += got.status_code != 200
                report = placement(cluster)
                if marked_s is None and victim in report["down_nodes"]:  # type: ignore[operator]
                    marked_s = time.monotonic() - stopped
                now = serving(report)
                if all(len(now[s]) == 2 and victim not in now[s] for s in held):
                    restored_s = time.monotonic() - stopped
        finally:
            os.kill(pid, signal.SIGCONT)
        p99 = float(np.percentile(latencies, 99)) * 1000
        print(f"\nstorage fail-over: marked down after {marked_s:.2f} s, 2 serving replicas again after "
              f"{restored_s:.2f} s; {len(latencies)} strong reads during the fault, {errors} errors, "
              f"P99 {p99:.0f} ms")
        assert errors == 0, f"{errors} reads failed while a replica of every shard was live"
        assert marked_s is not None and marked_s < 10

        # Resumed: it is no longer in the map for those shards and stops serving them.
        deadline = time.monotonic() + 60
        while any(victim in nodes for nodes in serving(placement(cluster)).values()):
            assert time.monotonic() < deadline, placement(cluster)
            time.sleep(0.2)
        node = next(n for n in placement(cluster)["nodes"] if n["node_id"] == victim)  # type: ignore[attr-defined]
        assert not set(node["serving"]) & set(held)
        # Every record still reads back at strong, from the replicas that now hold it.
        for i in range(ROWS):
            got = http.get(f"/v1/vectors/{ids[i]}",
                           params={"collection": "fo", "consistency_level": "strong"})
            assert got.status_code == 200 and np.allclose(got.json()["vector"], vectors[i], atol=1e-6)

        # kill -9 of a node that serves replicas (refused connections, not a hang): every read and
        # search keeps answering from the other replica until the supervisor has it back.
        second = next(n for nodes in serving(placement(cluster)).values() for n in nodes)
        old_pid = cluster.kill(second)
        killed = time.monotonic()
        errors = reads = 0
        restarted = False
        while not restarted or time.monotonic() - killed < 3:
            assert time.monotonic() - killed < 120, f"{second} never came back: {cluster.tail()}"
            for i in range(0, ROWS, 3):
                got = http.get(f"/v1/vectors/{ids[i]}", params={"collection": "fo",
                                                                "consistency_level": "strong"})
                found = http.post("/v1/vectors/search", json={
                    "collection": "fo", "vector": vectors[i].tolist(), "k": 1, "consistency_level": "strong"})
                reads += 2
                errors += (got.status_code != 200) + (found.status_code != 200
                                                      or found.json()["results"][0]["id"] != ids[i])
            row = cluster.process(second)
            restarted = bool(row["pid"]) and row["pid"] != old_pid and row["health"] == "up"
        print(f"storage node {second} killed: {reads} strong reads and searches until it was back, "
              f"{errors} errors")
        assert errors == 0, f"{errors} of {reads} reads failed while a replica of every shard was live"
