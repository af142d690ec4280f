"""Standalone mode (``vecraft up``'s default) through a real ``vecraft up``: one process runs every
service, the consistency levels hold, searches reach the query node without gRPC, and kill -9 of the
one process loses no acknowledged write.

The push path lags (``--apply-delay-ms``) so that writes acknowledged with ``ack=journal`` are
durable in the journal but not applied anywhere yet when the checks run: strong and
read-your-writes must pull them, eventual (the control) must not see them, and a kill -9 at that
moment can only be survived through the journal.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft_client import VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

#: Far above a write + search round trip on a loaded machine (as in the e2e consistency tests).
APPLY_DELAY_MS = 3000
DIM = 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("standalone") / "data"
    running = LocalCluster(data_dir, shards=3, apply_delay_ms=APPLY_DELAY_MS, standalone=True).start()
    try:
        yield running
    finally:
        assert running.stop() == 0, running.tail()


def _unit(i: int) -> np.ndarray:
    v = np.zeros(DIM, dtype=np.float32)
    v[i % DIM] = 1.0
    v[(i + 1) % DIM] = 0.1 * (1 + i // DIM)
    return v


def _counts(cluster: LocalCluster, metric: str, label: str) -> dict[str, float]:
    text = httpx.get(f"{cluster.endpoint}/metrics", timeout=10).text
    return {m[1]: float(m[2]) for m in re.finditer(
        rf'^{metric}_total\{{{label}="(\w+)"\}} ([0-9.e+]+)$', text, re.M)}


def _query_calls(cluster: LocalCluster) -> dict[str, float]:
    return _counts(cluster, "vecraft_gateway_query_calls", "transport")


def _in_process_calls(cluster: LocalCluster) -> dict[str, float]:
    return _counts(cluster, "vecraft_common_in_process_calls", "method")


def test_every_service_runs_in_one_process(cluster: LocalCluster) -> None:
    status = cluster.status()
    assert status is not None and status["all_up"] and status["params"]["standalone"]
    rows = status["processes"]
    assert {r["role"] for r in rows} >= {"journal", "meta", "storage", "query", "failover", "gateway"}
    assert len({r["pid"] for r in rows}) == 1 and rows[0]["pid"]
    assert all(r["health"] == "up" for r in rows)
    # The supervisor's malloc setting reaches the process (unless the environment had its own).
    environ = dict(item.split("=", 1) for item in
                   Path(f"/proc/{rows[0]['pid']}/environ").read_text().split("\0") if "=" in item)
    assert environ["MALLOC_ARENA_MAX"] == os.environ.get("MALLOC_ARENA_MAX", "2")


def test_levels_hold_and_searches_skip_grpc(cluster: LocalCluster) -> None:
    """Every level through the one process: the gateway asks the query node, which asks the storage
    nodes, which pull the journal, all without gRPC."""
    name = f"sa_{uuid.uuid4().hex[:8]}"
    with VecraftClient(cluster.endpoint, timeout=60.0) as client:
        client.create_collection(name, dim=DIM, metric="l2")
        # A lagging query node may not know the collection yet: a strong read brings it to the head.
        assert client.vector_search(_unit(0), k=1, collection=name, consistency_level="strong").results == []
        before, journal_before = _query_calls(cluster), _in_process_calls(cluster)
        ids = [f"v{i}" for i in range(12)]
        client.insert_vectors(np.stack([_unit(i) for i in range(12)]), ids=ids, collection=name,
                              ack="journal")
        # The control: nothing is applied yet, an eventual search does not find the write.
        eventual = client.vector_search(_unit(3), k=1, collection=name, consistency_level="eventual")
        assert [r.id for r in eventual.results] != ["v3"]
        strong = client.vector_search(_unit(3), k=1, collection=name, consistency_level="strong")
        assert [r.id for r in strong.results] == ["v3"]
        session = client.create_session()
        session.insert_vectors(_unit(20)[None, :], ids=["mine"], collection=name, ack="journal")
        mine = session.vector_search(_unit(20), k=1, collection=name, consistency_level="read_your_writes")
        assert [r.id for r in mine.results] == ["mine"]
        after, journal_after = _query_calls(cluster), _in_process_calls(cluster)
    # Each of those searches went to the query node in this process, none over gRPC.
    assert after.get("in_process", 0) - before.get("in_process", 0) >= 3
    assert after.get("grpc", 0) == before.get("grpc", 0)
    # The strong and read-your-writes reads asked the journal in this process for the head and
    # pulled the lagging entries from it, without gRPC.
    assert journal_after.get("GetOffset", 0) > journal_before.get("GetOffset", 0)
    assert journal_after.get("PullWAL", 0) > journal_before.get("PullWAL", 0)
    # The query node keeps no copy of the shards: the storage nodes of the process answered.
    assert journal_after.get("ShardSearch", 0) - journal_before.get("ShardSearch", 0) >= 3


def test_kill_9_of_the_process_loses_no_acknowledged_write(cluster: LocalCluster) -> None:
    name = f"kill_{uuid.uuid4().hex[:8]}"
    with VecraftClient(cluster.endpoint, timeout=60.0) as client:
        client.create_collection(name, dim=DIM, metric="l2")
        ids = [f"k{i}" for i in range(30)]
        for start in range(0, 30, 10):  # three acknowledged batches, durable in the journal only
            client.insert_vectors(np.stack([_unit(i) for i in range(start, start + 10)]),
                                  ids=ids[start:start + 10], collection=name, ack="journal")
    storage_pids = {r["pid"] for r in cluster.processes("storage")}
    pid = cluster.kill("gateway")
    assert storage_pids == {pid}  # the one process went down, every service with it
    cluster.wait_restarted("gateway", pid)
    cluster.wait_ready()
    with VecraftClient(cluster.endpoint, timeout=60.0) as client:
        found = [r.id for r in client.iter_records(name, page_size=50, consistency_level="strong")]
        assert sorted(found) == sorted(ids)
        hit = client.vector_search(_unit(17), k=1, collection=name, consistency_level="strong")
        assert [r.id for r in hit.results] == ["k17"]
