"""Keeping the cache current in the background: the delayed push tail and the head watch.

:class:`PartitionTail` subscribes to one partition as a ``cache`` subscriber
(caches never count for write acknowledgements) with the configured apply
delay, and applies what arrives in batches: a reader task moves entries into
a bounded queue (by entries and bytes; the reader waits while it is full, so a
slow applier pushes back on the stream instead of growing memory), an applier
task takes everything queued at once and applies it with ``apply_many``.
Pull-before-read syncs apply ahead of it; they call
:meth:`PartitionTail.skip_to` so the stream never yields what a sync applied.

:class:`HeadWatch` asks the journal for every partition's head a few times a
second. Each answer tells the staleness bound "nothing committed before this
moment is missing" once the cache reaches that head; when the journal stops
answering the bound keeps growing, so staleness is never underestimated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from vecraft.services.query_processor import metrics
from vecraft.services.query_processor.cache.catchup import JournalReader, Subscription, catch_up_locked
from vecraft.services.query_processor.cache.shard_cache import ShardCache
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.replica import PartitionHalted, monotonic_ms
from vecraft.shared.replica.history import CACHE_ACTION, diverged
from vecraft.shared.replica.queue import QUEUE_MAX_BYTES, QUEUE_MAX_ENTRIES, EntryQueue
from vecraft.shared.rpc.v1 import journal_pb2

log = logging.getLogger(__name__)

#: Most entries applied by one apply_many call from the tail.
MAX_BATCH = 512
#: Pause before re-subscribing after the stream failed for good.
RESUBSCRIBE_S = 0.5
#: Head polls between two checks that the journal still holds the applied entry
#: (a journal restarted with another history is otherwise invisible to a stream
#: that reconnects by itself).
HISTORY_CHECK_EVERY = 10


class PartitionTail:
    """The delayed push stream of one partition into the cache.

    Contract: :meth:`run` returns only when cancelled; :meth:`skip_to` may be
    called at any time from the event loop.
    """

    def __init__(self, journal: JournalReader, cache: ShardCache, partition: str, *, replica_id: str,
                 delay_ms: int, queue_entries: int = QUEUE_MAX_ENTRIES,
                 queue_bytes: int = QUEUE_MAX_BYTES) -> None:
        self.journal = journal
        self.cache = cache
        self.partition = partition
        self.replica_id = replica_id
        self.delay_ms = delay_ms
        self.subscription: Subscription | None = None
        # Bounded: while it is full the reader stops reading the stream (back-pressure
        # through the journal client's buffer and gRPC flow control), never drops.
        self.queue = EntryQueue(max_entries=queue_entries, max_bytes=queue_bytes)

    def oldest_pending_hlc(self) -> int:
        """HLC of the oldest entry the stream holds back for the apply delay (0 if none)."""
        return self.subscription.oldest_pending_hlc() if self.subscription is not None else 0

    def skip_to(self, offset: int) -> None:
        """A sync applied up to ``offset``: the stream must not yield those entries again."""
        if self.subscription is not None:
            self.subscription.skip_to(offset)

    async def run(self) -> None:
        """Follow the stream until cancelled; once the partition halts, stop reading and park.

        A halted partition is not retried: its readers get 503 with the reason
        (:class:`PartitionHalts`) until the processor is restarted.
        """
        applier = asyncio.create_task(self._apply_loop(), name=f"tail-apply:{self.partition}")
        try:
            while not self.cache.halts.halted(self.partition):
                reader = asyncio.create_task(self._read_stream(), name=f"tail-read:{self.partition}")
                await asyncio.wait({reader, applier}, return_when=asyncio.FIRST_COMPLETED)
                if applier.done():
                    reader.cancel()
                    await asyncio.gather(reader, return_exceptions=True)
                    applier.result()  # an unexpected error is fatal to the service
                    break
                try:
                    reader.result()
                except VecraftError as err:
                    log.warning("push stream of %s failed, re-subscribing: %s", self.partition, err.message)
                await asyncio.sleep(RESUBSCRIBE_S)
            await self._close()
            await asyncio.Event().wait()  # halted: parked until shutdown
        finally:
            applier.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await applier
            await self._close()

    async def _read_stream(self) -> None:
        await self._close()
        await check_history(self.journal, self.cache, self.partition)
        start = self.cache.applied(self.partition)[0] + 1
        sub = self.journal.subscribe(self.partition, start, replica_id=self.replica_id,
                                     shards=self.cache.shards, role="cache", delay_ms=self.delay_ms)
        self.subscription = sub
        fresh = self.cache.freshness[self.partition]
        async for entry in sub:
            fresh.note_received(entry.offset, entry.hlc)
            fresh.note_head(sub.head_offset, sub.head_hlc)
            await self.queue.put(entry)

    async def _close(self) -> None:
        sub, self.subscription = self.subscription, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.close()

    async def _apply_loop(self) -> None:
        while True:
            batch = await self.queue.take(MAX_BATCH)
            try:
                await self._apply(batch)
            except PartitionHalted:
                return
            except VecraftError as err:
                # The entries stay in the journal: the next sync or the gap fill
                # of a later batch brings them in.
                log.warning("tail apply of %s failed: %s", self.partition, err.message)

    async def _apply(self, batch: list[journal_pb2.JournalEntry]) -> None:
        async with self.cache.lock(self.partition):
            before = self.cache.applied(self.partition)[0]
            rest = await self.cache.apply_locked(self.partition, batch)
            if rest:
                # The stream is gapless, so this only follows a skip the stream
                # honoured late; fill from the journal rather than lose entries.
                await catch_up_locked(self.journal, self.cache, self.partition, rest[-1].offset)
            after = self.cache.applied(self.partition)[0]
        metrics.TAIL_ENTRIES.labels(self.partition).inc(max(0, after - before))


async def check_history(journal: JournalReader, cache: ShardCache, partition: str) -> None:
    """Halt ``partition`` (cause ``diverged``) if the journal no longer holds what the cache applied.

    Raises:
        PartitionHalted: the histories differ (or the partition was halted before).
    """
    cache.halts.check(partition)
    applied, applied_hlc = cache.applied(partition)
    reason = await diverged(journal, partition, applied, applied_hlc)
    if reason is not None:
        raise cache.halts.halt(partition, "diverged", reason, action=CACHE_ACTION)


class HeadWatch:
    """Polls the journal heads of the cache's partitions every ``interval_s`` seconds.

    Contract: :meth:`run` returns only when cancelled; journal errors are
    logged (rate-limited by state change) and polling continues.
    """

    def __init__(self, journal: JournalReader, cache: ShardCache, tails: Sequence[PartitionTail], *,
                 interval_s: float = 0.1) -> None:
        self.journal = journal
        self.cache = cache
        self.tails = {t.partition: t for t in tails}
        self.interval_s = interval_s
        self.journal_reachable = True
        self.polls = 0

    async def poll_once(self) -> None:
        self.polls += 1
        heard = monotonic_ms()
        try:
            heads = await self.journal.get_offsets(self.cache.partitions)
        except VecraftError as err:
            if self.journal_reachable:
                log.warning("journal head poll failed: %s", err.message)
            self.journal_reachable = False
        else:
            if not self.journal_reachable:
                log.info("journal head poll recovered")
            self.journal_reachable = True
            for partition, (offset, hlc) in heads.items():
                if partition in self.cache.freshness:
                    self.cache.freshness[partition].note_head(offset, hlc, heard)
                    metrics.HEAD_OFFSET.labels(partition).set(offset)
            due = self.polls % HISTORY_CHECK_EVERY == 0
            for partition, (offset, _hlc) in heads.items():
                if partition in self.cache.freshness and not self.cache.halts.halted(partition) and (
                        due or offset < self.cache.applied(partition)[0]):
                    with contextlib.suppress(VecraftError):  # halted inside, or the journal went away
                        await check_history(self.journal, self.cache, partition)
        self.publish()

    def publish(self) -> None:
        """Refresh the staleness gauges."""
        now = monotonic_ms()
        for partition, fresh in self.cache.freshness.items():
            tail = self.tails.get(partition)
            pending = tail.oldest_pending_hlc() if tail is not None else 0
            metrics.STALENESS_MS.labels(partition).set(fresh.staleness_ms(now, pending))

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval_s)
