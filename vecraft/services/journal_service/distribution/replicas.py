"""Who consumes each partition: the replica registry, liveness and lag.

A consumer is known by ``(partition, replica_id)``. It registers by opening a
Subscribe stream (its ``from_offset - 1`` counts as applied) or by calling
ReportApplied. Only role ``"replica"`` consumers (storage replicas) count for
write acknowledgements and back-pressure; ``"cache"`` consumers (query
processors) are tracked for Stats only.

A consumer is *live* while it has an open stream or reported within
``liveness_ms``. A live replica that misses a write's ack timeout is marked
*lagging*: it stops holding up ``ack=all`` writes until it has caught up
with the partition head, but still counts for back-pressure.

A consumer that stops on purpose (Leave: its shard replica was dropped, its
process stops) is forgotten at once instead of aging out over ``liveness_ms``.
Reports that arrive after it left (sent before, delayed) do not bring it back
for the next ``liveness_ms``; a new Subscribe stream does, at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from vecraft.services.journal_service.wal import PartitionLog
from vecraft.shared.hlc import physical_ms, wall_clock_ms

ROLE_REPLICA = "replica"
ROLE_CACHE = "cache"
ROLES = (ROLE_REPLICA, ROLE_CACHE)


@dataclass(slots=True)
class Lag:
    """How far a consumer is behind its partition head."""

    ops: int = 0
    bytes: int = 0
    ms: int = 0


@dataclass(slots=True)
class ReplicaState:
    """What the journal knows about one consumer of one partition."""

    replica_id: str
    partition: str
    role: str
    shards: frozenset[int] = frozenset()  # empty = every shard
    applied: int = 0
    streams: int = 0
    last_seen: float = field(default_factory=time.monotonic)
    lagging: bool = False
    lag: Lag = field(default_factory=Lag)

    def serves(self, shards: Sequence[int]) -> bool:
        """True if this consumer applies any of ``shards`` (empty = the entry touches all)."""
        return not shards or not self.shards or not self.shards.isdisjoint(shards)

    def live(self, now: float, liveness_s: float) -> bool:
        return self.streams > 0 or now - self.last_seen <= liveness_s

    @property
    def counts(self) -> bool:
        """Counts for acks and back-pressure (a storage replica, not a cache)."""
        return self.role == ROLE_REPLICA


def compute_lag(state: ReplicaState, plog: PartitionLog, now_ms: int | None = None) -> Lag:
    """Lag of ``state`` behind ``plog``: ops, bytes, and age of its oldest unapplied entry."""
    head = plog.head[0]
    if state.applied >= head:
        return Lag()
    oldest = plog.hlc_at(state.applied + 1)
    now = wall_clock_ms() if now_ms is None else now_ms
    return Lag(head - state.applied, plog.bytes_after(state.applied), max(0, now - physical_ms(oldest)))


class ReplicaRegistry:
    """Consumers per partition. Single-threaded (event loop) use only."""

    def __init__(self, liveness_ms: int) -> None:
        self.liveness_s = liveness_ms / 1000.0
        self._by_partition: dict[str, dict[str, ReplicaState]] = {}
        # (partition, replica id) -> when it left (monotonic); pruned after liveness_s.
        self._left: dict[tuple[str, str], float] = {}

    def _get(self, partition: str, replica_id: str, role: str) -> ReplicaState:
        replicas = self._by_partition.setdefault(partition, {})
        state = replicas.get(replica_id)
        if state is None:
            state = replicas[replica_id] = ReplicaState(replica_id, partition, role)
        return state

    def subscribed(self, partition: str, replica_id: str, *, shards: Iterable[int], role: str,
                   from_offset: int) -> ReplicaState:
        """A Subscribe stream opened; everything before ``from_offset`` is applied.

        A consumer that had left joins again.
        """
        self._left.pop((partition, replica_id), None)
        state = self._get(partition, replica_id, role)
        state.role = role
        state.shards = frozenset(shards)
        state.streams += 1
        state.applied = max(state.applied, from_offset - 1)
        state.last_seen = time.monotonic()
        return state

    def unsubscribed(self, state: ReplicaState) -> None:
        """A Subscribe stream closed (of a consumer that left: its forgotten state, no effect)."""
        state.streams = max(0, state.streams - 1)
        # Liveness runs on from the moment the stream closed.
        state.last_seen = time.monotonic()

    def report(self, partition: str, replica_id: str, applied: int, head: int) -> ReplicaState | None:
        """Record an applied offset; a replica never seen before is registered serving every shard.

        Applied offsets only move forward: a report older than one already
        seen (a reordered or delayed call) changes nothing but liveness.

        Returns:
            The consumer's state; None (nothing recorded) when it left less than
            ``liveness_s`` ago: a report sent before it left must not bring it back.
        """
        left_at = self._left.get((partition, replica_id))
        if left_at is not None:
            if time.monotonic() - left_at <= self.liveness_s:
                return None
            del self._left[(partition, replica_id)]
        state = self._get(partition, replica_id, ROLE_REPLICA)
        state.applied = max(state.applied, applied)
        state.last_seen = time.monotonic()
        if state.lagging and state.applied >= head:
            state.lagging = False
        return state

    def leave(self, partition: str, replica_id: str) -> bool:
        """Forget a consumer that stops on purpose, whatever its streams; True if it was known.

        From now on it is not live, not expected by writes, not in Stats; a stream of it still
        open (closing) keeps only its forgotten state. It joins again by subscribing.
        """
        now = time.monotonic()
        self._left = {key: at for key, at in self._left.items() if now - at <= self.liveness_s}
        self._left[(partition, replica_id)] = now
        return self._by_partition.get(partition, {}).pop(replica_id, None) is not None

    def mark_lagging(self, partition: str, replica_ids: Iterable[str]) -> None:
        replicas = self._by_partition.get(partition, {})
        for rid in replica_ids:
            if rid in replicas:
                replicas[rid].lagging = True

    def get(self, partition: str, replica_id: str) -> ReplicaState | None:
        return self._by_partition.get(partition, {}).get(replica_id)

    def consumers(self, partition: str) -> list[ReplicaState]:
        """Every consumer ever seen on ``partition`` (live or not, any role)."""
        return list(self._by_partition.get(partition, {}).values())

    def all(self) -> list[ReplicaState]:
        return [s for replicas in self._by_partition.values() for s in replicas.values()]

    def serving(self, partition: str, shards: Sequence[int]) -> list[ReplicaState]:
        """Live replicas (role replica) of ``partition`` that apply any of ``shards``."""
        now = time.monotonic()
        return [s for s in self._by_partition.get(partition, {}).values()
                if s.counts and s.live(now, self.liveness_s) and s.serves(shards)]
