"""The query processor's cached copy of its shards, fed by journal entries.

One :class:`ShardState` per served shard holds that shard of every collection.
Entries of a partition are applied to every state, in offset order, in a
thread pool (the event loop keeps serving searches meanwhile). It is the
processor's :class:`~vecraft.shared.replica.follower.ShardApplier`: one
shared ``PartitionFollower`` per partition feeds it (push tail and
pull-before-read, serialized by the follower), and entries at or below the
applied offset are dropped: an entry is never applied twice, and never past a
gap.

The set of shards changes at runtime (:meth:`ShardCache.replace_shards`): a
shard added by the placement map is built in a separate cache (the *loader*)
from the journal, then its state joins this one once it has applied at least
as far as this cache (:meth:`ShardCache.behind`); a removed shard's state is
dropped. Each ``ShardState`` skips the entries it already applied, so a state
that joins ahead of the cache is fed from where it stands, with no gap. One
journal stream per partition feeds every shard, however many.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor

import numpy as np

from vecraft.services.query_processor import metrics
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.common.metrics import timed
from vecraft.shared.index import ShardState
from vecraft.shared.model.filters import Filter
from vecraft.shared.model.records import ShardHits
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.replica import PartitionHalts
from vecraft.shared.replica.follower import JournalGap
from vecraft.shared.replica.halt import describe
from vecraft.shared.rpc.v1 import journal_pb2


def _cache_state(shard: int) -> ShardState:
    # The cache keeps no documents: a search that asks for them reads them for its final top-k
    # from the storage replicas (api_gateway/fanout.py), so the cache costs no memory for text.
    return ShardState(shard, keep_documents=False)


#: Most shards one search takes on the event loop's thread (see :meth:`ShardCache.search`).
INLINE_SHARDS = 4


class ShardCache:
    """In-memory state of the served shards of every collection: the processor's ShardApplier.

    Contract: :meth:`apply` may run concurrently for different partitions and
    with any number of :meth:`search` calls; applies of one partition are
    serialized by its follower. ``applied`` positions only grow. The shard set
    may be empty (a processor assigned nothing) and changes only through
    :meth:`replace_shards`, on the event loop.

    ``publish_metrics``: whether this cache sets the processor's per-partition
    gauges (False for a loader, whose progress is not the served cache's).
    """

    def __init__(self, shards: Sequence[int], partitions: Sequence[str], executor: Executor, *,
                 state_factory: Callable[[int], ShardState] = _cache_state,
                 publish_metrics: bool = True) -> None:
        self.shards = sorted(set(shards))
        self.partitions = list(partitions)
        #: shard -> state. Replaced as a whole, never mutated: an apply running in the pool
        #: iterates the dict it read, whatever replace_shards does meanwhile.
        self.states: Mapping[int, ShardState] = {s: state_factory(s) for s in self.shards}
        #: Partitions this cache stopped applying (an apply failed, or the journal diverged).
        self.halts = PartitionHalts()
        self.publish_metrics = publish_metrics
        self._executor = executor
        self._applied: dict[str, tuple[int, int]] = {}
        # Applies running in the pool right now; only they take the indexes' write locks.
        self._applying = 0
        # partition -> last offset of the apply of it running now (the offsets it will reach).
        self._in_flight: dict[str, int] = {}

    def applied(self, partition: str) -> tuple[int, int]:
        """(offset, hlc) of the last entry of ``partition`` applied to every served shard."""
        return self._applied.get(partition, (0, 0))

    async def apply(self, partition: str, entries: Sequence[journal_pb2.JournalEntry], *,
                    path: str = "push") -> int:
        """Apply the entries of ``partition`` past the applied offset; returns how many were new.

        Raises:
            JournalGap: the first new entry is past applied + 1 (nothing applied).
            PartitionHalted: the partition is halted, or this apply failed (an
                entry of a collection never created, an index error): the
                partition is halted then, loudly, and never retried behind a
                READY probe; the entries before the failing one stay applied.
        """
        self.halts.check(partition)
        applied = self.applied(partition)[0]
        batch = [e for e in entries if e.offset > applied]
        if not batch:
            return 0
        if batch[0].offset != applied + 1:
            raise JournalGap(partition, applied, batch[0].offset)
        for i in range(1, len(batch)):
            if batch[i].offset != batch[i - 1].offset + 1:
                batch = batch[:i]  # apply up to the hole; the follower pulls the rest
                break
        last = batch[-1]
        with timed(metrics.APPLY_SECONDS.labels(partition)):
            self._applying += 1
            self._in_flight[partition] = last.offset
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._apply_all, batch)
            except Exception as exc:
                self._publish_applied(partition)
                raise self.halts.halt(
                    partition, "apply_failed", describe(exc),
                    action="restart the query processor once the journal is repaired") from exc
            finally:
                self._applying -= 1
                del self._in_flight[partition]
        self._set_applied(partition, last.offset, last.hlc)
        return len(batch)

    def _set_applied(self, partition: str, offset: int, hlc: int) -> None:
        self._applied[partition] = (offset, hlc)
        if self.publish_metrics:
            metrics.APPLIED_OFFSET.labels(partition).set(offset)

    def _publish_applied(self, partition: str) -> None:
        """Record what every state applied of ``partition`` (after a partial apply)."""
        if not self.states:
            return
        offset, hlc = min(st.applied.get(partition, (0, 0)) for st in self.states.values())
        if offset > self.applied(partition)[0]:
            self._set_applied(partition, offset, hlc)

    def _apply_all(self, batch: list[journal_pb2.JournalEntry]) -> None:
        # ShardState serializes its appliers and lets searches run meanwhile.
        for state in self.states.values():
            state.apply_many(batch)

    # ---- changing the shard set ----------------------------------------------------------
    def behind(self, loader: ShardCache) -> dict[str, int]:
        """Partitions ``loader`` must still apply before its states may join this cache: offset to reach.

        Empty when every partition of ``loader`` has applied at least what this cache has
        applied or is applying right now: then :meth:`replace_shards` may take its states
        at once (without awaiting in between), and every later entry reaches them.
        """
        need: dict[str, int] = {}
        for partition in self.partitions:
            target = max(self.applied(partition)[0], self._in_flight.get(partition, 0))
            if loader.applied(partition)[0] < target:
                need[partition] = target
        return need

    def replace_shards(self, add: Mapping[int, ShardState], remove: Iterable[int] = ()) -> None:
        """Serve the states of ``add`` (each applied at least as far as this cache: see
        :meth:`behind`) and stop serving ``remove``; the dropped states are simply released."""
        states = {s: st for s, st in self.states.items() if s not in set(remove)}
        states.update(add)
        self.states = states
        self.shards = sorted(states)

    # ---- reading -------------------------------------------------------------------------
    def collections(self) -> list[CollectionSchema]:
        """Every collection of the applied state (all served shards hold the same catalog); none
        while no shard is served."""
        state = next(iter(self.states.values()), None)
        return list(state.collections()) if state is not None else []

    def schema(self, tenant: str, name: str) -> CollectionSchema:
        """The collection's schema as of the applied state; NotFound if unknown.

        Raises:
            Unavailable: no shard is served.
        """
        state = next(iter(self.states.values()), None)
        if state is None:
            raise Unavailable("this query processor serves no shard", details={"served_shards": []})
        return state.schema(tenant, name)

    async def search(self, shards: Sequence[int], tenant: str, collection: str, query: np.ndarray, k: int,
                     flt: Filter | None, ef_search: int | None) -> list[ShardHits]:
        """Top-``k`` of each shard in ``shards`` (all served).

        Up to :data:`INLINE_SHARDS` shards while no apply runs: searched one after
        the other on the event loop's thread. Each search takes a fraction of a
        millisecond and cannot wait for a write lock, and the pool's two thread
        hand-offs per shard cost more than that (measured: one shard 1.0 -> 0.8 ms
        of CPU; three shards in standalone mode P50 2.23 -> 1.84 ms, see
        docs/performance.md). Otherwise in parallel in the pool, so a search
        waiting for a write section never blocks the loop, nor do many shards.

        Raises whatever :meth:`ShardState.search` raises: NotFound (unknown
        collection), InvalidRequest (wrong dimension); Unavailable for a shard
        this cache stopped serving since the request was validated.
        """
        states = self.states
        gone = [s for s in shards if s not in states]
        if gone:
            raise Unavailable(f"shards {gone} are no longer served by this query processor "
                              f"(it serves {sorted(states)})",
                              details={"shards": gone, "served_shards": sorted(states)}, retry_after_ms=200)

        def one(shard: int) -> ShardHits:
            ids, scores, meta = states[shard].search(tenant, collection, query, k, flt, ef_search)
            return ShardHits(ids=list(ids), scores=np.asarray(scores, dtype=np.float32),
                             metadata_json=list(meta))

        if len(shards) <= INLINE_SHARDS and not self._applying:
            return [one(s) for s in shards]
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(self._executor, one, s) for s in shards)))
