"""The JetStream journal backend: one NATS JetStream stream per partition, replicated (R3 by default).

Offsets are stream sequences. Each group commit is published as one
*atomic batch* (NATS 2.12+) whose first message carries
``Nats-Expected-Last-Sequence = head``: the server stores the whole batch right
after the entry this writer knows as the head, or nothing. So offsets stay
gapless from 1, and a second journal process writing the same stream can
never interleave with this one — a mismatch makes this writer re-read the
stream, learn the other entries (and their HLCs and request ids) and stamp its
batch again. The batch is durable once the publish ack arrives (a quorum of
the stream's replicas has it).

An entry is one message: the payload as body; HLC, request id and shards in
headers. On start each stream is read whole (batched direct gets) to rebuild
the in-memory index (HLC and cumulative bytes per offset) and the request-id
index, and the clock is moved past the newest stored HLC, so a journal that
moves to another host keeps every invariant without its local files.

Request-id idempotency uses that rebuilt in-memory index, as the local backend
does, rather than a KV bucket: the id lives in the entry itself, so the index
can never disagree with the log, and no second replicated write per append is
needed. JetStream's own ``Nats-Msg-Id`` window (minutes) would not be enough
for "never appended twice". The index is the local backend's
:class:`~.request_ids.RequestIdIndex`, bounded by the same retention window
and rebuilt on start from the entries inside it only.

The writer loop runs as the shared core's writer task (:mod:`.indexed`): an
error it does not retry (anything but JetStream not answering or refusing a
batch) fails the partition visibly, as on the local backend.

A journal process that does not write (or writes less) keeps its index
current from the stream: :meth:`JetStreamPartitionLog.refresh` (one stream-info
call, then reading whatever is new), used by reads past the indexed head, by
idle waits and by :meth:`JetStreamJournalBackend.lookup_latest`.

A publish whose answer is lost (leader change, a server killed) has an unknown
outcome: the writer reads the stream's tail and finds its batch by its
attempt id header, or publishes the same stamped entries again with the
same expected sequence — at most one of the attempts can be stored.

Fenced writing (partition ownership, ``fenced=True``; run by
:mod:`vecraft.services.journal_service.ownership.leased`): the process writes
a partition only under a :class:`Holding` of the partition's lease (its
fencing token is the *epoch*), which it first fences into the stream with an
**epoch marker** — an entry with an empty payload and the epoch and holder in
headers (:meth:`JetStreamPartitionLog.take_over`). A batch is stamped only
while the last marker the index holds is the writer's own (and its lease has
not run out on this process's monotonic clock), and is published with the
expected last sequence it was stamped against. So once a newer holding's
marker is stored, no publish of an older holding can be stored after it: it
either expects a sequence before the marker (refused by JetStream) or was
stamped after indexing the marker (refused here). Epochs
never decrease along the stream, whatever the leases did.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from nats.aio.client import Client
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import NotFoundError

from vecraft.services.journal_service import metrics
from vecraft.services.journal_service.wal import Appended, JournalCorruption, LogWrite, Position, TrimResult
from vecraft.services.journal_service.wal.indexed import (
    IndexedJournalBackend,
    IndexedPartitionLog,
    PendingAppend,
)
from vecraft.services.journal_service.wal.jetstream_io import (
    MAX_BATCH_MESSAGES,
    TRANSIENT,
    PublishFailed,
    Stored,
    StreamIO,
    WrongLastSequence,
    connect,
    entry_headers,
)
from vecraft.services.journal_service.wal.records import OVERHEAD
from vecraft.services.journal_service.wal.request_ids import (
    DEFAULT_RETENTION,
    RequestIdIndex,
    RequestIdRetention,
)
from vecraft.shared.common.errors import ClockSkew, FencedOut, NotOwner, PayloadTooLarge, Unavailable
from vecraft.shared.hlc import HybridLogicalClock, wall_clock_ms
from vecraft.shared.rpc.v1 import journal_pb2

log = logging.getLogger(__name__)

#: Bytes of one atomic batch beyond its first entry (the servers' max_payload bounds each entry).
MAX_BATCH_BYTES = 8 << 20
#: Room left for an entry's headers below the server's max_payload.
HEADER_ROOM = 1024
#: How long a batch is retried (leader elections take seconds) before its writers get UNAVAILABLE;
#: shorter while closing, so a shutdown with JetStream gone does not hang.
RETRY_WINDOW_S = 30.0
CLOSING_WINDOW_S = 3.0
#: How often an idle :meth:`JetStreamPartitionLog.wait_for` may ask the stream for entries written elsewhere.
FOLLOW_INTERVAL_S = 0.5
#: Attempt ids of entries indexed by a catch-up that are remembered (batches, not entries).
SEEN_ATTEMPTS = 4096
# (offset, hlc, write, epoch, owner) of a stamped batch (epoch 0 / owner "": see entry_headers).
_Stamped = list[tuple[int, int, LogWrite, int, str]]


@dataclass(frozen=True, slots=True)
class Holding:
    """One holding of a partition's ownership lease: its fencing token (the epoch) and its holder."""

    epoch: int
    holder: str


@dataclass(frozen=True, slots=True)
class _Marker(LogWrite):
    """The epoch marker of ``holding``: an entry with an empty payload (which no client can append)."""

    holding: Holding = Holding(0, "")


def entry_size(request_id: str, shards: Sequence[int], payload: bytes) -> int:
    """Bytes counted for an entry: as for a local record, so lag in bytes means the same on both."""
    return OVERHEAD + len(request_id.encode()) + 4 * len(shards) + len(payload)


class JetStreamPartitionLog(IndexedPartitionLog):
    """One partition = the stream ``stream`` bound to ``subject``."""

    def __init__(self, name: str, stream: str, subject: str, *, io: StreamIO, clock: HybridLogicalClock,
                 request_ids: RequestIdIndex, inflight: dict[str, asyncio.Future[Appended]],
                 max_entry_bytes: int, fenced: bool = False) -> None:
        super().__init__(name, request_ids=request_ids, inflight=inflight)
        #: Writes only under a holding fenced into the stream (see the module doc); False: always.
        self.fenced = fenced
        self._holding: Holding | None = None  # the holding this process writes under
        self._writable_until = 0.0  # monotonic; the holding's lease may have run out after it
        self._last_marker: Holding | None = None  # of the newest marker indexed
        self._last_marker_at = Position(name, 0, 0)
        self._max_epoch = 0  # largest epoch indexed
        #: Called (with the partition name) when the stream shows a newer holding than this one's.
        self.on_deposed: Callable[[str], None] | None = None
        self._rid_index = request_ids
        self._loading = False  # request ids go to the index as recovered ones (see load)
        self.stream = stream
        self.subject = subject
        self._io = io
        self._clock = clock
        self._max_entry_bytes = max_entry_bytes
        self._commit_metric = metrics.FSYNC_SECONDS.labels(name)
        # One catch-up at a time: the writer's (after a refused batch) and the readers' (refresh).
        self._catching_up = asyncio.Lock()
        # Attempt id -> sequence of its first entry, for entries a catch-up indexed (newest last): how
        # the writer recognises its own batch when a reader's refresh indexed it before its ack came.
        self._seen_attempts: OrderedDict[str, int] = OrderedDict()
        self._follow: asyncio.Task[tuple[int, int]] | None = None
        self._followed_at = -FOLLOW_INTERVAL_S

    # ---- lifecycle ---------------------------------------------------------------
    async def load(self) -> None:
        """Read the stream whole into the indexes (request ids as recovered ones: the backend calls
        ``recovery_done`` once every partition is read), then start the writer."""
        first, last = await self._io.last_seq(self.stream)
        if last and first != 1:
            kept = await self._io.trimmed_to(self.stream)
            if first > kept:
                raise Unavailable(f"stream {self.stream} starts at sequence {first}, but the journal trimmed "
                                  f"it only below {kept}: entries were removed outside the journal; refusing "
                                  f"to serve a log with a hole")
            self._base = first - 1
            metrics.FIRST_OFFSET.labels(self.name).set(first)
        self._loading = True
        try:
            await self._catch_up(last)
        finally:
            self._loading = False
        self._start_writer(self._write_loop())

    async def close(self) -> None:
        """Commit what is queued (within the retry window), then stop the writer."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        self._fail(self._queue, Unavailable(f"journal partition {self.name} is shutting down"))
        self._queue.clear()
        if self._follow is not None:
            await asyncio.gather(self._follow, return_exceptions=True)

    # ---- ownership (fenced writing) ----------------------------------------------
    @property
    def holding(self) -> Holding | None:
        """The holding this process writes under (granted by :meth:`take_over`), else None."""
        return self._holding

    @property
    def last_marker(self) -> Holding | None:
        """The holding of the newest epoch marker indexed (None: the stream holds none)."""
        return self._last_marker

    @property
    def writable(self) -> bool:
        """True while appends are stamped: always when not fenced; when fenced, while this process's
        holding is the newest marker indexed and its lease has not run out."""
        if not self.fenced:
            return True
        return (self._holding is not None and self._last_marker == self._holding
                and time.monotonic() < self._writable_until)

    async def take_over(self, holding: Holding, until: float) -> Position:
        """Write from now on under ``holding``, whose lease runs out at the monotonic time ``until``:
        fence the stream with its epoch marker first (unless the newest marker is already its own).

        The marker is published like any batch, against the head the index holds, so it lands
        after every entry stored before it, and the catch-up that a refused publish runs moves the
        clock past them (a new owner starts its HLC above the stream's last entry) and indexes
        their request ids (a retry of one is answered as a duplicate).

        Returns:
            The marker's position.

        Raises:
            FencedOut: the stream already holds an epoch >= ``holding.epoch`` (a newer holding
                wrote, or the lease store's tokens went backwards).
            NotOwner: the lease ran out (or was revoked) before the marker was stored.
            Unavailable: JetStream did not take the marker, or the partition is failed or closing.
        """
        if not self.fenced:
            raise RuntimeError(f"partition {self.name} is not fenced: it has no owners")
        self._holding, self._writable_until = holding, until
        await self.refresh()  # stamp against the stream's tail: the publish then rarely needs a retry
        if self._last_marker == holding:
            return self._last_marker_at
        return (await self._enqueue(_Marker("", b"", holding=holding))).position

    def extend(self, holding: Holding, until: float) -> None:
        """``holding``'s lease was renewed: it now runs out at the monotonic time ``until``."""
        if self._holding == holding:
            self._writable_until = until

    def revoke(self) -> None:
        """Stop writing (the holding was lost, released or deposed): queued and later appends are
        answered NotOwner. What is being published goes on (its outcome is decided by the stream)."""
        self._holding = None
        self._writable_until = 0.0
        self._wake.set()

    def _holds(self) -> bool:
        return self._holding is not None and time.monotonic() < self._writable_until

    def _may_write(self, write: LogWrite) -> tuple[int, str]:
        """``(epoch, owner)`` headers to stamp ``write`` with now.

        Raises:
            NotOwner: fenced, and this process does not write the partition now.
            FencedOut: ``write`` is this holding's marker and the stream holds an epoch as new.
            _Known: ``write`` is a marker already stored (found by a catch-up).
        """
        if not self.fenced:
            return 0, ""
        holding = self._holding
        marker = isinstance(write, _Marker)
        if holding is not None and not marker and self._newer_holding_indexed(holding):
            self._deposed(holding)
            holding = None
        if holding is None or time.monotonic() >= self._writable_until or (
                isinstance(write, _Marker) and write.holding != holding):
            raise NotOwner(f"this journal instance does not own partition {self.name} now",
                           details={"partition": self.name})
        if marker:
            if self._last_marker == holding:
                raise _Known(self._last_marker_at)
            if self._max_epoch >= holding.epoch:
                raise FencedOut(f"partition {self.name}: the stream already holds epoch {self._max_epoch}, "
                                f"not below this holding's fencing token {holding.epoch}",
                                details={"partition": self.name, "stream_epoch": self._max_epoch,
                                         "fencing_token": holding.epoch})
            return holding.epoch, holding.holder
        if self._last_marker != holding:
            raise NotOwner(f"this journal instance is still taking partition {self.name} over",
                           details={"partition": self.name})
        return holding.epoch, ""

    def _newer_holding_indexed(self, holding: Holding) -> bool:
        marker = self._last_marker
        return self._max_epoch > holding.epoch or (
            marker is not None and marker != holding and marker.epoch >= holding.epoch)

    def _deposed(self, holding: Holding) -> None:
        marker = self._last_marker
        log.warning("partition %s: the stream holds a newer owner's marker (epoch %s by %s) than this "
                    "instance's (epoch %d); it stops writing the partition", self.name,
                    marker.epoch if marker else self._max_epoch, marker.holder if marker else "?",
                    holding.epoch, extra={"partition": self.name})
        self.revoke()
        if self.on_deposed is not None:
            self.on_deposed(self.name)

    # ---- PartitionLog ------------------------------------------------------------
    async def append(self, write: LogWrite) -> Appended:
        existing = await self._already_appended(write.request_id)
        if existing is not None:
            return existing
        if len(write.payload) > self._max_entry_bytes:
            raise PayloadTooLarge(f"entry of {len(write.payload)} bytes is larger than the NATS "
                                  f"servers accept ({self._max_entry_bytes} bytes)",
                                  details={"bytes": len(write.payload), "max": self._max_entry_bytes})
        if not self.writable:
            raise NotOwner(f"this journal instance does not own partition {self.name} now",
                           details={"partition": self.name})
        return await self._enqueue(write)

    async def read(self, from_offset: int, to_offset: int, *, max_entries: int,
                   max_bytes: int) -> list[journal_pb2.JournalEntry]:
        """As the interface says; a range reaching past the indexed head refreshes the index first
        (:meth:`refresh`), so entries another journal process wrote are read too."""
        if to_offset > self._last:
            await self.refresh()
        last = self._last_to_read(from_offset, to_offset, max_entries, max_bytes)
        if not last:
            return []
        got = await self._io.fetch(self.stream, from_offset, last - from_offset + 1)
        return [journal_pb2.JournalEntry(partition=self.name, offset=e.seq, hlc=e.hlc,
                                         request_id=e.request_id, payload=e.payload, shards=e.shards)
                for e in got]

    def size(self) -> tuple[int, int]:
        return (self._cum[-1] - self._cum_base if self._cum else 0), 1

    async def trim(self, before: int) -> TrimResult:
        """Purge the stream's entries below ``before`` (the head entry always stays)."""
        first = min(before, self._last)
        if first <= self.first_offset:
            return TrimResult(self.first_offset, 0, 0)
        try:
            await self._io.trim(self.stream, first)
        except (PublishFailed, *TRANSIENT) as exc:
            raise Unavailable(f"journal partition {self.name} cannot trim its stream {self.stream}: "
                              f"{type(exc).__name__}: {exc}", retry_after_ms=500,
                              details={"partition": self.name}) from exc
        entries = first - self.first_offset
        freed = self._cum[first - 2 - self._base] - self._cum_base
        self._forget_below(first)
        metrics.TRIMMED_ENTRIES.labels(self.name).inc(entries)
        metrics.TRIMMED_BYTES.labels(self.name).inc(freed)
        log.info("trimmed journal partition", extra={"partition": self.name, "first_offset": first,
                                                     "entries": entries, "bytes": freed})
        return TrimResult(first, entries, freed)

    async def wait_for(self, offset: int, timeout: float) -> bool:
        """As the interface says, and an entry another journal process wrote counts too.

        When ``offset`` is not indexed after ``timeout``, the stream is asked once (a
        :meth:`refresh` shared by every waiter of the partition, at most one per
        :data:`FOLLOW_INTERVAL_S`), so a Subscribe stream served by a process that does not
        write still follows the partition.
        """
        if await super().wait_for(offset, timeout):
            return True
        if time.monotonic() - self._followed_at >= FOLLOW_INTERVAL_S:
            if self._follow is None or self._follow.done():
                self._followed_at = time.monotonic()
                self._follow = asyncio.get_running_loop().create_task(
                    self.refresh(), name=f"journal-follow:{self.name}")
            with contextlib.suppress(Unavailable):
                await asyncio.shield(self._follow)
        return self._last >= offset

    # ---- the stream's own state --------------------------------------------------
    async def refresh(self) -> tuple[int, int]:
        """The head as the stream holds it: entries another journal process wrote are indexed first.

        One stream-info call (answered by the stream leader, so it covers every acknowledged
        write); only when the stream is ahead of the index are the missing entries read (batched
        direct gets) into it — offsets, HLCs, bytes and request ids — and the clock moved past
        them. Call it before answering a head, pull or lookup that must not be stale.

        Raises:
            Unavailable: JetStream did not answer (naming the partition and the cause).
        """
        try:
            first, last = await self._io.last_seq(self.stream)
            if first > self.first_offset and last:  # another journal instance trimmed the stream
                self._forget_below(first)
            if last > self._last:
                await self._catch_up(last)
        except (PublishFailed, *TRANSIENT) as exc:
            raise Unavailable(f"journal partition {self.name} cannot read its stream {self.stream} from "
                              f"JetStream: {type(exc).__name__}: {exc}", retry_after_ms=500,
                              details={"partition": self.name}) from exc
        return self.head

    # ---- index -------------------------------------------------------------------
    def _index(self, offset: int, hlc: int, size: int, request_id: str, epoch: int = 0,
               owner: str = "") -> None:
        """Add the entry at ``offset``; one indexed already (by a concurrent catch-up) is skipped."""
        if offset <= self._last:
            return
        if offset != self._last + 1:
            raise JournalCorruption(f"partition {self.name}: entry {offset} indexed after "
                                    f"{self._last}, a hole")
        self._hlc.append(hlc)
        self._cum.append((self._cum[-1] if self._cum else 0) + size)
        if epoch > self._max_epoch:
            self._max_epoch = epoch
        if owner:
            self._last_marker = Holding(epoch, owner)
            self._last_marker_at = Position(self.name, offset, hlc)
        if request_id:
            if self._loading:
                self._rid_index.recovered(request_id, Position(self.name, offset, hlc))
            else:
                self._rids[request_id] = Position(self.name, offset, hlc)

    def _published(self) -> None:
        self._committed_now()

    async def _catch_up(self, last: int) -> list[Stored]:
        """Index every entry after the head up to ``last`` (written by anyone); returns those it indexed."""
        new: list[Stored] = []
        async with self._catching_up:
            while self._last < last:
                head = self._last
                for e in await self._io.fetch(self.stream, head + 1, min(last - head, MAX_BATCH_MESSAGES)):
                    if e.seq <= self._last:  # the writer indexed its own batch meanwhile
                        continue
                    self._index(e.seq, e.hlc, entry_size(e.request_id, e.shards, e.payload), e.request_id,
                                e.epoch, e.owner)
                    new.append(e)
                    if e.attempt and e.attempt not in self._seen_attempts:
                        self._seen_attempts[e.attempt] = e.seq
                        if len(self._seen_attempts) > SEEN_ATTEMPTS:
                            self._seen_attempts.popitem(last=False)
        if new:
            # Entries of another writer (or a restart): never issue an HLC <= theirs.
            self._clock.restore(new[-1].hlc)
            self._published()
        return new

    # ---- write path --------------------------------------------------------------
    async def _write_loop(self) -> None:
        """Commit whatever is queued, batch after batch; ends once closing and drained.

        JetStream not answering or refusing a batch is retried within the retry window, then
        answers that batch UNAVAILABLE and goes on; any other error ends the loop, and the base
        class fails the partition.
        """
        while True:
            if not self._queue:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            take, size = 0, 0
            for write, _ in self._queue[:MAX_BATCH_MESSAGES]:
                if take and size + len(write.payload) > MAX_BATCH_BYTES:
                    break
                take, size = take + 1, size + len(write.payload)
            await self._commit(self._take_queue(take))

    def _stamp(self, batch: list[PendingAppend]) -> tuple[_Stamped, list[PendingAppend]]:
        """Offsets and HLCs in queue order; answers writes the index already holds; refuses far-ahead HLCs
        and, when fenced, every write while this process does not write the partition."""
        stamped: _Stamped = []
        accepted: list[PendingAppend] = []
        offset = self._last
        for write, fut in batch:
            known = self._rids.get(write.request_id) if write.request_id else None
            try:
                if known is not None:  # committed meanwhile, e.g. by an attempt whose answer was lost
                    raise _Known(known)
                epoch, owner = self._may_write(write)
                hlc = self._clock.update(write.client_hlc) if write.client_hlc else self._clock.now()
            except (ClockSkew, NotOwner, FencedOut, _Known) as outcome:
                self._inflight.pop(write.request_id, None)
                if not fut.done():
                    if isinstance(outcome, _Known):
                        fut.set_result(Appended(outcome.position, True))
                    else:
                        fut.set_exception(outcome)
                continue
            offset += 1
            stamped.append((offset, hlc, write, epoch, owner))
            accepted.append((write, fut))
        return stamped, accepted

    async def _commit(self, batch: list[PendingAppend]) -> None:
        """Publish ``batch`` as one atomic batch; retry until stored or the retry window ends."""
        began = time.monotonic()
        stamped: _Stamped = []
        attempts: set[str] = set()  # attempt ids sent with the current stamps
        delay = 0.05
        while True:
            if not stamped:
                stamped, batch = self._stamp(batch)
                attempts = set()
                if not stamped:
                    return
            head = stamped[0][0] - 1
            attempt = uuid.uuid4().hex
            attempts.add(attempt)
            started = time.perf_counter()
            error: BaseException
            try:
                last = await self._io.publish_batch(
                    self.stream, self.subject, attempt, head,
                    [(entry_headers(hlc, w.request_id, w.shards, epoch=epoch, owner=owner), w.payload)
                     for _, hlc, w, epoch, owner in stamped])
                if last == stamped[-1][0]:
                    self._commit_metric.observe(time.perf_counter() - started)
                    self._batch_metric.observe(len(stamped))
                    for offset, hlc, write, epoch, owner in stamped:
                        self._index(offset, hlc, entry_size(write.request_id, write.shards, write.payload),
                                    write.request_id, epoch, owner)
                    self._published()
                    self._answer(stamped, batch)
                    return
                error = PublishFailed(f"batch stored at {last}, expected {stamped[-1][0]}")
            except (WrongLastSequence, PublishFailed, *TRANSIENT) as exc:
                error = exc
            # Learn what the stream holds now; our batch may be there (an answer was lost).
            try:
                _, last_seq = await self._io.last_seq(self.stream)
                await self._catch_up(last_seq)
            except (PublishFailed, *TRANSIENT) as exc:
                error = exc
            # Indexed by this catch-up or an earlier one (a reader's refresh may have come first).
            if any(self._seen_attempts.get(a) == stamped[0][0] for a in attempts):
                self._answer(stamped, batch)
                return
            if self._last > head:
                log.warning("partition %s: entries %d..%d written by another journal; restamping",
                            self.name, head + 1, self._last, extra={"partition": self.name})
                stamped = []  # the old stamps can never be stored now: restamp after the new head
                if time.monotonic() - began <= (CLOSING_WINDOW_S if self._closing else RETRY_WINDOW_S):
                    continue  # the stream moved on (it answers): no need to wait before restamping
            elif self.fenced and not self._holds():
                # The outcome is unknown and this process no longer owns the partition: its owner
                # (which indexes everything stored before its marker) answers a retry of the ids.
                log.warning("partition %s: ownership ended while a batch's outcome is unknown (%s)",
                            self.name, error, extra={"partition": self.name})
                self._fail(batch, Unavailable(
                    f"journal partition {self.name}: this instance lost ownership while its write's outcome "
                    f"was unknown; retry with the same request id (the owner knows whether it was stored)",
                    retry_after_ms=100, details={"partition": self.name}))
                return
            if time.monotonic() - began > (CLOSING_WINDOW_S if self._closing else RETRY_WINDOW_S):
                log.error("partition %s: giving up on a batch after %.0fs: %s", self.name,
                          time.monotonic() - began,
                          error, extra={"partition": self.name})
                self._fail(batch, Unavailable(f"journal partition {self.name} cannot reach JetStream: "
                                              f"{error}", retry_after_ms=1000))
                return
            log.warning("partition %s: publish not confirmed (%s: %s); retrying", self.name,
                        type(error).__name__, error, extra={"partition": self.name})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def _answer(self, stamped: _Stamped, batch: list[PendingAppend]) -> None:
        for (offset, hlc, write, _, _), (_, fut) in zip(stamped, batch, strict=True):
            self._inflight.pop(write.request_id, None)
            if not fut.done():
                fut.set_result(Appended(Position(self.name, offset, hlc), False))

    def _fail(self, batch: Sequence[PendingAppend], err: Exception) -> None:
        for write, fut in batch:
            self._inflight.pop(write.request_id, None)
            if not fut.done():
                fut.set_exception(err)


class _Known(Exception):
    """A queued write whose request id turned out to be committed already."""

    def __init__(self, position: Position) -> None:
        super().__init__(position)
        self.position = position


class JetStreamJournalBackend(IndexedJournalBackend[JetStreamPartitionLog]):
    """Every partition as a stream ``<prefix>-<partition>`` on subject ``<prefix>.journal.<partition>``.

    Args:
        urls: NATS client URLs of the cluster (any subset reaches it).
        partitions: partition names in routing order.
        clock: the journal's HLC.
        replicas: replicas of each stream created here (3 for a cluster, 1 for one server).
            An existing stream keeps its own replica count.
        stream_prefix: names this journal's streams and subjects (several journals per NATS).
        timeout: seconds for one NATS answer.
        ready_timeout: how long :meth:`open` waits for JetStream to accept the streams.
        request_id_retention: bounds the request-id index (the idempotency window,
            :mod:`.request_ids`).
        wall_clock: measures the window's ages; must be the wall clock ``clock`` follows.
        fenced: write a partition only under a holding fenced into its stream
            (:meth:`JetStreamPartitionLog.take_over`; partition ownership). False: write every
            partition at once, as the only journal process (or beside others, unfenced).
    """

    def __init__(self, urls: Sequence[str], partitions: Sequence[str], *, clock: HybridLogicalClock,
                 replicas: int = 3, stream_prefix: str = "vecraft", timeout: float = 5.0,
                 ready_timeout: float = 60.0, request_id_retention: RequestIdRetention = DEFAULT_RETENTION,
                 wall_clock: Callable[[], int] = wall_clock_ms, fenced: bool = False) -> None:
        self.fenced = fenced
        self._urls = list(urls)
        self._names = list(partitions)
        self._clock = clock
        self._replicas = replicas
        self._prefix = stream_prefix
        self._timeout = timeout
        self._ready_timeout = ready_timeout
        self._rids: RequestIdIndex = RequestIdIndex(request_id_retention, wall_clock=wall_clock)
        self._logs: dict[str, JetStreamPartitionLog] = {}
        self._nc: Client | None = None
        self._io: StreamIO | None = None
        self._closed = False

    async def open(self) -> None:
        self._nc = await connect(self._urls, name=f"vecraft-journal-{self._prefix}", timeout=self._timeout)
        self._io = StreamIO(self._nc, timeout=self._timeout)
        await self._io.start()
        inflight: dict[str, asyncio.Future[Appended]] = {}
        max_entry = self._nc.max_payload - HEADER_ROOM
        # Before creating anything: a refused start leaves the streams as they were.
        await self._refuse_unknown_streams()
        for name in self._names:
            stream, subject = f"{self._prefix}-{name}", f"{self._prefix}.journal.{name}"
            await self._ensure_stream(stream, subject)
            plog = JetStreamPartitionLog(name, stream, subject, io=self._io, clock=self._clock,
                                         request_ids=self._rids, inflight=inflight, max_entry_bytes=max_entry,
                                         fenced=self.fenced)
            self._logs[name] = plog
            await plog.load()
            log.info("partition recovered", extra={"partition": name, "head_offset": plog.head[0],
                                                   "stream": stream})
        self._rids.recovery_done()

    async def _refuse_unknown_streams(self) -> None:
        """Refuse to start beside this prefix's streams of partitions it does not serve that hold
        entries (e.g. ``data-3`` after ``--data-partitions`` went from 4 to 2); empty ones are ignored.

        One ``STREAM.LIST`` request filtered by ``<prefix>.journal.*`` (retried, like creating the
        streams, while JetStream is not ready).

        Raises:
            RuntimeError: such a stream holds entries (the message names it and what to do).
            TimeoutError: JetStream did not answer within ``ready_timeout``.
        """
        assert self._io is not None
        io = self._io
        marker = f"{self._prefix}.journal."
        deadline = time.monotonic() + self._ready_timeout
        while True:
            try:
                streams = await io.streams_on(f"{marker}*")
                break
            except TRANSIENT as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"JetStream at {', '.join(self._urls)} did not list the streams "
                                       f"{marker}* within {self._ready_timeout}s: {exc}") from exc
                log.info("waiting for JetStream (%s)", exc)
                await asyncio.sleep(0.5)
        found = {}
        for stream, (subjects, messages) in streams.items():
            names = {subject[len(marker):] for subject in subjects if subject.startswith(marker)}
            unknown = names - set(self._names)
            if messages and unknown:
                found[", ".join(sorted(unknown))] = f"stream {stream}, {messages} entries"
        self._refuse_unknown_partitions(f"JetStream (streams {self._prefix}-*)", found)

    async def _ensure_stream(self, stream: str, subject: str) -> None:
        """Create the stream if it is missing; retried while JetStream elects its leaders.

        Raises:
            RuntimeError: the stream exists but cannot hold a journal (no atomic batches or direct gets).
            TimeoutError: JetStream did not answer within ``ready_timeout``.
        """
        assert self._io is not None
        js = self._io.js
        deadline = time.monotonic() + self._ready_timeout
        while True:
            try:
                try:
                    info = await js.stream_info(stream)
                except NotFoundError:
                    await js.add_stream(StreamConfig(
                        name=stream, subjects=[subject], storage=StorageType.FILE,
                        num_replicas=self._replicas, allow_atomic=True, allow_direct=True,
                        deny_delete=True, description=f"vecraft journal partition {subject}"))
                    return
                config = info.config
                if not (config.allow_atomic and config.allow_direct and subject in (config.subjects or [])):
                    raise RuntimeError(f"stream {stream} exists but is not a journal stream (needs subject "
                                       f"{subject}, allow_atomic and allow_direct)")
                return
            except TRANSIENT as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"JetStream at {', '.join(self._urls)} did not accept stream "
                                       f"{stream} within {self._ready_timeout}s: {exc}") from exc
                log.info("waiting for JetStream (%s)", exc)
                await asyncio.sleep(0.5)

    async def refresh(self, partitions: Sequence[str] = ()) -> None:
        """:meth:`JetStreamPartitionLog.refresh` of each of ``partitions`` (default: all), concurrently.

        Raises:
            NotFound: an unknown partition. Unavailable: JetStream did not answer.
        """
        logs = [self.partition(name) for name in partitions or self._names]
        await asyncio.gather(*(plog.refresh() for plog in logs))

    async def lookup_latest(self, request_id: str) -> Position | None:
        """:meth:`lookup` that also finds an entry another journal process wrote.

        A request id the index knows is answered at once (an entry never moves); an unknown one
        refreshes every partition first (one stream-info call each, plus reading what is new),
        since its partition is not known.

        Raises:
            Unavailable: JetStream did not answer.
        """
        known = self.lookup(request_id)
        if known is not None or not request_id:
            return known
        await self.refresh()
        return self.lookup(request_id)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for plog in self._logs.values():
            await plog.close()
        if self._io is not None:
            await self._io.close()
        if self._nc is not None:
            await self._nc.close()

