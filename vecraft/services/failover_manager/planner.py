"""What the placement map should be, given the live nodes: pure functions, no I/O.

:func:`bootstrap` writes the first map from what the registered nodes declare
(the shards of their flags, or on disk); :func:`reconcile` moves a map one step
towards health:

1. nodes of the map that are not live are marked down (``down_nodes``) at
   once, and up again when they come back;
2. a shard with fewer live replicas than wanted gets new ones on live nodes
   of the role that do not hold it: at once when the shard never had enough
   (``restore``), after ``grace_s`` when a replica's node went down
   (``re-place``: a node that restarts within the grace period keeps its
   shards and nothing moves);
3. a down node whose shard got its replacement is removed from that shard
   (``remove``); with no live node to take its place it stays listed, so it
   serves again when it comes back.

Candidates are chosen so that replicas of one shard are on different nodes,
preferring a storage node that has the shard's files on its disk
(``NodeInfo.local_shards``: it catches up from there instead of from the
journal's start), then the least loaded node, then the node id (deterministic).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Mapping

from vecraft.shared.rpc.v1 import meta_pb2

ROLES = ("storage", "query")
#: Actions kept in the map's history for ``vecraft status``.
HISTORY_LIMIT = 50


@dataclasses.dataclass(frozen=True)
class Plan:
    """The next map (None: nothing to change) and what changed."""

    placement: meta_pb2.PlacementMap | None
    actions: list[meta_pb2.PlacementAction]


def _assigned(assignment: meta_pb2.ShardAssignment, role: str) -> list[str]:
    return list(assignment.storage_nodes if role == "storage" else assignment.query_nodes)


def _set_assigned(assignment: meta_pb2.ShardAssignment, role: str, nodes: Iterable[str]) -> None:
    field = assignment.storage_nodes if role == "storage" else assignment.query_nodes
    del field[:]
    field.extend(nodes)


def declared_shards(node: meta_pb2.NodeInfo) -> set[int]:
    """The shards a node says it hosts or is loading."""
    return set(node.shards) | set(node.loading_shards)


def bootstrap(live: Mapping[str, meta_pb2.NodeInfo], *, storage_replicas: int = 0, query_replicas: int = 0,
              now_ms: int) -> Plan:
    """The first map: every live storage and query node keeps the shards it declares.

    ``storage_replicas`` / ``query_replicas`` 0 take the fewest replicas any
    declared shard has (what the cluster was started with).
    """
    placement = meta_pb2.PlacementMap()
    shards = sorted({s for n in live.values() if n.role in ROLES for s in declared_shards(n)})
    for shard in shards:
        assignment = placement.shards.add(shard=shard)
        for role in ROLES:
            holders = sorted(n.node_id for n in live.values()
                             if n.role == role and shard in declared_shards(n))
            _set_assigned(assignment, role, holders)
    wanted = {"storage": storage_replicas, "query": query_replicas}
    for role in ROLES:
        if not wanted[role]:
            counts = [len(_assigned(a, role)) for a in placement.shards]
            wanted[role] = max(1, min(counts, default=1))
    placement.storage_replicas, placement.query_replicas = wanted["storage"], wanted["query"]
    action = meta_pb2.PlacementAction(at_unix_ms=now_ms, action="bootstrap", shards=shards,
                                      detail=f"{len(shards)} shards from {len(live)} registered nodes")
    placement.history.append(action)
    return Plan(placement, [action])


def reconcile(current: meta_pb2.PlacementMap, live: Mapping[str, meta_pb2.NodeInfo],
              down_since_ms: Mapping[str, int], *, grace_ms: int, now_ms: int) -> Plan:
    """One step towards health (see the module docstring); ``Plan.placement`` None when healthy.

    ``down_since_ms`` tells since when each node of the map has been seen down
    (the caller's memory; a node missing from it counts as down since ``now_ms``).
    """
    placement = meta_pb2.PlacementMap()
    placement.CopyFrom(current)
    actions: list[meta_pb2.PlacementAction] = []

    listed = {n for a in placement.shards for role in ROLES for n in _assigned(a, role)}
    down = sorted(n for n in listed if n not in live)
    for node_id in sorted(set(down) - set(placement.down_nodes)):
        actions.append(meta_pb2.PlacementAction(at_unix_ms=now_ms, action="mark-down", node_id=node_id,
                                                detail="its registration lease expired or it left"))
    for node_id in sorted(set(placement.down_nodes) - set(down)):
        actions.append(meta_pb2.PlacementAction(at_unix_ms=now_ms, action="mark-up", node_id=node_id))
    del placement.down_nodes[:]
    placement.down_nodes.extend(down)

    load: Counter[str] = Counter(n for a in placement.shards for role in ROLES for n in _assigned(a, role))
    wanted = {"storage": placement.storage_replicas or 1, "query": placement.query_replicas or 1}
    for assignment in placement.shards:
        for role in ROLES:
            nodes = _assigned(assignment, role)
            alive = [n for n in nodes if n in live]
            dead = [n for n in nodes if n not in live]
            expired = [n for n in dead if now_ms - down_since_ms.get(n, now_ms) >= grace_ms]
            # Replicas still within their grace period count as present: they may come back.
            missing = wanted[role] - len(alive) - (len(dead) - len(expired))
            if missing <= 0:
                continue
            candidates = sorted(
                (n for n in live.values() if n.role == role and n.node_id not in nodes),
                key=lambda n: (assignment.shard not in n.local_shards, load[n.node_id], n.node_id))
            chosen = [n.node_id for n in candidates[:missing]]
            if not chosen:
                continue
            replaced = expired[:len(chosen)]
            kept = [n for n in nodes if n not in replaced]
            _set_assigned(assignment, role, [*kept, *chosen])
            for node_id in chosen:
                load[node_id] += 1
            kind = "re-place" if replaced else "restore"
            detail = f"replaces {', '.join(replaced)}" if replaced else \
                f"{len(alive) + len(chosen)} of {wanted[role]} replicas"
            for node_id in chosen:
                actions.append(meta_pb2.PlacementAction(at_unix_ms=now_ms, action=kind, node_id=node_id,
                                                        role=role, shards=[assignment.shard], detail=detail))
            for node_id in replaced:
                actions.append(meta_pb2.PlacementAction(at_unix_ms=now_ms, action="remove", node_id=node_id,
                                                        role=role, shards=[assignment.shard],
                                                        detail=f"down for {grace_ms} ms or more"))
    if not actions:
        return Plan(None, [])
    placement.history.extend(actions)
    del placement.history[:-HISTORY_LIMIT]
    return Plan(placement, actions)
