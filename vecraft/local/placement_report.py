"""What ``vecraft status`` says about placement: nodes, shard replicas and their states, fail-over actions.

Asked from the meta manager (the registry and the placement map), so it shows
what the gateway routes by. A replica's state:

- ``serving``: its node is registered and serves the shard;
- ``catching-up``: its node loads the shard (local files, then the journal);
- ``assigned``: the map gives the shard to a live node that has not taken it up yet;
- ``down``: its node is not registered (lease expired, stopped or killed).
"""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

from vecraft.clients.meta import MetaClient
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.rpc.v1 import meta_pb2

#: How many of the fail-over manager's latest actions the report shows.
RECENT_ACTIONS = 10


def replica_state(node: meta_pb2.NodeInfo | None, shard: int) -> str:
    if node is None:
        return "down"
    if shard in node.shards:
        return "serving"
    return "catching-up" if shard in node.loading_shards else "assigned"


def build_report(placement: meta_pb2.PlacementMap, nodes: list[meta_pb2.NodeInfo]) -> dict[str, Any]:
    """The report of one placement map and registry. Pure."""
    live = {n.node_id: n for n in nodes}
    shards = []
    for assignment in placement.shards:
        shards.append({"shard": assignment.shard, **{
            role: [{"node": node_id, "state": replica_state(live.get(node_id), assignment.shard)}
                   for node_id in ids]
            for role, ids in (("storage", assignment.storage_nodes), ("query", assignment.query_nodes))}})
    return {
        "version": placement.version, "updated_by": placement.updated_by,
        "updated_unix_ms": placement.updated_unix_ms, "fencing_token": placement.fencing_token,
        "storage_replicas": placement.storage_replicas, "query_replicas": placement.query_replicas,
        "down_nodes": list(placement.down_nodes), "shards": shards,
        "nodes": [{"node_id": n.node_id, "role": n.role, "address": n.address, "serving": list(n.shards),
                   "loading": list(n.loading_shards), "local": list(n.local_shards)}
                  for n in nodes if n.role in ("storage", "query")],
        "actions": [{"at_unix_ms": a.at_unix_ms, "action": a.action, "node_id": a.node_id, "role": a.role,
                     "shards": list(a.shards), "detail": a.detail}
                    for a in placement.history[-RECENT_ACTIONS:]],
    }


def add_replica_lag(report: dict[str, Any], health: dict[str, dict[str, Any]]) -> None:
    """Put each storage replica's lag (``lag_ops``, ``staleness_ms``) from its node's /healthz
    (``health``: node id -> body) into ``report``, in place. Replicas of nodes without an answer
    get none."""
    lag = {(node_id, r.get("shard")): r for node_id, body in health.items()
           for r in body.get("replicas", []) if isinstance(r, dict)}
    for entry in report["shards"]:
        for replica in entry["storage"]:
            found = lag.get((replica["node"], entry["shard"]))
            if found is not None and replica["state"] != "down":
                replica["lag_ops"], replica["staleness_ms"] = found.get("lag_ops"), found.get("staleness_ms")


def _replica_text(replica: dict[str, Any]) -> str:
    extra = f", lag {replica['lag_ops']} ops" if replica.get("lag_ops") is not None else ""
    return f"{replica['node']} ({replica['state']}{extra})"


def placement_report(meta_address: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The report from the meta manager at ``meta_address``; None when it cannot be asked."""

    async def ask() -> dict[str, Any]:
        client = MetaClient(meta_address, timeout_s=timeout)
        try:
            placement, nodes = await asyncio.gather(client.get_placement_map(), client.list_nodes())
        finally:
            await client.close()
        return build_report(placement, nodes)

    try:
        return asyncio.run(ask())
    except VecraftError:
        return None


def report_text(report: dict[str, Any]) -> str:
    """The report as the lines ``vecraft status`` prints under the process table."""
    if not report["version"]:
        return "placement: no map yet (the fail-over manager writes it once the nodes registered)"
    lines = [f"placement v{report['version']}: {report['storage_replicas']} storage and "
             f"{report['query_replicas']} query replica(s) per shard"
             + (f"; down: {', '.join(report['down_nodes'])}" if report["down_nodes"] else "")]
    for entry in report["shards"]:
        parts = [f"{role} " + ", ".join(_replica_text(r) for r in entry[role])
                 for role in ("storage", "query")]
        lines.append(f"  shard {entry['shard']}: " + "; ".join(parts))
    if report["actions"]:
        lines.append("fail-over manager, latest actions:")
        for a in report["actions"]:
            at = datetime.datetime.fromtimestamp(a["at_unix_ms"] / 1000).strftime("%H:%M:%S")
            what = " ".join(x for x in (a["action"], a["role"], a["node_id"]) if x)
            shards = f" shards {','.join(map(str, a['shards']))}" if a["shards"] else ""
            lines.append(f"  {at} {what}{shards}" + (f": {a['detail']}" if a["detail"] else ""))
    return "\n".join(lines)
