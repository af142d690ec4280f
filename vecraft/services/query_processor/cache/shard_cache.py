"""The query processor's cached copy of its shards, fed by journal entries.

One :class:`ShardState` per served shard holds that shard of every collection.
Entries of a partition are applied to every state, in offset order, in a
thread pool (the event loop keeps serving searches meanwhile). It is the
processor's :class:`~vecraft.shared.replica.follower.ShardApplier`: one
shared ``PartitionFollower`` per partition feeds it (push tail and
pull-before-read, serialized by the follower), and entries at or below the
applied offset are dropped: an entry is never applied twice, and never past a
gap.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor

import numpy as np

from vecraft.services.query_processor import metrics
from vecraft.services.query_processor.aggregation import ShardHits
from vecraft.shared.common.metrics import timed
from vecraft.shared.index import ShardState
from vecraft.shared.model.filters import Filter
from vecraft.shared.replica import PartitionHalts
from vecraft.shared.replica.follower import JournalGap
from vecraft.shared.replica.halt import describe
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2


def _cache_state(shard: int) -> ShardState:
    # The cache keeps no documents: a search that asks for them reads them for its final top-k
    # from the storage replicas (api_gateway/fanout.py), so the cache costs no memory for text.
    return ShardState(shard, keep_documents=False)


class ShardCache:
    """In-memory state of the served shards of every collection: the processor's ShardApplier.

    Contract: :meth:`apply` may run concurrently for different partitions and
    with any number of :meth:`search` calls; applies of one partition are
    serialized by its follower. ``applied`` positions only grow.
    """

    def __init__(self, shards: Sequence[int], partitions: Sequence[str], executor: Executor, *,
                 state_factory: Callable[[int], ShardState] = _cache_state) -> None:
        if not shards:
            raise ValueError("a query processor serves at least one shard")
        self.shards = sorted(set(shards))
        self.partitions = list(partitions)
        self.states = {s: state_factory(s) for s in self.shards}
        #: Partitions this cache stopped applying (an apply failed, or the journal diverged).
        self.halts = PartitionHalts()
        self._executor = executor
        self._applied: dict[str, tuple[int, int]] = {}
        # Applies running in the pool right now; only they take the indexes' write locks.
        self._applying = 0

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
        with timed(metrics.APPLY_SECONDS.labels(partition)):
            self._applying += 1
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, self._apply_all, batch)
            except Exception as exc:
                self._publish_applied(partition)
                raise self.halts.halt(
                    partition, "apply_failed", describe(exc),
                    action="restart the query processor once the journal is repaired") from exc
            finally:
                self._applying -= 1
        last = batch[-1]
        self._applied[partition] = (last.offset, last.hlc)
        metrics.APPLIED_OFFSET.labels(partition).set(last.offset)
        return len(batch)

    def _publish_applied(self, partition: str) -> None:
        """Record what every state applied of ``partition`` (after a partial apply)."""
        offset, hlc = min(st.applied.get(partition, (0, 0)) for st in self.states.values())
        if offset > self.applied(partition)[0]:
            self._applied[partition] = (offset, hlc)
            metrics.APPLIED_OFFSET.labels(partition).set(offset)

    def _apply_all(self, batch: list[journal_pb2.JournalEntry]) -> None:
        # ShardState serializes its appliers and lets searches run meanwhile.
        for state in self.states.values():
            state.apply_many(batch)

    def schema(self, tenant: str, name: str) -> collection_pb2.CollectionSchema:
        """The collection's schema as of the applied state; NotFound if unknown."""
        return self.states[self.shards[0]].schema(tenant, name)

    async def search(self, shards: Sequence[int], tenant: str, collection: str, query: np.ndarray, k: int,
                     flt: Filter | None, ef_search: int | None) -> list[ShardHits]:
        """Top-``k`` of each shard in ``shards`` (all served).

        One shard while no apply runs: searched on the event loop's thread. The
        search takes a fraction of a millisecond and cannot wait for a write
        lock, and the two thread hand-offs of the pool cost more than that on a
        busy host (measured: see docs/performance.md). Otherwise in parallel in
        the pool, so a search waiting for a write section never blocks the loop.

        Raises whatever :meth:`ShardState.search` raises: NotFound (unknown
        collection), InvalidRequest (wrong dimension).
        """
        def one(shard: int) -> ShardHits:
            ids, scores, meta = self.states[shard].search(tenant, collection, query, k, flt, ef_search)
            return ShardHits(ids=list(ids), scores=np.asarray(scores, dtype=np.float32),
                             metadata_json=list(meta))

        if len(shards) == 1 and not self._applying:
            return [one(shards[0])]
        loop = asyncio.get_running_loop()
        return list(await asyncio.gather(*(loop.run_in_executor(self._executor, one, s) for s in shards)))
