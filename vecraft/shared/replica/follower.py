"""Following one journal partition into a replica: the one implementation.

A :class:`PartitionFollower` keeps a :class:`ShardApplier` (the storage node's
durable engine, or the query processor's in-memory cache) current with one
journal partition:

- **push tail** (:meth:`PartitionFollower.run`): a subscription from
  applied + 1 (slowed by ``delay_ms``, the storage-lag test knob) feeds a
  bounded :class:`EntryQueue`; the reader stops reading while it is full, so a
  slow applier pushes back through gRPC flow control instead of growing memory;
  the apply loop takes whatever is queued (up to a batch) into one apply;
- **pull-before-read** (:meth:`PartitionFollower.sync`): pulls the missing
  entries with ``PullWAL`` -- never delayed -- and applies them at once.
  Concurrent syncs coalesce: while a pull to target T is in flight, a request
  that needs <= T waits on it; one that needs more waits, then starts the next
  pull to the highest target any waiter needs. A pull runs as its own task, so
  a waiter that gives up (deadline) does not cancel it for the others. A target
  beyond the journal head is refused for its own request only, before it joins
  a pull (``InvalidRequest`` naming the head);
- **deadlines**: every journal call ends within one. A sync on behalf of a
  request passes the request's remaining budget (``timeout_s``) to each call it
  makes; a shared pull runs to the latest deadline of the waiters it serves, so
  a journal that stops answering fails the pull (``DeadlineExceeded``) when the
  most patient waiter gives up, not a verb default later. Background calls
  (push tail, head watch, history checks, warm-up) carry the journal client's
  per-verb deadlines;
- **staleness**: the one conservative measure (:class:`PartitionStaleness`);
- **history check**: before every (re)subscribe, the journal must still hold
  the entry at the applied offset with the HLC applied (:mod:`.history`); every
  pull re-reads that entry with the new ones and checks it the same way, and
  every run of entries applied (pulled or pushed) must have HLCs rising above
  the applied one. The push stream's own reconnects are not seen here: see
  docs/consistency.md for what that leaves uncovered;
- **halts**: an apply failure or a diverged journal halts the partition
  (:class:`PartitionHalts`): the follower parks and readers get 503.

One asyncio lock per follower serializes the two feeders; the applier is also
idempotent by offset, and a gap is filled from the journal, never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from vecraft.shared.common.errors import (
    DeadlineExceeded,
    HistoryMismatch,
    InvalidRequest,
    Trimmed,
    Unavailable,
    VecraftError,
)
from vecraft.shared.replica.halt import PartitionHalted, PartitionHalts
from vecraft.shared.replica.history import diverged, mismatch, out_of_order
from vecraft.shared.replica.queue import QUEUE_MAX_BYTES, QUEUE_MAX_ENTRIES, EntryQueue
from vecraft.shared.replica.staleness import PartitionStaleness, monotonic_ms
from vecraft.shared.rpc.v1 import journal_pb2

log = logging.getLogger(__name__)

#: Entries fetched per PullWAL window; bounds memory during a long catch-up.
PULL_WINDOW = 2048
#: Entries applied per push batch, at most.
PUSH_BATCH_ENTRIES = 512
#: Head polls between two history checks (a journal restarted with another
#: history is otherwise invisible to a stream that reconnects by itself).
HISTORY_CHECK_EVERY = 10
_RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0)


class JournalGap(Exception):
    """The first new entry handed to an applier is past applied offset + 1 (nothing was applied)."""

    def __init__(self, partition: str, applied: int, got: int) -> None:
        super().__init__(f"{partition}: applied {applied}, next entry is {got}")
        self.partition, self.applied, self.got = partition, applied, got


class ShardApplier(Protocol):
    """A replica's state, fed runs of consecutive entries of its partitions.

    ``halts`` records the partitions it stopped applying. Calls for one
    partition never overlap (the partition's follower serializes them).
    """

    halts: PartitionHalts

    def applied(self, partition: str) -> tuple[int, int]:
        """(offset, hlc) of the last entry of ``partition`` applied; (0, 0) before the first."""
        ...

    async def apply(self, partition: str, entries: Sequence[journal_pb2.JournalEntry], *, path: str) -> int:
        """Apply the entries past the applied offset, in offset order; returns how many were new.

        Raises:
            JournalGap: the first new entry is past applied + 1 (nothing applied).
            PartitionHalted: the partition is halted, or this apply failed (it is
                halted then, the entries before the failing one stay applied).
        """
        ...


class Subscription(Protocol):
    """A push stream of one partition (``JournalClient.subscribe``): gapless, offset order."""

    head_offset: int
    head_hlc: int

    def __aiter__(self) -> AsyncIterator[journal_pb2.JournalEntry]: ...

    def oldest_pending_hlc(self) -> int: ...

    def skip_to(self, offset: int, hlc: int) -> None: ...

    async def close(self) -> None: ...


class JournalSource(Protocol):
    """The journal verbs a follower uses; errors are VecraftErrors (Unavailable when down).

    Every call ends within a deadline: ``timeout_s`` when the follower passes one
    (a request's remaining budget; it is then the only keyword it passes), else the
    source's own default per verb. A call that misses it raises ``DeadlineExceeded``.
    """

    async def get_offset(self, partition: str, *, timeout_s: float | None = None) -> tuple[int, int]: ...

    async def get_offsets(self, partitions: Sequence[str] = ()) -> dict[str, tuple[int, int]]: ...

    async def pull(self, partition: str, from_offset: int, to_offset: int = 0, *,
                   timeout_s: float | None = None) -> list[journal_pb2.JournalEntry]: ...

    def subscribe(self, partition: str, from_offset: int, *, replica_id: str, shards: Sequence[int] = (),
                  role: str = "replica", delay_ms: int = 0, after_hlc: int = 0) -> Subscription: ...


class FollowerObserver:
    """Metric hooks of a follower; the default does nothing. Services override what they count."""

    def applied(self, partition: str, offset: int, entries: int, path: str) -> None: ...

    def head(self, partition: str, offset: int) -> None: ...

    def staleness(self, partition: str, ms: int) -> None: ...

    def sync_waiter(self, partition: str) -> None: ...

    def sync_pull(self, partition: str, seconds: float, entries: int) -> None: ...

    def sync_failed(self, partition: str, error: BaseException) -> None: ...

    def sync_done(self, partition: str, pulled: bool, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class SyncOutcome:
    """``pulled``: this call pulled or waited on a pull; ``entries_pulled``: entries its pulls applied."""

    applied_offset: int
    applied_hlc: int
    pulled: bool
    entries_pulled: int


class PartitionFollower:
    """Keeps one partition of a replica applied: push tail, coalesced pulls, staleness, history checks.

    Contract: :meth:`run` returns only when cancelled (a halted partition parks
    it); :meth:`sync` may be called concurrently and cancelled by any caller.
    """

    def __init__(self, partition: str, applier: ShardApplier, journal: JournalSource, *, replica_id: str,
                 shards: Sequence[int], role: str, delay_ms: int = 0, action: str = "",
                 queue_entries: int = QUEUE_MAX_ENTRIES, queue_bytes: int = QUEUE_MAX_BYTES,
                 batch_entries: int = PUSH_BATCH_ENTRIES, observer: FollowerObserver | None = None) -> None:
        self.partition = partition
        self.applier = applier
        self.journal = journal
        self.replica_id = replica_id
        self.shards = list(shards)
        self.role = role
        self.delay_ms = delay_ms
        self.action = action  # what an operator (or the service) does about a diverged journal
        self.batch_entries = batch_entries
        self.observer = observer or FollowerObserver()
        self.freshness = PartitionStaleness(partition)
        self.freshness.note_applied(*applier.applied(partition))
        self.queue = EntryQueue(max_entries=queue_entries, max_bytes=queue_bytes)
        self.subscription: Subscription | None = None
        self._lock = asyncio.Lock()
        self._flight: tuple[int, asyncio.Task[int]] | None = None
        # token -> (target, deadline in loop time or None) of every sync waiting for pulls
        self._wanted: dict[int, tuple[int, float | None]] = {}
        self._tokens = itertools.count()

    # ---- state -------------------------------------------------------------------------
    @property
    def halts(self) -> PartitionHalts:
        return self.applier.halts

    @property
    def applied_offset(self) -> int:
        return self.applier.applied(self.partition)[0]

    def applied(self) -> tuple[int, int]:
        return self.applier.applied(self.partition)

    def head(self) -> int:
        """The highest journal head heard of (stream heartbeats included)."""
        sub = self.subscription
        if sub is not None and sub.head_offset > self.freshness.head_offset:
            self.note_head(sub.head_offset, sub.head_hlc)
        return self.freshness.head_offset

    def note_head(self, offset: int, hlc: int, heard_ms: float | None = None) -> None:
        """The journal's head was ``offset``; ``heard_ms``: monotonic time the head read was sent."""
        self.freshness.note_head(offset, hlc, heard_ms)
        self.observer.head(self.partition, self.freshness.head_offset)

    def oldest_pending_hlc(self) -> int:
        """HLC of the oldest entry the stream holds back for the apply delay (0 if none)."""
        return self.subscription.oldest_pending_hlc() if self.subscription is not None else 0

    def staleness_ms(self) -> int:
        """Upper bound of the staleness of the applied state (:class:`PartitionStaleness`)."""
        self._note_applied()
        self.head()
        ms = self.freshness.staleness_ms(pending_hlc=self.oldest_pending_hlc())
        self.observer.staleness(self.partition, ms)
        return ms

    def _note_applied(self) -> None:
        self.freshness.note_applied(*self.applier.applied(self.partition))

    async def journal_head(self, *, timeout_s: float | None = None) -> int:
        """The journal's head of the partition, read now (a timed report for the staleness bound).

        ``timeout_s``: the caller's remaining budget (None: the journal's default deadline).

        Raises:
            DeadlineExceeded: the journal did not answer in time.
            Unavailable: the journal cannot be reached.
        """
        heard = monotonic_ms()
        if timeout_s is None:
            offset, hlc = await self.journal.get_offset(self.partition)
        else:
            offset, hlc = await self.journal.get_offset(self.partition, timeout_s=max(timeout_s, 0.0))
        self.note_head(offset, hlc, heard)
        return offset

    async def verify_history(self) -> None:
        """Halt the partition (``diverged``) if the journal lost or re-used what was applied.

        Raises:
            PartitionHalted: the histories differ (or the partition was halted before).
        """
        self.halts.check(self.partition)
        applied, applied_hlc = self.applier.applied(self.partition)
        try:
            reason = await diverged(self.journal, self.partition, applied, applied_hlc)
        except Trimmed as err:
            raise self._trimmed(err) from err
        if reason is not None:
            raise self.halts.halt(self.partition, "diverged", reason, action=self.action)

    # ---- pull-before-read ----------------------------------------------------------------
    async def sync(self, target: int | None, *, timeout_s: float | None = None) -> SyncOutcome:
        """Apply every entry up to ``target`` (None = the journal head as of now) by pulling.

        Args:
            target: the offset to reach; None = the journal head read now.
            timeout_s: the caller's remaining budget: every journal call made for it
                ends within it (None: the journal's per-verb deadlines).

        Raises:
            InvalidRequest: ``target`` is beyond the journal head (this request only).
            PartitionHalted: the partition is halted (or halts during the pull).
            DeadlineExceeded: the journal did not answer within the budget.
            Unavailable: the journal cannot be reached.
        """
        began = time.perf_counter()
        self.halts.check(self.partition)
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s

        def left() -> float | None:
            return None if deadline is None else deadline - loop.time()

        if target is None:
            target = await self.journal_head(timeout_s=left())
            if target < self.applied_offset:
                raise self._lost_entries(target)
        elif target > self.applied_offset and target > self.head():
            await self._check_target(target, left())
        pulled = False
        entries = 0
        if self.applied_offset < target:
            self.observer.sync_waiter(self.partition)
            token = next(self._tokens)
            self._wanted[token] = (target, deadline)
            try:
                while self.applied_offset < target:
                    flight = self._flight
                    # A finished flight stays registered until its done callback runs; awaiting
                    # it again would spin without yielding. Start the next pull instead.
                    if flight is None or flight[1].done():
                        flight = self._start(*self._next_pull())
                    try:
                        # shield: a caller that gives up must not cancel a pull others wait on.
                        entries += await asyncio.shield(flight[1])
                    except DeadlineExceeded:
                        remaining = left()
                        if remaining is not None and remaining <= 0:
                            raise
                        # The pull ran out of the budget of waiters with less time than this
                        # one (it joined later): the next pull runs to this one's deadline.
                    pulled = True
            finally:
                del self._wanted[token]
        applied, applied_hlc = self.applier.applied(self.partition)
        self.observer.sync_done(self.partition, pulled, time.perf_counter() - began)
        return SyncOutcome(applied, applied_hlc, pulled, entries)

    def _next_pull(self) -> tuple[int, float | None]:
        """Target and deadline of the next pull: the highest target and the latest deadline waiting."""
        targets, deadlines = zip(*self._wanted.values(), strict=True)
        return max(targets), None if None in deadlines else max(d for d in deadlines if d is not None)

    async def _check_target(self, target: int, timeout_s: float | None) -> None:
        """Refuse a target the journal has not reached, before it joins (and fails) a shared pull."""
        head = await self.journal_head(timeout_s=timeout_s)
        if target > head:
            raise InvalidRequest(f"min_required_offset {target} is beyond the head {head} of "
                                 f"{self.partition}", details={"partition": self.partition, "head": head,
                                          "min_required_offset": target})

    def _start(self, target: int, deadline: float | None) -> tuple[int, asyncio.Task[int]]:
        task = asyncio.create_task(self._pull(target, deadline), name=f"sync:{self.partition}:{target}")
        flight = (target, task)
        self._flight = flight

        def _done(t: asyncio.Task[int]) -> None:
            if self._flight is flight:
                self._flight = None
            if not t.cancelled() and t.exception() is not None:
                # Retrieved here so a pull whose waiters all gave up is not "never retrieved".
                self.observer.sync_failed(self.partition, t.exception())  # type: ignore[arg-type]

        task.add_done_callback(_done)
        return flight

    async def _pull(self, target: int, deadline: float | None) -> int:
        began = time.perf_counter()
        async with self._lock:
            count = await self._pull_locked(target, deadline)
        self.observer.sync_pull(self.partition, time.perf_counter() - began, count)
        return count

    async def _pull_locked(self, target: int, deadline: float | None = None) -> int:
        """Pull and apply up to ``target`` with journal calls ending by ``deadline`` (loop time,
        None: the journal's per-verb deadlines); the caller holds the lock.

        Each pull asks for the applied entry too: the journal's copy of it must be the entry
        applied (same HLC), and the new entries' HLCs must rise above it, else the journal's
        history changed since it was last checked and the partition halts (``diverged``) before
        anything of the other history is applied.
        """
        loop = asyncio.get_running_loop()
        count = 0
        while self.applied_offset < target:
            applied, applied_hlc = self.applier.applied(self.partition)
            end = min(target, applied + PULL_WINDOW)
            left = None if deadline is None else deadline - loop.time()
            try:
                if left is None:
                    entries = await self.journal.pull(self.partition, max(applied, 1), end)
                else:
                    entries = await self.journal.pull(self.partition, max(applied, 1), end,
                                                      timeout_s=max(left, 0.0))
            except Trimmed as err:
                raise self._trimmed(err) from err
            if applied and entries:
                if (reason := mismatch(self.partition, applied, applied_hlc, entries[0])) is not None:
                    raise self.halts.halt(self.partition, "diverged", reason, action=self.action)
                entries = entries[1:]
            if (reason := out_of_order(self.partition, applied, applied_hlc, entries)) is not None:
                raise self.halts.halt(self.partition, "diverged", reason, action=self.action)
            if not entries:
                head = await self.journal_head(
                    timeout_s=None if deadline is None else deadline - loop.time())
                if head < applied:
                    raise self._lost_entries(head)
                if head < target:
                    raise Unavailable(f"the journal holds {head} entries of {self.partition}, "
                                      f"fewer than offset {target}", details={"partition": self.partition})
                await asyncio.sleep(0.01)  # the journal has it but did not send it yet
                continue
            try:
                count += await self.applier.apply(self.partition, entries, path="pull")
            except JournalGap as gap:
                # PullWAL is gapless; a gap means a broken reply, not a retry case.
                raise Unavailable(f"journal pull of {self.partition} skipped offsets "
                                  f"before {gap.got}") from gap
            self._after_apply(count, "pull")
        if self.subscription is not None:
            self.subscription.skip_to(*self.applied())
        return count

    def _trimmed(self, err: Trimmed) -> PartitionHalted:
        """Halt the partition: the journal no longer holds the entries this replica needs next."""
        return self.halts.halt(
            self.partition, "trimmed", f"{err.message} (this replica applied {self.applied_offset})",
            action=self.action)

    def _lost_entries(self, head: int) -> PartitionHalted:
        """Halt the partition: the journal's head is below the applied offset."""
        return self.halts.halt(
            self.partition, "diverged", f"the journal head of {self.partition} is {head}, below offset "
            f"{self.applied_offset} that this replica already applied: the journal lost entries",
            action=self.action)

    def _after_apply(self, entries: int, path: str) -> None:
        self._note_applied()
        self.observer.applied(self.partition, self.applied_offset, entries, path)

    # ---- push tail ---------------------------------------------------------------------
    async def run(self) -> None:
        """Follow the push stream until cancelled; resubscribe after a stream failure.

        A halted partition is never retried: the follower stops reading and
        parks until shutdown; readers get 503 with the reason.
        """
        attempt = 0
        try:
            while not self.halts.halted(self.partition):
                try:
                    await self.verify_history()
                    await self._stream()
                    attempt = 0
                except PartitionHalted:
                    break
                except Trimmed as err:
                    self._trimmed(err)
                    break
                except VecraftError as err:
                    delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
                    attempt += 1
                    log.warning("push stream of %s failed; resubscribing: %s", self.partition, err.message,
                                extra={"partition": self.partition, "retry_in_s": delay})
                    await asyncio.sleep(delay)
            await asyncio.Event().wait()  # halted: parked until shutdown
        finally:
            await self._close()

    async def _stream(self) -> None:
        await self._close()
        applied, applied_hlc = self.applied()
        # The journal checks applied_hlc at this subscribe and every resume of the stream: one
        # whose history differs from what was applied or received refuses it (HistoryMismatch).
        sub = self.journal.subscribe(self.partition, applied + 1, replica_id=self.replica_id,
                                     shards=self.shards, role=self.role, delay_ms=self.delay_ms,
                                     after_hlc=applied_hlc)
        self.subscription = sub
        reader = asyncio.create_task(self._read(sub), name=f"follow-read:{self.partition}")
        applier = asyncio.create_task(self._apply_loop(), name=f"follow-apply:{self.partition}")
        try:
            await asyncio.wait({reader, applier}, return_when=asyncio.FIRST_COMPLETED)
            if applier.done():
                applier.result()  # re-raise (PartitionHalted, or a bug)
            # The stream ended or failed: apply what was read, then report how it ended
            # (nothing more once the partition halted).
            while len(self.queue) and not applier.done() and not self.halts.halted(self.partition):
                await asyncio.sleep(0.005)
            if applier.done():
                applier.result()
            reader.result()
        finally:
            for task in (reader, applier):
                task.cancel()
            await asyncio.gather(reader, applier, return_exceptions=True)
            await self._close()

    async def _read(self, sub: Subscription) -> None:
        try:
            async for entry in sub:
                self.freshness.note_received(entry.offset, entry.hlc)
                self.note_head(sub.head_offset, sub.head_hlc)
                await self.queue.put(entry)
        except HistoryMismatch as err:
            raise self.halts.halt(self.partition, "diverged", err.message, action=self.action) from err

    async def _apply_loop(self) -> None:
        while True:
            batch = await self.queue.take(self.batch_entries)
            async with self._lock:
                applied, applied_hlc = self.applier.applied(self.partition)
                batch = [e for e in batch if e.offset > applied]
                if not batch:
                    continue
                if (reason := out_of_order(self.partition, applied, applied_hlc, batch)) is not None:
                    raise self.halts.halt(self.partition, "diverged", reason, action=self.action)
                try:
                    applied = await self.applier.apply(self.partition, batch, path="push")
                except JournalGap:
                    # Only after a skip the stream honoured late: fill from the journal.
                    applied = await self._pull_locked(batch[-1].offset)
                self._after_apply(applied, "push")

    async def _close(self) -> None:
        sub, self.subscription = self.subscription, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.close()


class HeadWatch:
    """Reads the journal heads of a replica's partitions every ``interval_s`` seconds.

    Each answer is a timed head report: once a follower reaches it, nothing
    committed before the read was sent is missing. When the journal stops
    answering, nothing confirms anything and staleness keeps growing. Every
    ``HISTORY_CHECK_EVERY`` polls, at once when a head below the applied
    offset is heard, and on the first poll that answers after failed ones (the
    journal may have come back with another history), the followers check the
    journal's history.
    """

    def __init__(self, journal: JournalSource, followers: Mapping[str, PartitionFollower], *,
                 interval_s: float = 0.1) -> None:
        self.journal = journal
        self.followers = followers
        self.interval_s = interval_s
        self.reachable = True
        self.polls = 0

    async def poll_once(self) -> None:
        self.polls += 1
        heard = monotonic_ms()
        try:
            heads = await self.journal.get_offsets(list(self.followers))
        except VecraftError as err:
            if self.reachable:
                log.warning("journal head poll failed: %s", err.message)
            self.reachable = False
        else:
            recovered = not self.reachable
            if recovered:
                log.info("journal head poll recovered")
            self.reachable = True
            due = recovered or self.polls % HISTORY_CHECK_EVERY == 0
            for partition, (offset, hlc) in heads.items():
                follower = self.followers.get(partition)
                if follower is None:
                    continue
                follower.note_head(offset, hlc, heard)
                if not follower.halts.halted(partition) and (due or offset < follower.applied_offset):
                    with contextlib.suppress(VecraftError):  # halted inside, or the journal went away
                        await follower.verify_history()
        for follower in self.followers.values():
            follower.staleness_ms()  # refreshes the gauges

    async def run(self) -> None:
        while True:
            await self.poll_once()
            await asyncio.sleep(self.interval_s)
