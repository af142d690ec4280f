"""The console's cluster probe against a real ``vecraft up`` cluster: what the overview is built from.

The probe reads the journal's Stats, the meta manager's node registry, every storage node's Status
and every query processor's /metrics; a source that does not answer is reported beside the others.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.console.conftest import QUERY_NODES, REPLICAS, ROWS, SHARDS, STORAGE_NODES
from tests.support.cluster import LocalCluster
from tests.support.procs import free_port
from vecraft.services.api_gateway.console.overview import overview_json, record_counts, replica_statuses
from vecraft.services.api_gateway.console.probe import GrpcClusterProbe
from vecraft.shared.hlc import wall_clock_ms

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def addresses(cluster: LocalCluster) -> dict[str, str]:
    """gRPC address of each service (read here: ``vecraft status`` runs its own event loop)."""
    return {name: cluster.process(name)["grpc_address"] for name in ("journal", "meta")}


async def test_snapshot_of_a_running_cluster(addresses: dict[str, str], seed_request_id: str) -> None:
    probe = GrpcClusterProbe(journal_address=addresses["journal"], meta_address=addresses["meta"],
                             max_age_s=60.0)
    try:
        first, second = await asyncio.gather(probe.snapshot(), probe.snapshot())
        assert first is second, "concurrent callers share one snapshot"
        assert await probe.snapshot() is first, "a young snapshot is answered again"
    finally:
        await probe.close()

    snap = first
    assert snap.journal_error is None and snap.nodes_error is None
    roles = sorted(n.role for n in snap.nodes)
    assert roles == sorted(["meta"] + ["query"] * QUERY_NODES + ["storage"] * STORAGE_NODES)
    assert all(n.state == "up" and n.address for n in snap.nodes)

    assert snap.journal is not None
    heads = {p.partition: p for p in snap.journal.partitions}
    assert set(heads) == {"data-0", "system"} and heads["data-0"].head_offset >= 2
    storage = [r for r in snap.journal.replicas if r.role == "replica"]
    # Journal replica ids are <node id>/shard-<s>; with as many nodes as replicas node n holds replica n.
    assert sorted(r.replica_id for r in storage) == sorted(f"storage-{n}/shard-{s}" for s in range(SHARDS)
                                                           for n in range(REPLICAS))
    assert all(r.live for r in storage)

    # Every storage node answers Status, for each replica it hosts; the per-shard counts add up to
    # the batch.
    assert [s.error for s in snap.statuses] == [None] * STORAGE_NODES
    assert sorted((r.shard, r.replica) for s in snap.statuses for r in replica_statuses(s)) == [
        (s, r) for s in range(SHARDS) for r in range(REPLICAS)]
    assert record_counts(snap)["default/papers"] == (ROWS, 0)

    # Each query processor has applied the batch (the last seeding search was strong).
    assert sorted(q.node_id for q in snap.queries) == [f"query-{m}" for m in range(QUERY_NODES)]
    for q in snap.queries:
        assert q.error is None and q.cache_hits >= 1
        (cache,) = [p for p in q.partitions if p.partition == "data-0"]
        assert cache.applied_offset >= 2

    out = overview_json(snapshot=snap, reason=None, collections=[], heads=[], metrics={}, tenant="default",
                        now_ms=wall_clock_ms())
    assert out["cluster"]["nodes_up"] == len(snap.nodes) and out["cluster"]["errors"] == []
    assert [s["shard"] for s in out["shards"]] == list(range(SHARDS))
    assert all(len(s["storage"]) == REPLICAS and len(s["query"]) == 1 for s in out["shards"])


async def test_a_source_that_does_not_answer_is_reported_beside_the_others(addresses: dict[str, str]) -> None:
    probe = GrpcClusterProbe(journal_address=addresses["journal"], meta_address=f"127.0.0.1:{free_port()}")
    try:
        snap = await probe.snapshot(timeout_s=1.0)
    finally:
        await probe.close()
    assert snap.nodes == [] and snap.nodes_error is not None and snap.nodes_error.startswith("meta manager")
    assert snap.journal is not None and snap.journal_error is None
