"""Follow one journal partition: the push stream, and pull-before-read syncs.

Push: a subscription from applied + 1 (slowed by ``apply_delay_ms`` to
simulate storage lag) feeds a bounded buffer; the apply loop drains whatever
is buffered (up to a bound) into one apply, so batches grow with the load.

Pull: :meth:`PartitionFollower.sync` brings the partition to a target offset
with ``PullWAL`` -- never delayed -- and applies the entries at once.
Concurrent syncs coalesce: one pull is in flight per partition and callers
whose target it covers wait on it. After a pull the subscription is told to
skip what was pulled; entries that still arrive twice are dropped by the
applier's offset check, under the engine's lock, so nothing applies twice.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vecraft.services.storage_node import metrics
from vecraft.services.storage_node.journal_replay.applier import JournalGap
from vecraft.services.storage_node.journal_replay.engine import ApplyEngine
from vecraft.shared.common.errors import InvalidRequest, VecraftError
from vecraft.shared.replica import PartitionHalted, PartitionStaleness, monotonic_ms
from vecraft.shared.replica.history import STORAGE_ACTION, diverged
from vecraft.shared.rpc.v1 import journal_pb2

if TYPE_CHECKING:
    from vecraft.services.journal_service.client import JournalClient, Subscription

log = logging.getLogger(__name__)

# Entries buffered from the push stream before the reader waits for the applier.
BUFFER_ENTRIES = 4096
# Entries applied per push batch, at most.
PUSH_BATCH_ENTRIES = 2048
# Entries fetched per PullWAL window; bounds memory during a long catch-up.
PULL_WINDOW = 2048
_RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0)
# Head polls between two checks that the journal still holds the applied entry (a
# journal restarted with another history is invisible to a stream that reconnects).
HISTORY_CHECK_EVERY = 10


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    applied_offset: int
    applied_hlc: int
    pulled: bool
    entries_pulled: int


class PartitionFollower:
    """Keeps one partition of this replica applied: push loop + coalesced pull syncs."""

    def __init__(self, partition: str, engine: ApplyEngine, journal: JournalClient, *, replica_id: str,
                 shard: int, apply_delay_ms: int = 0) -> None:
        self.partition = partition
        self.engine = engine
        self.journal = journal
        self.replica_id = replica_id
        self.shard = shard
        self.apply_delay_ms = apply_delay_ms
        self.head_offset = 0
        self.head_hlc = 0
        self.freshness = PartitionStaleness(partition)
        self.freshness.note_applied(*engine.applied(partition))
        self._sub: Subscription | None = None
        self._buffer: collections.deque[journal_pb2.JournalEntry] = collections.deque()
        self._has_entries = asyncio.Event()
        self._has_space = asyncio.Event()
        self._has_space.set()
        self._applying_hlc = 0
        self._pull: tuple[int, asyncio.Task[int]] | None = None

    # ---- state ------------------------------------------------------------------------
    @property
    def applied_offset(self) -> int:
        return self.engine.applied(self.partition)[0]

    def note_head(self, offset: int, hlc: int, heard_ms: float | None = None) -> None:
        """The journal's head was ``offset``; ``heard_ms``: monotonic time the head read was sent."""
        self.freshness.note_head(offset, hlc, heard_ms)
        if offset > self.head_offset:
            self.head_offset, self.head_hlc = offset, hlc
        metrics.HEAD_OFFSET.labels(self.partition).set(self.head_offset)
        metrics.REPLAY_LAG.labels(self.partition).set(max(0, self.head_offset - self.applied_offset))

    def head(self) -> int:
        sub = self._sub
        if sub is not None and sub.head_offset > self.head_offset:
            self.note_head(sub.head_offset, sub.head_hlc)
        return self.head_offset

    def staleness_ms(self) -> int:
        """Upper bound of the staleness of the applied state (:class:`PartitionStaleness`).

        Time since a head read last confirmed the node had the head, on the
        monotonic clock; more when a missing entry is known to be older. A
        silent journal makes it grow; it is never reset to 0 by an old view.
        """
        self._refresh_applied()
        self.head()
        staleness = self.freshness.staleness_ms(
            pending_hlc=self._sub.oldest_pending_hlc() if self._sub is not None else 0)
        metrics.STALENESS.labels(self.partition).set(staleness)
        return staleness

    def _refresh_applied(self) -> None:
        self.freshness.note_applied(*self.engine.applied(self.partition))

    async def verify_history(self) -> None:
        """Halt the partition (cause ``diverged``) if the journal lost or re-used what this node applied.

        Never continues past such a journal: the node refuses, says so and
        what an operator must do (rebuild it from an empty data dir).

        Raises:
            PartitionHalted: the histories differ (or the partition was halted before).
        """
        self.engine.halts.check(self.partition)
        applied, applied_hlc = self.engine.applied(self.partition)
        reason = await diverged(self.journal, self.partition, applied, applied_hlc)
        if reason is not None:
            raise self.engine.halts.halt(self.partition, "diverged", reason, action=STORAGE_ACTION)

    async def poll_head(self) -> None:
        """Read the journal head (a timed report for the staleness bound)."""
        heard = monotonic_ms()
        head, hlc = await self.journal.get_offset(self.partition)
        self.note_head(head, hlc, heard)

    # ---- push -------------------------------------------------------------------------
    async def run(self) -> None:
        """Follow the push stream until cancelled; resubscribes after a stream failure.

        A halted partition (:class:`PartitionHalts`) is never retried: the
        follower stops reading and parks until shutdown, and reads answer 503.
        """
        attempt = 0
        while not self.engine.halts.halted(self.partition):
            try:
                await self._follow()
                attempt = 0
            except asyncio.CancelledError:
                raise
            except PartitionHalted:
                break
            except Exception:
                delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
                attempt += 1
                log.warning("push stream failed; resubscribing", exc_info=True,
                            extra={"partition": self.partition, "retry_in_s": delay})
                await asyncio.sleep(delay)
        await asyncio.Event().wait()  # halted: parked until shutdown

    async def _follow(self) -> None:
        await self.verify_history()
        sub = self.journal.subscribe(self.partition, self.applied_offset + 1, replica_id=self.replica_id,
                                     shards=[self.shard], role="replica", delay_ms=self.apply_delay_ms)
        self._sub = sub
        self._buffer.clear()
        reader = asyncio.create_task(self._read(sub), name=f"storage:read:{self.partition}")
        try:
            while True:
                await self._has_entries.wait()
                if reader.done() and not self._buffer:
                    reader.result()  # re-raise the stream's failure
                    return
                batch = self._take_batch()
                if not batch:
                    continue
                self._applying_hlc = batch[0].hlc
                try:
                    await self.engine.apply(self.partition, batch, path="push")
                except JournalGap as gap:
                    # Entries went missing between applied and the stream: pull them.
                    log.warning("gap in the push stream; pulling", extra={"partition": self.partition,
                                                                          "applied": gap.applied,
                                                                          "next": gap.got})
                    await self.sync(batch[-1].offset)
                finally:
                    self._applying_hlc = 0
                    self._refresh_applied()
                self.note_head(batch[-1].offset, batch[-1].hlc)
                self.staleness_ms()  # refreshes the gauge
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            self._sub = None
            await sub.close()

    async def _read(self, sub: Subscription) -> None:
        try:
            async for entry in sub:
                while len(self._buffer) >= BUFFER_ENTRIES:
                    self._has_space.clear()
                    await self._has_space.wait()
                self._buffer.append(entry)
                self.freshness.note_received(entry.offset, entry.hlc)
                self._has_entries.set()
        finally:
            self._has_entries.set()  # wake the apply loop to see the end

    def _take_batch(self) -> list[journal_pb2.JournalEntry]:
        applied = self.applied_offset
        batch: list[journal_pb2.JournalEntry] = []
        while self._buffer and len(batch) < PUSH_BATCH_ENTRIES:
            entry = self._buffer.popleft()
            if entry.offset > applied:
                batch.append(entry)
        if not self._buffer:
            self._has_entries.clear()
        self._has_space.set()
        return batch

    # ---- pull -------------------------------------------------------------------------
    async def sync(self, target: int | None) -> SyncOutcome:
        """Apply every entry up to ``target`` (None = the journal head as of now) by pulling.

        Returns at once when already there. Raises InvalidRequest when the
        target is beyond the journal's head, and the journal client's errors
        (Unavailable, ...) when the journal cannot be reached.
        """
        began = time.perf_counter()
        self.engine.halts.check(self.partition)
        if target is None:
            heard = monotonic_ms()
            target, hlc = await self.journal.get_offset(self.partition)
            self.note_head(target, hlc, heard)
        elif target > self.applied_offset and target > self.head():
            # Checked per request, before joining the shared pull: a pull to an
            # offset the journal does not have would fail every waiter on it.
            heard = monotonic_ms()
            head, hlc = await self.journal.get_offset(self.partition)
            self.note_head(head, hlc, heard)
            if target > head:
                raise InvalidRequest(f"min_required_offset {target} is beyond the head {head} of "
                                     f"{self.partition}", details={"partition": self.partition, "head": head,
                                                                   "min_required_offset": target})
        pulled = False
        entries = 0
        while self.applied_offset < target:
            inflight = self._pull
            if inflight is None or inflight[1].done():
                task = asyncio.create_task(self._pull_to(target), name=f"storage:pull:{self.partition}")
                self._pull = inflight = (target, task)
                # Never leave a failed pull's exception unretrieved.
                task.add_done_callback(lambda t: t.cancelled() or t.exception())
            # shield: a caller that gives up (deadline) must not cancel a pull others wait on.
            entries += await asyncio.shield(inflight[1])
            pulled = True
        self._refresh_applied()
        applied, applied_hlc = self.engine.applied(self.partition)
        metrics.SYNCS.labels(str(pulled).lower()).inc()
        metrics.SYNC_LATENCY.observe(time.perf_counter() - began)
        return SyncOutcome(applied, applied_hlc, pulled, entries)

    async def _pull_to(self, target: int) -> int:
        applied_entries = 0
        while self.applied_offset < target:
            start = self.applied_offset + 1
            entries = await self.journal.pull(self.partition, start, min(target, start + PULL_WINDOW - 1))
            if not entries:
                heard = monotonic_ms()
                head, hlc = await self.journal.get_offset(self.partition)
                self.note_head(head, hlc, heard)
                if head < target:
                    raise InvalidRequest(f"offset {target} of {self.partition} is beyond the journal head "
                                         f"{head}", details={"partition": self.partition, "head": head})
                await asyncio.sleep(0.01)  # the journal has it but did not send it yet
                continue
            applied_entries += await self.engine.apply(self.partition, entries, path="pull")
            self._refresh_applied()
            self.note_head(entries[-1].offset, entries[-1].hlc)
        if self._sub is not None:
            self._sub.skip_to(self.applied_offset)
        return applied_entries


class HeadWatch:
    """Reads the journal heads of the followed partitions every ``interval_s`` seconds.

    Each answer is a timed head report: once a follower reaches it, nothing
    committed before the read was sent is missing. When the journal stops
    answering, no report confirms anything and staleness keeps growing.
    """

    def __init__(self, journal: JournalClient, followers: Mapping[str, PartitionFollower], *,
                 interval_s: float = 0.1) -> None:
        self.journal = journal
        self.followers = followers
        self.interval_s = interval_s
        self.reachable = True
        self.polls = 0

    async def poll_once(self) -> None:
        partitions: Sequence[str] = list(self.followers)
        self.polls += 1
        heard = monotonic_ms()
        try:
            heads = await self.journal.get_offsets(partitions)
        except VecraftError as err:
            if self.reachable:
                log.warning("journal head poll failed", extra={"error": err.message})
            self.reachable = False
        else:
            self.reachable = True
            due = self.polls % HISTORY_CHECK_EVERY == 0
            for partition, (offset, hlc) in heads.items():
                follower = self.followers.get(partition)
                if follower is None:
                    continue
                follower.note_head(offset, hlc, heard)
                if not follower.engine.halts.halted(partition) and (due or offset < follower.applied_offset):
                    with contextlib.suppress(VecraftError):  # halted inside, or the journal went away
                        await follower.verify_history()
        for follower in self.followers.values():
            follower.staleness_ms()  # refreshes the gauge

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval_s)
