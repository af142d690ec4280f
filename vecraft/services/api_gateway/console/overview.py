"""The console's cluster overview as JSON: pure functions from what the probe and the gateway read.

:func:`overview_json` renders the answer of ``GET /v1/cluster/overview``
(documented in docs/console.md) from a :class:`~.probe.ClusterSnapshot`, the
tenant's collections, the journal heads and the metrics summary. Nothing here
does I/O, so every field is unit-tested on hand-made snapshots.

Clocks: ``now_ms`` is the gateway's wall clock. A journal head's HLC carries
the physical time the journal stamped it with; ``head_age_ms`` is how long ago
that was by the gateway's clock, and ``hlc_ahead_ms`` how far that stamp is
*ahead* of the gateway's clock (an HLC is never ahead of the clock that
issued it, so a positive value is clock drift between the journal, or a
writer whose HLC it merged, and the gateway). Per storage replica,
``hlc_behind_head_ms`` is the HLC distance between the entry it applied last
and the partition's head.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from vecraft.services.api_gateway.console.probe import ClusterSnapshot, NodeStatus, QueryStatus
from vecraft.shared.hlc import format_hlc, physical_ms
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.v1 import meta_pb2, storage_pb2


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionHead:
    """A partition's latest committed entry as the gateway read it (offset 0: empty)."""

    partition: str
    offset: int
    hlc: int


def _hlc_fields(hlc: int, now_ms: int) -> dict[str, Any]:
    if not hlc:
        return {"head_hlc": 0, "head_hlc_text": None, "head_age_ms": None, "hlc_ahead_ms": None}
    skew = physical_ms(hlc) - now_ms
    return {"head_hlc": hlc, "head_hlc_text": format_hlc(hlc), "head_age_ms": max(0, -skew),
            "hlc_ahead_ms": max(0, skew)}


def partitions_json(snapshot: ClusterSnapshot | None, heads: Sequence[PartitionHead],
                    now_ms: int) -> list[dict[str, Any]]:
    """Journal partitions: the journal's Stats when the probe has them, else the heads read."""
    if snapshot is not None and snapshot.journal is not None:
        return [{"partition": p.partition, "head_offset": p.head_offset, **_hlc_fields(p.head_hlc, now_ms),
                 "bytes": p.bytes, "segments": p.segments} for p in snapshot.journal.partitions]
    return [{"partition": h.partition, "head_offset": h.offset, **_hlc_fields(h.hlc, now_ms),
             "bytes": None, "segments": None} for h in heads]


def nodes_json(snapshot: ClusterSnapshot, now_ms: int) -> list[dict[str, Any]]:
    """Registered nodes, by role then id, with the age of their last heartbeat."""
    rows = []
    for n in sorted(snapshot.nodes, key=lambda n: (n.role, n.node_id)):
        beat = n.last_heartbeat_unix_ms
        rows.append({"node_id": n.node_id, "role": n.role, "state": n.state or "up", "address": n.address,
                     "http_address": n.http_address, "shards": list(n.shards),
                     "replica": n.replica if n.role == "storage" else None, "pid": n.pid or None,
                     "heartbeat_age_ms": max(0, now_ms - beat) if beat else None})
    return rows


def replica_statuses(found: NodeStatus) -> list[storage_pb2.ReplicaStatus]:
    """The shard replicas a storage node's Status reports (a node hosts one or more).

    A node of the single-shard version lists none: its one replica is the top-level fields, and
    its node id was its replica id.
    """
    status = found.status
    if status is None:
        return []
    if status.replicas:
        return list(status.replicas)
    return [storage_pb2.ReplicaStatus(shard=status.shard, replica_id=found.node_id, ready=status.ready,
                                      partitions=status.partitions, collections=status.collections)]


def replicas_json(snapshot: ClusterSnapshot) -> list[dict[str, Any]]:
    """Every storage replica the journal tracks, with its lag as the journal measures it.

    The journal also lists query processors' caches (role ``cache``), but they never report what
    they applied, so its lag for them only grows; :func:`query_caches_json` has theirs.
    """
    if snapshot.journal is None:
        return []
    heads = {p.partition: p.head_hlc for p in snapshot.journal.partitions}
    applied_hlc = {(r.replica_id, p.partition): p.applied_hlc for s in snapshot.statuses
                   for r in replica_statuses(s) for p in r.partitions}
    return [{"replica_id": r.replica_id, "partition": r.partition, "shards": list(r.shards),
             "applied_offset": r.applied_offset, "lag_ops": r.lag_ops, "lag_bytes": r.lag_bytes,
             "lag_ms": r.lag_ms, "live": r.live, "lagging": r.lagging,
             "hlc_behind_head_ms": _hlc_behind(heads.get(r.partition, 0),
                                               applied_hlc.get((r.replica_id, r.partition), 0))}
            for r in sorted(snapshot.journal.replicas, key=lambda r: (r.partition, r.replica_id))
            if r.role != "cache"]


def query_caches_json(snapshot: ClusterSnapshot) -> list[dict[str, Any]]:
    """Every query processor's cache per partition: applied offset, lag behind the journal's head
    (the journal's Stats; else the head the processor heard of), staleness, hits and syncs."""
    heads = {p.partition: p.head_offset for p in snapshot.journal.partitions} if snapshot.journal else {}
    shards = {n.node_id: list(n.shards) for n in snapshot.nodes}
    rows = []
    for q in sorted(snapshot.queries, key=lambda q: q.node_id):
        base = {"node_id": q.node_id, "shards": shards.get(q.node_id, []), "cache_hits": q.cache_hits,
                "sync_pulls": q.sync_pulls, "error": q.error}
        if not q.partitions:
            rows.append({**base, "partition": None, "applied_offset": None, "lag_ops": None,
                         "staleness_ms": None})
        for p in q.partitions:
            head = max(heads.get(p.partition, 0), p.head_offset)
            rows.append({**base, "partition": p.partition, "applied_offset": p.applied_offset,
                         "lag_ops": max(0, head - p.applied_offset), "staleness_ms": p.staleness_ms})
    return rows


def _hlc_behind(head_hlc: int, applied_hlc: int) -> int | None:
    """HLC distance (ms) from an applied entry to the head; None when either is unknown."""
    if not head_hlc or not applied_hlc:
        return None
    return max(0, physical_ms(head_hlc) - physical_ms(applied_hlc))


def shards_json(snapshot: ClusterSnapshot) -> list[dict[str, Any]]:
    """Per shard: its storage replicas and query processors, each with its progress per partition
    (a storage node hosting several shards has one row under each)."""
    heads = {p.partition: p.head_hlc for p in snapshot.journal.partitions} if snapshot.journal else {}
    statuses = {s.node_id: s for s in snapshot.statuses}
    caches = {q.node_id: q for q in snapshot.queries}
    shards: dict[int, dict[str, Any]] = {}
    for node in sorted(snapshot.nodes, key=lambda n: n.node_id):
        if node.role not in ("query", "storage"):
            continue
        for n in node.shards:
            if node.role == "query":
                row = _query_row(node, caches.get(node.node_id))
            else:
                row = _storage_row(node, statuses.get(node.node_id), heads, n)
            shards.setdefault(n, {"shard": n, "storage": [], "query": []})[node.role].append(row)
    return [shards[n] for n in sorted(shards)]


def _query_row(node: meta_pb2.NodeInfo, cache: QueryStatus | None) -> dict[str, Any]:
    partitions = [{"partition": p.partition, "applied_offset": p.applied_offset, "head_offset": p.head_offset,
                   "staleness_ms": p.staleness_ms} for p in (cache.partitions if cache else [])]
    return {"node_id": node.node_id, "state": node.state or "up", "partitions": partitions,
            "error": cache.error if cache else None}


def _storage_row(node: meta_pb2.NodeInfo, found: NodeStatus | None, heads: dict[str, int],
                 shard: int) -> dict[str, Any]:
    """The node's replica of ``shard``."""
    row: dict[str, Any] = {"node_id": node.node_id, "replica": node.replica, "state": node.state or "up",
                           "ready": None, "partitions": [], "error": None}
    if found is None or found.status is None:
        row["error"] = found.error if found is not None else None
        return row
    replica = next((r for r in replica_statuses(found) if r.shard == shard), None)
    if replica is None:
        row["error"] = f"storage node {node.node_id} does not report a replica of shard {shard}"
        return row
    row["ready"] = replica.ready
    for p in replica.partitions:
        row["partitions"].append({
            "partition": p.partition, "applied_offset": p.applied_offset, "head_offset": p.head_offset,
            "staleness_ms": p.staleness_ms, "hlc_behind_head_ms": _hlc_behind(heads.get(p.partition, 0),
                                                                               p.applied_hlc)})
    return row


def record_counts(snapshot: ClusterSnapshot) -> dict[str, tuple[int, int]]:
    """``{"tenant/collection": (live, deleted)}``: per shard, the replica that holds the most records
    (the one furthest along), summed over the shards."""
    best: dict[tuple[str, int], tuple[int, int]] = {}
    for found in snapshot.statuses:
        for replica in replica_statuses(found):
            for c in replica.collections:
                key = (c.collection, replica.shard)
                best[key] = max(best.get(key, (0, 0)), (c.live_records, c.deleted_records))
    totals: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
    for (collection, _), (live, deleted) in best.items():
        have = totals[collection]
        totals[collection] = (have[0] + live, have[1] + deleted)
    return dict(totals)


def collections_json(schemas: Iterable[CollectionSchema],
                     counts: dict[str, tuple[int, int]] | None) -> list[dict[str, Any]]:
    """The tenant's collections with their record counts (``None`` when the probe has none)."""
    rows = []
    for s in sorted(schemas, key=lambda s: s.name):
        live, deleted = (None, None) if counts is None else counts.get(f"{s.tenant}/{s.name}", (0, 0))
        rows.append({"name": s.name, "tenant": s.tenant, "dim": s.dim, "metric": s.metric, "shards": s.shards,
                     "replicas": s.replicas, "partition": s.partition, "live_records": live,
                     "deleted_records": deleted})
    return rows


def overview_json(*, snapshot: ClusterSnapshot | None, reason: str | None,
                  collections: Sequence[CollectionSchema], heads: Sequence[PartitionHead],
                  metrics: dict[str, Any], tenant: str, now_ms: int) -> dict[str, Any]:
    """The whole answer of ``GET /v1/cluster/overview``.

    Args:
        snapshot: what the probe read, or None when the gateway has no probe (then
            ``cluster.available`` is false and ``reason`` says why).
        heads: partition heads the gateway read itself (used when the journal's Stats are missing).
    """
    errors = [] if snapshot is None else [e for e in (snapshot.journal_error, snapshot.nodes_error) if e]
    if snapshot is not None:
        errors += [s.error for s in snapshot.statuses if s.error]
        errors += [q.error for q in snapshot.queries if q.error]
    nodes = nodes_json(snapshot, now_ms) if snapshot is not None else []
    journal = snapshot.journal if snapshot is not None else None
    return {
        "generated_at_ms": now_ms,
        "tenant": tenant,
        "cluster": {"available": snapshot is not None, "reason": reason, "errors": errors,
                    "back_pressure": bool(journal and journal.back_pressure),
                    "back_pressure_reason": (journal.back_pressure_reason or None) if journal else None,
                    "nodes_up": sum(n["state"] == "up" for n in nodes),
                    "nodes_down": sum(n["state"] != "up" for n in nodes)},
        "nodes": nodes,
        "shards": shards_json(snapshot) if snapshot is not None else [],
        "partitions": partitions_json(snapshot, heads, now_ms),
        "replicas": replicas_json(snapshot) if snapshot is not None else [],
        "query_caches": query_caches_json(snapshot) if snapshot is not None else [],
        "collections": collections_json(collections, record_counts(snapshot) if snapshot else None),
        "metrics": metrics,
    }
