"""Waiting for replicas to apply a durable entry (``ack=one|all``).

For an entry at ``offset`` touching ``shards`` the journal builds *groups* of
replica ids: ``ack=all`` -> one group per live, non-lagging serving replica;
``ack=one`` -> one group per touched shard holding the replicas that serve
it. The wait ends when every group has a replica whose applied offset is
``>= offset``, or when the ack timeout passes; replicas still missing then are
marked lagging by the caller. A replica that leaves meanwhile (:meth:`AckTracker.left`)
is taken out of every waiting write: it is no longer expected, and a group it
empties (no other replica serves that shard) is dropped, as if no live replica
had served it when the write came.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from vecraft.services.journal_service.distribution.replicas import ReplicaRegistry, ReplicaState
from vecraft.shared.rpc.v1 import journal_pb2


@dataclass(slots=True)
class AckOutcome:
    """How a write's replication went; ``lagging`` = expected replicas that had not applied it."""

    expected: list[str] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    lagging: list[str] = field(default_factory=list)
    timed_out: bool = False


@dataclass(slots=True)
class _Waiter:
    offset: int
    groups: list[set[str]]
    expected: set[str]
    future: asyncio.Future[None]

    def satisfied_by(self, acked: set[str]) -> bool:
        return all(not group.isdisjoint(acked) for group in self.groups)

    def without(self, replica_id: str) -> bool:
        """Stop expecting ``replica_id``; True if it was in a group (the wait may be over now)."""
        self.expected.discard(replica_id)
        if not any(replica_id in group for group in self.groups):
            return False
        for group in self.groups:
            group.discard(replica_id)
        self.groups = [group for group in self.groups if group]
        return True


def ack_groups(mode: int, shards: Sequence[int], serving: Sequence[ReplicaState]) -> list[set[str]]:
    """The replica-id groups a write in ``mode`` must hear from (empty = nothing to wait for)."""
    active = [s for s in serving if not s.lagging]
    if mode == journal_pb2.ACK_JOURNAL or not active:
        return []
    if mode == journal_pb2.ACK_ONE:
        touched = set(shards)
        if not touched:
            # An entry for every shard: each shard some live replica serves.
            touched = {shard for s in active for shard in s.shards}
        if not touched:
            # Every replica serves every shard: one of them is enough.
            return [{s.replica_id for s in active}]
        groups = [{s.replica_id for s in active if not s.shards or shard in s.shards} for shard in touched]
        return [g for g in groups if g]
    return [{s.replica_id} for s in active]


class AckTracker:
    """Write waiters per partition, released by applied-offset reports."""

    def __init__(self, registry: ReplicaRegistry) -> None:
        self._registry = registry
        self._waiters: dict[str, list[_Waiter]] = {}

    def _acked(self, partition: str, offset: int, ids: set[str]) -> set[str]:
        acked = set()
        for rid in ids:
            state = self._registry.get(partition, rid)
            if state is not None and state.applied >= offset:
                acked.add(rid)
        return acked

    async def wait(self, partition: str, offset: int, mode: int, shards: Sequence[int],
                   timeout: float) -> AckOutcome:
        """Wait until the replicas ``mode`` requires have applied ``offset`` (or ``timeout`` s)."""
        serving = self._registry.serving(partition, shards)
        groups = ack_groups(mode, shards, serving)
        expected = {rid for group in groups for rid in group} | {s.replica_id for s in serving}
        if mode == journal_pb2.ACK_JOURNAL:
            return AckOutcome()
        outcome = AckOutcome()
        waiter = _Waiter(offset, groups, expected, asyncio.get_running_loop().create_future())
        if groups and not waiter.satisfied_by(self._acked(partition, offset, expected)):
            waiters = self._waiters.setdefault(partition, [])
            waiters.append(waiter)
            try:
                await asyncio.wait_for(asyncio.shield(waiter.future), timeout)
            except TimeoutError:
                outcome.timed_out = True
            finally:
                waiters.remove(waiter)
        # The waiter's sets, not the ones above: replicas that left meanwhile are out of them.
        acked = self._acked(partition, offset, waiter.expected)
        outcome.expected = sorted(waiter.expected)
        outcome.acked = sorted(acked)
        outcome.lagging = sorted(waiter.expected - acked)
        if outcome.timed_out:
            # Only the replicas that held this write up are marked; already-lagging ones stay so.
            holding = {rid for group in waiter.groups if group.isdisjoint(acked) for rid in group}
            self._registry.mark_lagging(partition, holding)
        return outcome

    def applied(self, partition: str, replica_id: str, offset: int) -> None:
        """A replica reported ``offset`` applied: release the waiters it completes."""
        for waiter in self._waiters.get(partition, ()):
            if waiter.offset > offset or waiter.future.done():
                continue
            if any(replica_id in group for group in waiter.groups):
                ids = {rid for group in waiter.groups for rid in group}
                if waiter.satisfied_by(self._acked(partition, waiter.offset, ids)):
                    waiter.future.set_result(None)

    def left(self, partition: str, replica_id: str) -> None:
        """A replica left (forgotten by the registry already): release the waiters it held up."""
        for waiter in self._waiters.get(partition, ()):
            # Released waiters too: their outcome, computed when they resume, must not expect it.
            if not waiter.without(replica_id) or waiter.future.done():
                continue
            ids = {rid for group in waiter.groups for rid in group}
            if waiter.satisfied_by(self._acked(partition, waiter.offset, ids)):
                waiter.future.set_result(None)
