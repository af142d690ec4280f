"""The query processor's binding of the shared partition follower (:mod:`vecraft.shared.replica.follower`).

Each data partition is followed by a
:class:`~vecraft.shared.replica.follower.PartitionFollower` driving the
in-memory :class:`ShardCache`, as a ``cache`` subscriber (caches never count
for write acknowledgements). This module names the processor's metrics, builds
the followers and runs the start-up warm-up: every partition pulled to the
journal head as of then, so a restarted processor serves from a current cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from vecraft.services.query_processor import metrics
from vecraft.services.query_processor.cache.shard_cache import ShardCache
from vecraft.shared.common.errors import DeadlineExceeded, Unavailable
from vecraft.shared.replica import PartitionHalted
from vecraft.shared.replica.follower import FollowerObserver, JournalSource, PartitionFollower
from vecraft.shared.replica.history import CACHE_ACTION
from vecraft.shared.replica.queue import QUEUE_MAX_BYTES, QUEUE_MAX_ENTRIES

log = logging.getLogger(__name__)


class QueryObserver(FollowerObserver):
    """The query processor's follower metrics (names in docs/consistency.md)."""

    def applied(self, partition: str, offset: int, entries: int, path: str) -> None:
        if path == "push":
            metrics.TAIL_ENTRIES.labels(partition).inc(entries)

    def head(self, partition: str, offset: int) -> None:
        metrics.HEAD_OFFSET.labels(partition).set(offset)

    def staleness(self, partition: str, ms: int) -> None:
        metrics.STALENESS_MS.labels(partition).set(ms)

    def sync_waiter(self, partition: str) -> None:
        metrics.SYNC_WAITERS.labels(partition).inc()

    def sync_pull(self, partition: str, seconds: float, entries: int) -> None:
        metrics.SYNC_PULLS.labels(partition).inc()
        metrics.SYNC_SECONDS.labels(partition).observe(seconds)
        metrics.SYNC_ENTRIES.labels(partition).inc(entries)

    def sync_failed(self, partition: str, error: BaseException) -> None:
        metrics.SYNC_FAILURES.labels(partition, type(error).__name__).inc()


def cache_followers(journal: JournalSource, cache: ShardCache, *, replica_id: str, delay_ms: int = 0,
                    queue_entries: int = QUEUE_MAX_ENTRIES, queue_bytes: int = QUEUE_MAX_BYTES,
                    observe: bool = True) -> dict[str, PartitionFollower]:
    """One follower per partition of ``cache``.

    ``observe``: the followers set the processor's metrics (False for a loader's,
    which only pull, so the gauges keep showing the served cache).
    """
    observer = QueryObserver() if observe else FollowerObserver()
    return {p: PartitionFollower(p, cache, journal, replica_id=replica_id, shards=cache.shards, role="cache",
                                 delay_ms=delay_ms, action=CACHE_ACTION, queue_entries=queue_entries,
                                 queue_bytes=queue_bytes, observer=observer)
            for p in cache.partitions}


async def warm_up(followers: Mapping[str, PartitionFollower], *, retry_s: float = 0.5) -> int:
    """Bring every partition to the journal head read when its turn comes; entries applied.

    Retries (with ``retry_s`` pauses) while the journal is unavailable or does
    not answer in time (a stalled journal): a processor that cannot read the
    journal must not become ready, and must not die of it either. A halted
    partition is not retried (the cache reported it loudly).
    """
    total = 0
    for partition, follower in followers.items():
        while True:
            try:
                total += (await follower.sync(None)).entries_pulled
                break
            except PartitionHalted:
                break
            except (Unavailable, DeadlineExceeded) as err:
                log.warning("warm-up of %s retries: %s", partition, err.message)
                await asyncio.sleep(retry_s)
    return total
