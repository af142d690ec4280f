"""The placement part of `vecraft status` (vecraft/local/placement_report.py)."""

from __future__ import annotations

from vecraft.local.placement_report import add_replica_lag, build_report, report_text
from vecraft.shared.rpc.v1 import meta_pb2


def test_replica_states_from_the_registry_and_the_latest_actions() -> None:
    placement = meta_pb2.PlacementMap(version=4, storage_replicas=2, query_replicas=1, down_nodes=["s2"],
                                      shards=[
        meta_pb2.ShardAssignment(shard=0, storage_nodes=["s0", "s2"], query_nodes=["q0"]),
        meta_pb2.ShardAssignment(shard=1, storage_nodes=["s1", "s3"], query_nodes=["q0"])])
    placement.history.extend([meta_pb2.PlacementAction(at_unix_ms=1_700_000_000_000 + i, action="mark-down",
                                                       node_id=f"n{i}") for i in range(15)])
    nodes = [meta_pb2.NodeInfo(node_id="s0", role="storage", shards=[0]),
             meta_pb2.NodeInfo(node_id="s1", role="storage", shards=[1]),
             meta_pb2.NodeInfo(node_id="s3", role="storage", loading_shards=[1]),
             meta_pb2.NodeInfo(node_id="q0", role="query", shards=[1]),
             meta_pb2.NodeInfo(node_id="gateway", role="gateway")]
    report = build_report(placement, nodes)
    states = {(e["shard"], role, r["node"]): r["state"] for e in report["shards"]
              for role in ("storage", "query") for r in e[role]}
    assert states == {(0, "storage", "s0"): "serving", (0, "storage", "s2"): "down",
                      (0, "query", "q0"): "assigned", (1, "storage", "s1"): "serving",
                      (1, "storage", "s3"): "catching-up", (1, "query", "q0"): "serving"}
    assert [n["node_id"] for n in report["nodes"]] == ["s0", "s1", "s3", "q0"]  # no gateway
    assert len(report["actions"]) == 10 and report["actions"][-1]["node_id"] == "n14"
    add_replica_lag(report, {"s0": {"replicas": [{"shard": 0, "lag_ops": 4, "staleness_ms": 120}]},
                             "s2": {"replicas": [{"shard": 0, "lag_ops": 9, "staleness_ms": 1}]}})
    text = report_text(report)
    assert "shard 0: storage s0 (serving, lag 4 ops), s2 (down)" in text  # a down node's lag is not shown
    assert "placement v4: 2 storage and 1 query replica(s) per shard; down: s2" in text
    assert "shard 1: storage s1 (serving), s3 (catching-up); query q0 (serving)" in text
    assert "mark-down n14" in text


def test_no_map_yet_is_said_plainly() -> None:
    assert report_text(build_report(meta_pb2.PlacementMap(), [])).startswith("placement: no map yet")
