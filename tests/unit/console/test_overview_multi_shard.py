"""The console's overview of a storage node hosting several shard replicas (Status.replicas)."""

from __future__ import annotations

import pytest

from vecraft.services.api_gateway.console.overview import overview_json
from vecraft.services.api_gateway.console.probe import ClusterSnapshot, NodeStatus
from vecraft.shared.hlc import pack
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.v1 import journal_pb2, meta_pb2, storage_pb2

pytestmark = pytest.mark.unit

NOW_MS = 1_750_000_000_000


def _replica(shard: int, applied: int, live: int, hlc: int) -> storage_pb2.ReplicaStatus:
    return storage_pb2.ReplicaStatus(
        shard=shard, replica=0, replica_id=f"storage-{shard}-r0", ready=shard != 2,
        partitions=[storage_pb2.PartitionProgress(partition="data-0", applied_offset=applied,
                                                  applied_hlc=hlc, head_offset=12)],
        collections=[storage_pb2.CollectionStats(collection="default/docs", live_records=live)],
        halted={"data-0": "diverged"} if shard == 2 else {})


def test_a_node_hosting_two_shards_has_a_row_under_each_with_that_replicas_progress() -> None:
    head = pack(NOW_MS - 2000, 0)
    replicas = [_replica(0, 12, 5, head), _replica(2, 9, 7, pack(NOW_MS - 2500, 0))]
    status = storage_pb2.NodeStatusResponse(node_id="storage-node-0-2-r0", shard=0, ready=False,
                                            partitions=replicas[0].partitions,
                                            collections=replicas[0].collections, replicas=replicas)
    snapshot = ClusterSnapshot(
        journal=journal_pb2.StatsResponse(
            partitions=[journal_pb2.PartitionStats(partition="data-0", head_offset=12, head_hlc=head)],
            replicas=[journal_pb2.ReplicaLag(replica_id=f"storage-{s}-r0", partition="data-0", shards=[s],
                                             applied_offset=a, live=True, role="replica")
                      for s, a in ((0, 12), (2, 9))]),
        nodes=[meta_pb2.NodeInfo(node_id="storage-node-0-2-r0", role="storage", shards=[0, 2], state="up")],
        statuses=[NodeStatus("storage-node-0-2-r0", status=status)])

    docs = CollectionSchema(name="docs", dim=4, partition="data-0", collection_id="c")
    out = overview_json(snapshot=snapshot, reason=None, collections=[docs], heads=[], metrics={},
                        tenant="default", now_ms=NOW_MS)

    shard0, shard2 = out["shards"]
    assert (shard0["shard"], shard2["shard"]) == (0, 2)
    assert shard0["storage"][0]["ready"] and not shard2["storage"][0]["ready"]
    assert shard0["storage"][0]["partitions"][0]["applied_offset"] == 12
    assert shard2["storage"][0]["partitions"][0]["applied_offset"] == 9
    # The journal's replica ids are joined with the node's replicas, not with its node id.
    assert [(r["replica_id"], r["hlc_behind_head_ms"]) for r in out["replicas"]] == [
        ("storage-0-r0", 0), ("storage-2-r0", 500)]
    # Record counts add the node's two shards.
    assert out["collections"][0]["live_records"] == 12
