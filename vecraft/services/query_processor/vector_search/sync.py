"""Pull-before-read with single flight.

A sync brings a partition of the cache to a target offset by pulling the
missing entries from the journal and applying them at once (never delayed by
the push stream's apply delay). Concurrent syncs of one partition coalesce:

- while a pull to target T is in flight, a request that needs <= T waits on
  it instead of pulling again;
- a request that needs more than T waits for that pull, then starts the next
  one (or joins the next one another waiter started); a new pull goes to the
  highest target any waiting request needs, so one pull serves them all.

A target beyond the journal head (a client's ``min_required_offset`` or a
session token from another journal) is refused with ``InvalidRequest`` for
that request alone, before it joins a pull, so it never fails the others.

Every request that needed a sync counts in ``vecraft_query_sync_waiters_total``,
every pull in ``vecraft_query_sync_pulls_total``. A pull runs as its own task:
a waiter that gives up (its deadline passed) does not cancel it for the
others.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping

from vecraft.services.query_processor import metrics
from vecraft.services.query_processor.cache import JournalReader, PartitionTail, ShardCache
from vecraft.services.query_processor.cache.catchup import catch_up_locked
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.common.metrics import timed
from vecraft.shared.replica import monotonic_ms

log = logging.getLogger(__name__)


class _Flight:
    __slots__ = ("target", "task")

    def __init__(self, target: int, task: asyncio.Task[int]) -> None:
        self.target = target
        self.task = task


class PartitionSyncer:
    """Brings partitions of the cache to a target offset, one pull at a time per partition.

    Contract: :meth:`sync_to` returns once the applied offset is >= target;
    it raises Unavailable when the journal cannot serve the pull and is safe
    to cancel (a timeout of one caller). :meth:`journal_head` reads the head
    and records it as a timed head report.
    """

    def __init__(self, journal: JournalReader, cache: ShardCache,
                 tails: Mapping[str, PartitionTail] | None = None) -> None:
        self.journal = journal
        self.cache = cache
        self.tails = dict(tails or {})
        self._flights: dict[str, _Flight] = {}
        # Targets of the requests currently inside sync_to, per partition.
        self._wanted: dict[str, dict[int, int]] = {p: {} for p in cache.partitions}
        self._tokens = itertools.count()

    async def journal_head(self, partition: str) -> int:
        """The journal's latest committed offset of ``partition`` (Unavailable if unreachable)."""
        heard = monotonic_ms()
        offset, hlc = await self.journal.get_offset(partition)
        self.cache.freshness[partition].note_head(offset, hlc, heard)
        metrics.HEAD_OFFSET.labels(partition).set(offset)
        return offset

    async def sync_to(self, partition: str, target: int) -> bool:
        """Make the applied offset of ``partition`` reach ``target``.

        Returns True when this call pulled or waited on a pull, False when the
        cache had already reached ``target``.
        """
        if self.cache.applied(partition)[0] >= target:
            return False
        await self._check_target(partition, target)
        metrics.SYNC_WAITERS.labels(partition).inc()
        token = next(self._tokens)
        wanted = self._wanted[partition]
        wanted[token] = target
        try:
            while self.cache.applied(partition)[0] < target:
                flight = self._flights.get(partition)
                # A finished flight stays registered until its done callback runs on a later
                # loop iteration; awaiting it returns at once without yielding, so reusing it
                # here would spin forever and freeze the event loop. Start the next pull instead.
                if flight is None or flight.task.done():
                    flight = self._start(partition, max(wanted.values()))
                # shield: cancelling this waiter must not cancel the shared pull.
                await asyncio.shield(flight.task)
        finally:
            del wanted[token]
        return True

    async def _check_target(self, partition: str, target: int) -> None:
        """Refuse, for this request alone, a target the journal has not reached.

        Checked before the request joins a shared pull: a pull to a target
        beyond the head would fail every request waiting on it, so one client's
        bad ``min_required_offset`` or session token must never get that far.

        Raises:
            InvalidRequest: ``target`` is beyond the journal head (named in the message).
        """
        if target <= self.cache.freshness[partition].head_offset:
            return
        head = await self.journal_head(partition)
        if target > head:
            raise InvalidRequest(f"min_required_offset {target} is beyond the head {head} of {partition}",
                                 details={"partition": partition, "head": head,
                                          "min_required_offset": target})

    def _start(self, partition: str, target: int) -> _Flight:
        task = asyncio.create_task(self._pull(partition, target), name=f"sync:{partition}:{target}")
        flight = _Flight(target, task)
        self._flights[partition] = flight

        def _done(t: asyncio.Task[int]) -> None:
            if self._flights.get(partition) is flight:
                del self._flights[partition]
            if not t.cancelled() and t.exception() is not None:
                # Retrieved here so a pull whose waiters all timed out is not
                # reported as "exception never retrieved"; waiters re-raise it.
                metrics.SYNC_FAILURES.labels(partition, type(t.exception()).__name__).inc()

        task.add_done_callback(_done)
        return flight

    async def _pull(self, partition: str, target: int) -> int:
        metrics.SYNC_PULLS.labels(partition).inc()
        with timed(metrics.SYNC_SECONDS.labels(partition)):
            async with self.cache.lock(partition):
                count = await catch_up_locked(self.journal, self.cache, partition, target)
                applied = self.cache.applied(partition)[0]
        tail = self.tails.get(partition)
        if tail is not None:
            tail.skip_to(applied)
        metrics.SYNC_ENTRIES.labels(partition).inc(count)
        log.debug("synced %s to %d (%d entries)", partition, applied, count)
        return count
