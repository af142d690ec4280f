"""The journal's verbs over a backend: validation, idempotency, acks, streaming, lag, back-pressure.

:class:`Journal` is what the gRPC servicer calls; it speaks the wire messages
of ``vecraft/v1/journal.proto`` (they are the journal's domain types: entries
carry opaque payload bytes) and raises :mod:`vecraft.shared.common.errors`
classes, which the service shell maps to gRPC statuses.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from vecraft.services.journal_service import metrics
from vecraft.services.journal_service.distribution import (
    ROLE_REPLICA,
    ROLES,
    AckTracker,
    BackPressure,
    ReplicaRegistry,
    compute_lag,
)
from vecraft.services.journal_service.ownership import OwnAll, Ownership
from vecraft.services.journal_service.partition_map import PartitionMap
from vecraft.services.journal_service.wal import JournalBackend, JournalCorruption, LogWrite, PartitionLog
from vecraft.services.journal_service.wal.indexed import trimmed_error
from vecraft.shared.common.errors import HistoryMismatch, InvalidRequest, NotOwner, VecraftError
from vecraft.shared.hlc import physical_ms, wall_clock_ms
from vecraft.shared.model.limits import MAX_REQUEST_BYTES
from vecraft.shared.model.routing import SYSTEM_PARTITION
from vecraft.shared.rpc.v1 import journal_pb2

log = logging.getLogger(__name__)

MAX_REQUEST_ID_BYTES = 256
MAX_SHARD_INDEX = 0xFFFF
_ACK_NAMES = {journal_pb2.ACK_DEFAULT: "all", journal_pb2.ACK_JOURNAL: "journal",
              journal_pb2.ACK_ONE: "one", journal_pb2.ACK_ALL: "all"}


@dataclass(frozen=True, slots=True)
class JournalLimits:
    """Per-request limits and timings of the journal's verbs.

    ``max_entry_bytes`` is at most MAX_REQUEST_BYTES (its default): every
    entry is one client request, and no service accepts a larger one.
    """

    max_entry_bytes: int = MAX_REQUEST_BYTES
    write_ack_timeout_ms: int = 2000
    heartbeat_ms: int = 150
    pull_max_entries: int = 10_000
    pull_max_bytes: int = 16 << 20
    monitor_interval_ms: int = 100
    #: Entries younger than this are never trimmed: a restart rebuilds the idempotency window
    #: (``--request-id-retention-s``) from the stored entries, so trimming them would forget ids.
    keep_entries_s: float = 86_400.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_entry_bytes <= MAX_REQUEST_BYTES:
            raise ValueError(f"max_entry_bytes {self.max_entry_bytes} is outside 1..{MAX_REQUEST_BYTES} "
                             f"(MAX_REQUEST_BYTES, the largest request any Vecraft service accepts)")


class Journal:
    """Append / read / stream / track over one :class:`JournalBackend`.

    ``ownership`` says which partitions this instance writes (default: all). Appends of
    the others are refused with NotOwner; Subscribe and ReportApplied of a partition
    another known instance owns too (the owner tracks its consumers for acks); reads
    (GetOffset, PullWAL, LookupRequest) are answered by every instance from the storage.
    """

    def __init__(self, backend: JournalBackend, partition_map: PartitionMap, registry: ReplicaRegistry,
                 back_pressure: BackPressure, limits: JournalLimits = JournalLimits(),
                 ownership: Ownership | None = None) -> None:
        self.backend = backend
        self.ownership = ownership or OwnAll(backend.partitions())
        self.partition_map = partition_map
        self.registry = registry
        self.acks = AckTracker(registry)
        self.back_pressure = back_pressure
        self.limits = limits
        self._max_drift_ms = 0
        self._closing = False

    def _log(self, partition: str) -> PartitionLog:
        return self.backend.partition(self.partition_map.require(partition))

    # ---- Append ----------------------------------------------------------------
    def _validate_append(self, req: journal_pb2.AppendRequest) -> None:
        size = len(req.payload)
        if size == 0:
            raise InvalidRequest("empty entry: the payload holds no mutations")
        if size > self.limits.max_entry_bytes:
            limit = self.limits.max_entry_bytes
            raise InvalidRequest(f"entry of {size} bytes exceeds max_entry_bytes {limit}",
                                 details={"bytes": size, "max_entry_bytes": self.limits.max_entry_bytes})
        if len(req.request_id.encode()) > MAX_REQUEST_ID_BYTES:
            raise InvalidRequest(f"request_id is longer than {MAX_REQUEST_ID_BYTES} bytes")
        if req.ack not in _ACK_NAMES:
            raise InvalidRequest(f"unknown ack mode {req.ack}")
        if req.ack_timeout_ms < 0:
            raise InvalidRequest(f"ack_timeout_ms must be >= 0, got {req.ack_timeout_ms}")
        if len(req.shards) > MAX_SHARD_INDEX or any(s > MAX_SHARD_INDEX for s in req.shards):
            raise InvalidRequest(f"shard indexes must be <= {MAX_SHARD_INDEX} and at most that many")

    def _note_drift(self, client_hlc: int) -> None:
        drift = physical_ms(client_hlc) - wall_clock_ms()
        if drift > self._max_drift_ms:
            self._max_drift_ms = drift
            metrics.HLC_DRIFT_MAX_MS.set(drift)

    async def append(self, req: journal_pb2.AppendRequest) -> journal_pb2.AppendResponse:
        """One request = one entry: durable, then acknowledged per ``req.ack``.

        Raises:
            NotFound: unknown partition. InvalidRequest: bad input.
            NotOwner: another instance owns the partition (nothing was written).
            RateLimited: back-pressure (not for a retry of a written request id).
            ClockSkew: ``client_hlc`` too far ahead. Unavailable: the log cannot write.
        """
        started = time.perf_counter()
        plog = self._log(req.partition)
        ack_name = _ACK_NAMES.get(req.ack, "all")
        try:
            self.ownership.check_write(plog.name)
            self._validate_append(req)
            if req.client_hlc:
                self._note_drift(req.client_hlc)
            known = self.backend.lookup(req.request_id) if req.request_id else None
            if known is None:
                self.back_pressure.check(plog.name)
            shards = tuple(req.shards)
            try:
                appended = await plog.append(LogWrite(req.request_id, req.payload, shards, req.client_hlc))
            except NotOwner as err:  # the log refused it (ownership ended meanwhile): name the owner
                raise self.ownership.not_owner(plog.name, err.message) from err
        except NotOwner:
            metrics.APPENDS.labels(plog.name, "not_owner").inc()
            raise
        except VecraftError as err:
            metrics.APPENDS.labels(plog.name, "rejected" if err.http_status < 500 else "failed").inc()
            raise
        pos = appended.position
        durable = time.perf_counter()
        metrics.DURABLE_SECONDS.labels(plog.name).observe(durable - started)
        timeout_ms = req.ack_timeout_ms or self.limits.write_ack_timeout_ms
        mode = journal_pb2.ACK_ALL if req.ack == journal_pb2.ACK_DEFAULT else req.ack
        outcome = await self.acks.wait(plog.name, pos.offset, mode, shards, timeout_ms / 1000.0)
        if outcome.timed_out:
            metrics.REPLICAS_LAGGING.labels(plog.name).inc()
            log.warning("replicas missed write_ack_timeout", extra={
                "partition": plog.name, "offset": pos.offset, "lagging": outcome.lagging,
                "ack_timeout_ms": timeout_ms})
        metrics.APPENDS.labels(plog.name, "duplicate" if appended.duplicate else "ok").inc()
        if not appended.duplicate:
            metrics.APPEND_BYTES.labels(plog.name).inc(len(req.payload))
        metrics.APPEND_SECONDS.labels(plog.name, ack_name).observe(time.perf_counter() - started)
        return journal_pb2.AppendResponse(
            partition=pos.partition, offset=pos.offset, hlc=pos.hlc, duplicate=appended.duplicate,
            replicas_acked=len(outcome.acked), replicas_expected=len(outcome.expected),
            lagging_replicas=outcome.lagging)

    # ---- reads -------------------------------------------------------------------
    # Heads are read after the backend's refresh: another journal process may write the same
    # storage (JetStream), and a head, a pull bound or a lookup must cover every acknowledged
    # write. The local backend's refresh is an await that returns at once.
    async def get_offsets(self, partitions: Sequence[str]) -> journal_pb2.GetOffsetResponse:
        """Head of each named partition (every partition when empty), as the storage holds it.

        Raises:
            NotFound: unknown partition. Unavailable: the storage did not answer.
        """
        logs = [self._log(name) for name in list(partitions) or self.backend.partitions()]
        await self.backend.refresh([plog.name for plog in logs])
        out = journal_pb2.GetOffsetResponse()
        for plog in logs:
            offset, hlc = plog.head
            out.offsets.add(partition=plog.name, offset=offset, hlc=hlc)
        return out

    async def _check_from(self, plog: PartitionLog, from_offset: int) -> int:
        """The head, once ``from_offset`` is known to be within ``1..head + 1`` (refreshing if past it)."""
        head = plog.head[0]
        if from_offset > head + 1:
            head = (await plog.refresh())[0]
        return self._check_from_head(plog, from_offset, head)

    def _check_from_head(self, plog: PartitionLog, from_offset: int, head: int) -> int:
        if from_offset < 1:
            raise InvalidRequest(f"from_offset {from_offset} is invalid: offsets start at 1")
        if from_offset < plog.first_offset:
            raise trimmed_error(plog.name, from_offset, plog.first_offset)
        if from_offset > head + 1:
            raise InvalidRequest(f"from_offset {from_offset} is past the head of {plog.name}: "
                                 f"valid range is 1..{head + 1} (head offset {head})",
                                 details={"head_offset": head})
        return head

    async def pull(self, req: journal_pb2.PullWALRequest) -> journal_pb2.PullWALResponse:
        """Committed entries ``from..to`` (to=0: the head), one page; never delayed.

        Raises:
            NotFound: unknown partition. InvalidRequest: from < 1, from > head + 1,
                or to < from (with to != 0).
        """
        plog = self._log(req.partition)
        head = plog.head[0]
        if not req.to_offset or req.to_offset > head:  # up to the head, or past the one indexed here
            head = (await plog.refresh())[0]
        self._check_from_head(plog, req.from_offset, head)
        if req.to_offset and req.to_offset < req.from_offset:
            raise InvalidRequest(f"to_offset {req.to_offset} is below from_offset {req.from_offset}")
        to = min(req.to_offset or head, head)
        max_entries = min(req.max_entries or self.limits.pull_max_entries, self.limits.pull_max_entries)
        max_bytes = min(req.max_bytes or self.limits.pull_max_bytes, self.limits.pull_max_bytes)
        entries = []
        if req.from_offset <= to:
            entries = await self._read(plog, req.from_offset, to, max_entries, max_bytes)
        head_offset, head_hlc = plog.head
        return journal_pb2.PullWALResponse(entries=entries, latest_offset=head_offset, latest_hlc=head_hlc)

    async def _read(self, plog: PartitionLog, first: int, last: int, max_entries: int,
                    max_bytes: int) -> list[journal_pb2.JournalEntry]:
        try:
            return await plog.read(first, last, max_entries=max_entries, max_bytes=max_bytes)
        except JournalCorruption as exc:
            raise VecraftError(f"journal data is damaged: {exc}") from exc

    async def subscribe(self, req: journal_pb2.SubscribeRequest) -> AsyncIterator[journal_pb2.SubscribeEvent]:
        """Entries from ``req.from_offset`` on as they commit, plus heartbeats carrying the head.

        The first event is a heartbeat. While the stream is open the
        subscriber is a live consumer of the partition.

        The stream ends (the client reconnects) when this instance stops serving the
        partition: ownership lost, or another owner appeared (see :class:`Ownership`).

        Raises:
            NotFound: unknown partition. InvalidRequest: bad from_offset, role or replica id.
            HistoryMismatch: ``after_hlc`` is not the HLC of the entry before ``from_offset``.
            NotOwner: another instance owns the partition; subscribe there.
        """
        plog = self._log(req.partition)
        self.ownership.check_tracking(plog.name)
        generation = self.ownership.generation(plog.name)
        await self._check_from(plog, req.from_offset)
        if req.after_hlc and req.from_offset > 1:
            held = plog.hlc_at(req.from_offset - 1)  # 0: not held any more (trimmed), unchecked
            if held and held != req.after_hlc:
                raise HistoryMismatch(
                    f"{plog.name} offset {req.from_offset - 1} has HLC {held} here, the subscriber "
                    f"resumes after HLC {req.after_hlc}: this journal's history is not the one it followed",
                    details={"partition": plog.name, "offset": req.from_offset - 1, "hlc": held,
                             "expected_hlc": req.after_hlc})
        role = req.role or ROLE_REPLICA
        if role not in ROLES:
            raise InvalidRequest(f"unknown subscriber role {req.role!r}; expected one of {', '.join(ROLES)}")
        if not req.replica_id:
            raise InvalidRequest("replica_id is required to subscribe")
        state = self.registry.subscribed(plog.name, req.replica_id, shards=req.shards, role=role,
                                         from_offset=req.from_offset)
        self.acks.applied(plog.name, state.replica_id, state.applied)
        gauge = metrics.SUBSCRIBERS.labels(plog.name, role)
        gauge.inc()
        heartbeat_s = self.limits.heartbeat_ms / 1000.0
        next_offset = req.from_offset
        try:
            offset, hlc = plog.head
            yield journal_pb2.SubscribeEvent(head_offset=offset, head_hlc=hlc)
            last_sent = time.monotonic()
            while not self._closing and self.ownership.generation(plog.name) == generation:
                head, hlc = plog.head
                if next_offset <= head:
                    entries = await self._read(plog, next_offset, head, self.limits.pull_max_entries,
                                               self.limits.pull_max_bytes)
                    next_offset = entries[-1].offset + 1
                    yield journal_pb2.SubscribeEvent(entries=entries, head_offset=head, head_hlc=hlc)
                    last_sent = time.monotonic()
                    continue
                wait = heartbeat_s - (time.monotonic() - last_sent)
                if wait <= 0:
                    yield journal_pb2.SubscribeEvent(head_offset=head, head_hlc=hlc)
                    last_sent = time.monotonic()
                    continue
                await plog.wait_for(next_offset, wait)
        finally:
            gauge.dec()
            self.registry.unsubscribed(state)

    def end_streams(self) -> None:
        """Make every Subscribe stream end within a heartbeat (shutdown: clients reconnect)."""
        self._closing = True

    # ---- tracking ------------------------------------------------------------------
    async def report_applied(self, partition: str, replica_id: str, applied: int) -> None:
        """A consumer applied everything up to ``applied``. Raises NotFound, InvalidRequest, NotOwner
        (another instance owns the partition and tracks its consumers)."""
        plog = self._log(partition)
        self.ownership.check_tracking(plog.name)
        if not replica_id:
            raise InvalidRequest("replica_id is required")
        head = plog.head[0]
        if applied > head:  # it may have read entries another journal process wrote
            head = (await plog.refresh())[0]
        if applied > head:
            raise InvalidRequest(f"applied_offset {applied} is past the head {head} of {partition}")
        state = self.registry.report(plog.name, replica_id, applied, head)
        if state is None:
            return  # sent before the replica left: it stays forgotten
        self.acks.applied(plog.name, replica_id, state.applied)
        self._refresh(plog)

    async def leave(self, partition: str, replica_id: str) -> bool:
        """A consumer stops consuming ``partition`` on purpose: forget it now, release the writes it held.

        From here on it is not expected by any write (those waiting for it stop waiting), not
        counted for back-pressure and not listed in Stats; reports it sent before are ignored for
        ``--replica-liveness-ms``; a new Subscribe stream brings it back. Idempotent.

        Returns:
            True if the consumer was known.

        Raises:
            NotFound: unknown partition. InvalidRequest: no replica id.
            NotOwner: another instance owns the partition (it tracks the partition's consumers).
        """
        plog = self._log(partition)
        self.ownership.check_tracking(plog.name)
        if not replica_id:
            raise InvalidRequest("replica_id is required")
        known = self.registry.leave(plog.name, replica_id)
        self.acks.left(plog.name, replica_id)
        self._refresh(plog)
        metrics.forget_replica(plog.name, replica_id)
        if known:
            metrics.REPLICAS_LEFT.labels(plog.name).inc()
            log.info("consumer left", extra={"partition": plog.name, "replica_id": replica_id})
        return known

    async def lookup(self, request_id: str) -> journal_pb2.LookupRequestResponse:
        """Where ``request_id``'s entry is and which storage replicas have applied it.

        Raises:
            Unavailable: the storage did not answer (an id unknown here is looked up in it).
        """
        pos = await self.backend.lookup_latest(request_id) if request_id else None
        if pos is None:
            return journal_pb2.LookupRequestResponse(found=False)
        plog = self.backend.partition(pos.partition)
        entry = (await self._read(plog, pos.offset, pos.offset, 1, 0))[0]
        now = time.monotonic()
        applied, pending = [], []
        for state in self.registry.consumers(pos.partition):
            if not state.counts or not state.serves(entry.shards):
                continue
            if state.applied >= pos.offset:
                applied.append(state.replica_id)
            elif state.live(now, self.registry.liveness_s):
                pending.append(state.replica_id)
        return journal_pb2.LookupRequestResponse(
            found=True, partition=pos.partition, offset=pos.offset, hlc=pos.hlc,
            replicas_applied=sorted(applied), replicas_pending=sorted(pending))

    def _refresh(self, plog: PartitionLog) -> None:
        """Recompute the lag of ``plog``'s consumers and its back-pressure state."""
        now_ms = wall_clock_ms()
        now = time.monotonic()
        connected = []
        for state in self.registry.consumers(plog.name):
            state.lag = compute_lag(state, plog, now_ms)
            # Only replicas with an open push stream can hold writes back: one
            # that disconnected (crashed, restarting) is a failure, not a slow
            # consumer, and counting its growing lag for the rest of its
            # liveness window would refuse every write of the partition.
            if state.counts and state.streams > 0 and state.live(now, self.registry.liveness_s):
                connected.append(state)
        self.back_pressure.evaluate(plog.name, connected)

    async def monitor(self) -> None:
        """Background loop: refresh lags, metrics and back-pressure every monitor interval."""
        while True:
            for name in self.backend.partitions():
                plog = self.backend.partition(name)
                self._refresh(plog)
                for state in self.registry.consumers(name):
                    metrics.REPLICA_LAG_OPS.labels(name, state.replica_id).set(state.lag.ops)
                    metrics.REPLICA_LAG_BYTES.labels(name, state.replica_id).set(state.lag.bytes)
                    metrics.REPLICA_LAG_MS.labels(name, state.replica_id).set(state.lag.ms)
            await asyncio.sleep(self.limits.monitor_interval_ms / 1000.0)

    async def trim(self, req: journal_pb2.TrimRequest) -> journal_pb2.TrimResponse:
        """Trim ``req.partition`` below ``req.before_offset`` (see the Trim RPC), but never an entry
        younger than ``limits.keep_entries_s`` (the idempotency window).

        Raises:
            NotFound: unknown partition. InvalidRequest: the system partition, or before_offset < 1.
            NotOwner: another instance owns the partition (it trims).
        """
        plog = self._log(req.partition)
        self.ownership.check_tracking(plog.name)
        if plog.name == SYSTEM_PARTITION:
            raise InvalidRequest(f"the {SYSTEM_PARTITION} partition is never trimmed: the catalog and the "
                                 f"audit log are rebuilt from its first entry")
        if req.before_offset < 1:
            raise InvalidRequest(f"before_offset is {req.before_offset}; offsets start at 1")
        done = await plog.trim(min(req.before_offset, self._oldest_to_keep(plog)))
        return journal_pb2.TrimResponse(first_offset=done.first_offset, entries=done.entries,
                                        bytes=done.bytes)

    def _oldest_to_keep(self, plog: PartitionLog) -> int:
        """The first offset written within ``keep_entries_s`` (head + 1 when none: HLCs only rise)."""
        cutoff_ms = wall_clock_ms() - int(self.limits.keep_entries_s * 1000)
        lo, hi = plog.first_offset, plog.head[0] + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if physical_ms(plog.hlc_at(mid)) >= cutoff_ms:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def stats(self) -> journal_pb2.StatsResponse:
        """Partition heads and sizes, every consumer's lag, and the back-pressure state."""
        out = journal_pb2.StatsResponse()
        for name in self.backend.partitions():
            plog = self.backend.partition(name)
            self._refresh(plog)
            offset, hlc = plog.head
            size, segments = plog.size()
            out.partitions.add(partition=name, head_offset=offset, head_hlc=hlc, bytes=size,
                               segments=segments, first_offset=plog.first_offset)
        now = time.monotonic()
        for state in sorted(self.registry.all(), key=lambda s: (s.partition, s.replica_id)):
            out.replicas.add(replica_id=state.replica_id, partition=state.partition,
                             shards=sorted(state.shards), applied_offset=state.applied,
                             lag_ops=state.lag.ops, lag_bytes=state.lag.bytes, lag_ms=state.lag.ms,
                             live=state.live(now, self.registry.liveness_s), lagging=state.lagging,
                             role=state.role)
        active = self.back_pressure.active()
        out.back_pressure = bool(active)
        out.back_pressure_reason = "; ".join(active[p] for p in sorted(active))
        return out
