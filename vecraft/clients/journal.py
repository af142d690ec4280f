"""Client of the journal service, used by the gateway, storage nodes, query processors and tools.

Every call raises :class:`~vecraft.shared.common.errors.VecraftError`
subclasses, never ``grpc.RpcError``. :meth:`JournalClient.subscribe` returns a
:class:`Subscription` that survives disconnects and journal restarts.

Deadlines: every unary call carries a gRPC deadline, so a journal that
accepts connections but never answers costs a caller
:class:`~vecraft.shared.common.errors.DeadlineExceeded` (504), never a hang.
Each verb has a default (:class:`JournalTimeouts`); a caller with a budget of
its own (a search's ``timeout_ms``) passes ``timeout_s=`` and the whole call,
retries included, ends within it. Subscribe streams have no deadline (they
live as long as the subscriber) but expect an event - entries or a heartbeat
- at least every ``stream_silence_s``; a silent stream is dropped and
re-subscribed, which is how a dead or wedged journal is noticed.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import grpc

from vecraft.clients.journal_instances import InstanceRouter, owner_hints, parse_addresses
from vecraft.shared.common import in_process
from vecraft.shared.common.backoff import Backoff
from vecraft.shared.common.errors import DeadlineExceeded, NotOwner, VecraftError, error_class
from vecraft.shared.common.grpc_errors import from_rpc_error
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.hlc import physical_ms, wall_clock_ms
from vecraft.shared.rpc.v1 import journal_pb2, journal_pb2_grpc

log = logging.getLogger(__name__)

# Entries a Subscription buffers before it stops reading the stream (gRPC flow control then
# slows the journal's sender instead of this process's memory growing).
_BUFFER_ENTRIES = 20_000
_BUFFER_BYTES = 64 << 20
_BACKOFF_MIN_S, _BACKOFF_MAX_S = 0.05, 2.0
# Between rounds of "not the owner" answers (a take-over under way): short, the owner is
# about to appear and a refusal costs the journal nothing.
_OWNER_BACKOFF_MIN_S, _OWNER_BACKOFF_MAX_S = 0.02, 0.05
_OWNER_BACKOFF = Backoff(_OWNER_BACKOFF_MIN_S, _OWNER_BACKOFF_MAX_S)  # stateless use: nth(tries)
# Concurrent appends of small entries share AppendBatch calls: at most this many calls are in
# flight, and appends made meanwhile wait and go out together in the next one ("natural batching":
# no added delay for a lone writer, few calls for many).
_BATCH_ENTRY_BYTES = 64 << 10
_BATCH_APPENDS = 512
_BATCHES_IN_FLIGHT = 2


@dataclass(eq=False)
class _Pending:
    """An append waiting for (or riding) an AppendBatch call."""

    request: journal_pb2.AppendRequest
    future: asyncio.Future[journal_pb2.AppendResponse]
    attempt_s: float  # the verb's deadline of one attempt
    due: float | None  # the caller's own deadline (loop time), or None
    retry_until: float  # loop time after which a "not the owner" refusal is not retried any more
    tries: int = field(default=0)


@dataclass(frozen=True)
class JournalTimeouts:
    """Default deadline of each unary verb, in seconds (a caller's ``timeout_s`` wins).

    They bound one attempt: a journal that is down (UNAVAILABLE) is still
    retried for :attr:`JournalClient.unavailable_retry_s`, each attempt with
    this deadline.
    """

    #: Append / AppendBatch wait for durability and then for the replicas' acks for up to
    #: the write ack timeout (the request's ``ack_timeout_ms``, else the journal's, 2 s by
    #: default); this margin on top covers fsync of a large entry and a busy host.
    append_margin_s: float = 8.0
    #: The journal's default write_ack_timeout_ms, for appends that do not set their own.
    default_ack_timeout_s: float = 2.0
    #: GetOffset answers from memory.
    get_offset_s: float = 2.0
    #: PullWAL reads a page of up to 16 MiB (or one entry of up to 64 MiB) from disk.
    pull_s: float = 10.0
    #: ReportApplied, Leave, LookupRequest and Stats are small in-memory answers.
    report_applied_s: float = 5.0
    leave_s: float = 5.0
    lookup_s: float = 5.0
    stats_s: float = 5.0
    #: A Subscribe stream silent this long (no entries, no heartbeat; the journal sends
    #: one every 150 ms by default) is dropped and re-subscribed.
    stream_silence_s: float = 10.0

    def append_s(self, ack_timeout_ms: int = 0) -> float:
        ack = ack_timeout_ms / 1000.0 if ack_timeout_ms > 0 else self.default_ack_timeout_s
        return ack + self.append_margin_s


class _StreamGap(Exception):
    """The stream skipped an offset; the subscription resubscribes from the last one received."""


class _StreamSilent(Exception):
    """No event (entries or heartbeat) for too long: the journal is gone or wedged."""


class JournalClient:
    """A client of one journal, served by one or more instances; safe to share between tasks of one
    event loop.

    ``address`` is ``host:port`` or, in cluster mode, several instances ``host:port,host:port``
    (any subset works: the instances name the owner of a partition when they refuse a write).
    Appends, ReportApplied, Leave and Subscribe go to the partition's owner and follow its moves;
    reads go to any instance (see :mod:`.instances`). A call that meets an instance that is down
    or not the owner tries another within its deadline: appends stay idempotent by request id
    across instances, and a ``not_owner`` refusal means nothing was written.
    """

    #: How long a call keeps retrying while the journal is unreachable (UNAVAILABLE) or no instance
    #: owns the partition yet (a fail-over under way).
    unavailable_retry_s: float = 10.0

    def __init__(self, address: str, *, timeouts: JournalTimeouts = JournalTimeouts()) -> None:
        self.address = address
        self.timeouts = timeouts
        self.router = InstanceRouter(parse_addresses(address))
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, journal_pb2_grpc.JournalServiceStub] = {}
        self._batch: list[_Pending] = []
        self._batches_in_flight = 0
        self._batch_tasks: set[asyncio.Task[None]] = set()

    def _stub(self, address: str) -> journal_pb2_grpc.JournalServiceStub:
        # Created lazily: a grpc.aio channel binds to the event loop running when it is made.
        stub = self._stubs.get(address)
        if stub is None:
            self._channels[address] = channel = grpc_channel(address)
            self._stubs[address] = stub = journal_pb2_grpc.JournalServiceStub(channel)
        return stub

    async def _call(self, method: str, request: Any, *, attempt_s: float, timeout_s: float | None = None,
                    retry: bool = True, partition: str | None = None, owner_bound: bool = False,
                    prefer: str | None = None, owners: dict[str, str] | None = None) -> Any:
        """The one choke point of unary calls: deadlines set, instances chosen, UNAVAILABLE and
        ``not_owner`` retried (on another instance when one may answer), errors translated.

        Args:
            attempt_s: the verb's default deadline of one attempt.
            timeout_s: the caller's budget for the whole call, retries included (None: each
                attempt gets ``attempt_s`` and retries last up to ``unavailable_retry_s``).
            retry: retry UNAVAILABLE. Safe for reads and for appends with a request id (they
                are idempotent); False for appends without one. A journal restart is ridden
                out this way. ``not_owner`` is always retried: nothing was written.
            partition / owner_bound: the call is about ``partition`` and must reach its owner.
            prefer: the instance of the first attempt (default: chosen by the router).
            owners: filled with the owners named by a successful answer (AppendBatch).

        Raises:
            DeadlineExceeded: the journal did not answer within the deadline.
        """
        start = time.monotonic()
        retry_until = start + self.unavailable_retry_s
        deadline = None if timeout_s is None else start + max(timeout_s, 0.0)
        if deadline is not None:
            retry_until = min(retry_until, deadline)
        backoff = Backoff(_BACKOFF_MIN_S, _BACKOFF_MAX_S)
        owner_backoff = Backoff(_OWNER_BACKOFF_MIN_S, _OWNER_BACKOFF_MAX_S)
        bound = partition if owner_bound else None
        address = prefer or self.router.target(bound)
        tried: set[str] = set()  # instances asked since the last pause
        err: VecraftError
        cause: grpc.RpcError
        while True:
            attempt = attempt_s if deadline is None else deadline - time.monotonic()
            if attempt <= 0:
                raise self._deadline_error(method, timeout_s if timeout_s is not None else attempt_s, address)
            tried.add(address)
            local = in_process.local_journal(address, method)
            if local is not None:
                # Standalone mode: the instance runs in this process; the same call without gRPC.
                try:
                    async with asyncio.timeout(attempt):
                        response = await local.journal_call(method, request)
                except TimeoutError:
                    raise self._deadline_error(
                        method, timeout_s if timeout_s is not None else attempt_s, address) from None
                self.router.succeeded(address, partition, owner_bound=owner_bound)
                return response
            try:
                call = getattr(self._stub(address), method)(request, timeout=attempt)
                response = await call
                if owners is not None:
                    owners.update(owner_hints(await call.trailing_metadata()))
                self.router.succeeded(address, partition, owner_bound=owner_bound)
                return response
            except grpc.RpcError as exc:
                cause = exc
                if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    self.router.failed(address)  # hung or overloaded: the next call tries another
                    raise self._deadline_error(
                        method, timeout_s if timeout_s is not None else attempt_s, address) from exc
                err = from_rpc_error(exc)
                if isinstance(err, NotOwner) and partition is not None:
                    owner = owner_hints(exc.trailing_metadata()).get(partition)
                    self.router.not_owner(partition, address, owner)
                    pause = owner_backoff
                elif exc.code() == grpc.StatusCode.UNAVAILABLE and retry:
                    self.router.failed(address)
                    pause = backoff
                else:
                    raise err from exc
            address = self.router.target(bound)
            if address in tried:  # every instance worth asking was asked: wait before the next round
                if time.monotonic() + pause.current > retry_until:
                    raise err from cause
                await pause.sleep()
                tried.clear()
                address = self.router.target(bound)
            elif time.monotonic() > retry_until:
                raise err from cause

    def _deadline_error(self, method: str, timeout_s: float, address: str) -> DeadlineExceeded:
        return DeadlineExceeded(f"the journal at {address} did not answer {method} within "
                                f"{timeout_s:.3g}s",
                                details={"journal": address, "verb": method, "timeout_s": timeout_s})

    async def close(self) -> None:
        channels, self._channels, self._stubs = self._channels, {}, {}
        for channel in channels.values():
            await channel.close()

    async def append(self, partition: str, payload: bytes, *, request_id: str, shards: Sequence[int] = (),
                     ack: int = journal_pb2.ACK_DEFAULT, client_hlc: int = 0,
                     ack_timeout_ms: int = 0, timeout_s: float | None = None) -> journal_pb2.AppendResponse:
        """Append one entry; answers once it is durable and acknowledged per ``ack``.

        Retrying with the same ``request_id`` after a lost reply returns the
        original position (``duplicate=True``), whichever instance owns the partition by then.
        Raises RateLimited under back-pressure (``retry_after_ms`` set), InvalidRequest, NotFound,
        ClockSkew, NotOwner (no instance took the partition over within the retries),
        DeadlineExceeded after ``timeout_s`` (default: the ack timeout + a margin;
        the entry may still have been appended - retry with the same request id).
        """
        req = journal_pb2.AppendRequest(partition=partition, request_id=request_id, payload=payload,
                                        shards=shards, client_hlc=client_hlc,
                                        # protoc's .pyi types enum fields as the enum class (an int at
                                        # run time); the journal refuses unknown modes.
                                        ack=cast("journal_pb2.AckMode", ack),
                                        ack_timeout_ms=ack_timeout_ms)
        attempt_s = self.timeouts.append_s(ack_timeout_ms)
        if len(payload) > _BATCH_ENTRY_BYTES:
            # Big entries cost the server per byte, not per call: batching them saves nothing.
            return await self._call("Append", req, attempt_s=attempt_s, timeout_s=timeout_s,
                                    retry=bool(request_id), partition=partition, owner_bound=True)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[journal_pb2.AppendResponse] = loop.create_future()
        now = loop.time()
        due = None if timeout_s is None else now + timeout_s
        retry_until = now + self.unavailable_retry_s
        if due is not None:
            retry_until = min(due, retry_until)
        self._batch.append(_Pending(req, fut, attempt_s, due, retry_until))
        if self._batches_in_flight < _BATCHES_IN_FLIGHT:
            self._send_batch()
        if timeout_s is None:
            return await fut
        # The shared AppendBatch call runs to the latest deadline of its appends; this
        # caller stops waiting at its own (the future, cancelled, is skipped by the batch).
        try:
            return await asyncio.wait_for(fut, max(timeout_s, 0.0))
        except TimeoutError:
            raise self._deadline_error("Append", timeout_s, self.router.target(partition)) from None

    def _send_batch(self) -> None:
        items, self._batch = self._batch[:_BATCH_APPENDS], self._batch[_BATCH_APPENDS:]
        self._batches_in_flight += 1
        task = asyncio.get_running_loop().create_task(self._append_batch(items))
        self._batch_tasks.add(task)
        task.add_done_callback(self._batch_tasks.discard)

    async def _append_batch(self, items: list[_Pending]) -> None:
        """Send concurrent appends as AppendBatch calls (one per owner) and resolve each caller."""
        try:
            groups: dict[str, list[_Pending]] = {}
            for item in items:
                if not item.future.done():  # skip callers that went away
                    groups.setdefault(self.router.target(item.request.partition), []).append(item)
            await asyncio.gather(*(self._append_group(address, group) for address, group in groups.items()))
        finally:
            self._batches_in_flight -= 1
            # Appends that queued up while this batch was in flight go out together now.
            if self._batch and self._batches_in_flight < _BATCHES_IN_FLIGHT:
                self._send_batch()

    async def _append_group(self, address: str, items: list[_Pending]) -> None:
        requests = [item.request for item in items]
        attempt_s = max(item.attempt_s for item in items)
        dues = [item.due for item in items]
        # The shared call lasts as long as its most patient append needs; callers with an
        # earlier deadline of their own stop waiting at it (see append()).
        timeout_s = None if None in dues else \
            max(d for d in dues if d is not None) - asyncio.get_running_loop().time()
        owners: dict[str, str] = {}
        try:
            resp = await self._call("AppendBatch", journal_pb2.AppendBatchRequest(requests=requests),
                                    attempt_s=attempt_s, timeout_s=timeout_s, prefer=address, owners=owners,
                                    retry=all(r.request_id for r in requests))
        except VecraftError as err:
            for item in items:
                if not item.future.done():
                    item.future.set_exception(err)
            return
        for item, result in zip(items, resp.results, strict=True):
            if item.future.done():
                continue  # the caller went away
            partition = item.request.partition
            if not result.error:
                self.router.succeeded(address, partition, owner_bound=True)
                item.future.set_result(result.response)
                continue
            refusal = error_class(result.error)(result.message, retry_after_ms=result.retry_after_ms or None)
            if isinstance(refusal, NotOwner):
                owner = owners.get(partition)
                self.router.not_owner(partition, address, owner)
                if self._retry_later(item, 0.0 if owner and not self.router.suspect(owner) else None):
                    continue
            item.future.set_exception(refusal)

    def _retry_later(self, item: _Pending, delay: float | None) -> bool:
        """Queue ``item`` again after ``delay`` s (None: its next back-off step); False when its retry
        time is up."""
        loop = asyncio.get_running_loop()
        if delay is None:
            delay = _OWNER_BACKOFF.nth(item.tries)
            item.tries += 1
        if loop.time() + delay > item.retry_until:
            return False

        def requeue() -> None:
            if item.future.done():
                return
            self._batch.append(item)
            if self._batches_in_flight < _BATCHES_IN_FLIGHT:
                self._send_batch()

        loop.call_later(delay, requeue)
        return True

    async def get_offset(self, partition: str, *, timeout_s: float | None = None) -> tuple[int, int]:
        """``(offset, hlc)`` of the latest committed entry; ``(0, 0)`` for an empty partition."""
        return (await self.get_offsets([partition], timeout_s=timeout_s))[partition]

    async def get_offsets(self, partitions: Sequence[str] = (), *,
                          timeout_s: float | None = None) -> dict[str, tuple[int, int]]:
        """Head of each partition (all of them when ``partitions`` is empty); any instance answers."""
        resp = await self._call("GetOffset", journal_pb2.GetOffsetRequest(partitions=partitions),
                                attempt_s=self.timeouts.get_offset_s, timeout_s=timeout_s)
        return {o.partition: (o.offset, o.hlc) for o in resp.offsets}

    async def pull_page(self, partition: str, from_offset: int, to_offset: int = 0, *,
                        max_entries: int = 0, max_bytes: int = 0,
                        timeout_s: float | None = None) -> journal_pb2.PullWALResponse:
        """One PullWAL call (the server caps its size); any instance answers."""
        req = journal_pb2.PullWALRequest(partition=partition, from_offset=from_offset, to_offset=to_offset,
                                         max_entries=max_entries, max_bytes=max_bytes)
        return await self._call("PullWAL", req, attempt_s=self.timeouts.pull_s, timeout_s=timeout_s,
                                partition=partition)

    async def pull(self, partition: str, from_offset: int, to_offset: int = 0, *,
                   timeout_s: float | None = None) -> list[journal_pb2.JournalEntry]:
        """Every committed entry ``from_offset..to_offset`` (0 = the head as of this call), paging.

        ``timeout_s`` bounds the whole pull, every page included; by default
        each page has the PullWAL deadline.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def left() -> float | None:
            return None if deadline is None else deadline - time.monotonic()

        first = await self.pull_page(partition, from_offset, to_offset, timeout_s=left())
        entries = list(first.entries)
        target = min(to_offset, first.latest_offset) if to_offset else first.latest_offset
        while entries and entries[-1].offset < target:
            page = await self.pull_page(partition, entries[-1].offset + 1, target, timeout_s=left())
            if not page.entries:
                break
            entries.extend(page.entries)
        return entries

    def subscribe(self, partition: str, from_offset: int, *, replica_id: str, shards: Sequence[int] = (),
                  role: str = "replica", delay_ms: int = 0, after_hlc: int = 0) -> Subscription:
        """A resuming stream of entries from ``from_offset`` (see :class:`Subscription`).

        ``after_hlc``: the HLC the subscriber holds for the entry at ``from_offset - 1`` (0: none);
        the journal checks it on this subscribe and every resume.
        """
        return Subscription(self, partition, from_offset, replica_id=replica_id, shards=shards, role=role,
                            delay_ms=delay_ms, after_hlc=after_hlc)

    async def report_applied(self, partition: str, replica_id: str, applied_offset: int, *,
                             timeout_s: float | None = None) -> None:
        """Tell the partition's owner this replica applied every entry up to ``applied_offset``."""
        req = journal_pb2.ReportAppliedRequest(partition=partition, replica_id=replica_id,
                                               applied_offset=applied_offset)
        await self._call("ReportApplied", req, attempt_s=self.timeouts.report_applied_s, timeout_s=timeout_s,
                         partition=partition, owner_bound=True)

    async def leave(self, partition: str, replica_id: str, *, timeout_s: float | None = None) -> bool:
        """Tell the partition's owner this consumer stops consuming it on purpose (idempotent).

        The journal forgets it at once: writes no longer wait for it nor count it in
        ``replicas_expected``, instead of for ``--replica-liveness-ms`` after its stream closed.
        Call it once its streams and reports stopped, or earlier if it must stop counting at once
        (reports sent meanwhile are ignored; a new subscription joins again). Returns True if the
        journal knew the consumer.
        """
        req = journal_pb2.LeaveRequest(partition=partition, replica_id=replica_id)
        resp = await self._call("Leave", req, attempt_s=self.timeouts.leave_s, timeout_s=timeout_s,
                                partition=partition, owner_bound=True)
        return bool(resp.known)

    async def lookup_request(self, request_id: str, *,
                             timeout_s: float | None = None) -> journal_pb2.LookupRequestResponse:
        return await self._call("LookupRequest", journal_pb2.LookupRequestRequest(request_id=request_id),
                                attempt_s=self.timeouts.lookup_s, timeout_s=timeout_s)

    async def stats(self, *, timeout_s: float | None = None) -> journal_pb2.StatsResponse:
        """One instance's Stats (with several instances, consumers are those of the partitions it owns)."""
        return await self._call("Stats", journal_pb2.StatsRequest(), attempt_s=self.timeouts.stats_s,
                                timeout_s=timeout_s)

    async def trim(self, partition: str, before_offset: int, *,
                   timeout_s: float | None = None) -> journal_pb2.TrimResponse:
        """Ask the partition's owner to remove its stored entries below ``before_offset`` (the compactor)."""
        req = journal_pb2.TrimRequest(partition=partition, before_offset=before_offset)
        return await self._call("Trim", req, attempt_s=self.timeouts.stats_s, timeout_s=timeout_s,
                                partition=partition, owner_bound=True)

    def _open_stream(self, req: journal_pb2.SubscribeRequest) -> tuple[grpc.aio.UnaryStreamCall, str]:
        """A Subscribe call to the partition's owner (as far as this client knows) and its address."""
        address = self.router.target(req.partition)
        return self._stub(address).Subscribe(req), address


class Subscription:
    """Async iterator of a partition's entries: offset order, gapless, each offset at most once.

    A background task reads the Subscribe stream into a bounded buffer and
    reconnects with backoff after a disconnect or a journal restart, from the
    last offset received + 1, telling the journal the HLC of that last entry:
    a journal whose entry there differs (it lost or re-used offsets) refuses
    the stream and the iteration raises ``HistoryMismatch``, so entries of
    another history never follow the ones received. ``delay_ms`` holds each entry back until its
    commit time (HLC physical ms) + ``delay_ms`` - the storage-lag test knob;
    it never slows :meth:`JournalClient.pull`. Errors the journal answers
    with on purpose (unknown partition, bad offset) end the iteration by
    raising them; transport errors are retried.
    """

    def __init__(self, client: JournalClient, partition: str, from_offset: int, *, replica_id: str,
                 shards: Sequence[int], role: str, delay_ms: int, after_hlc: int = 0) -> None:
        self.partition = partition
        self.replica_id = replica_id
        self.delay_ms = delay_ms
        self.head_offset = 0
        self.head_hlc = 0
        self._client = client
        self._shards = list(shards)
        self._role = role
        self._received = from_offset - 1  # last offset put into the buffer (or skipped)
        self._received_hlc = after_hlc  # its HLC (0: unknown, not checked on resume)
        self._buffer: collections.deque[journal_pb2.JournalEntry] = collections.deque()
        self._buffer_bytes = 0
        self._changed = asyncio.Event()  # buffer grew, or an error / close happened
        self._drained = asyncio.Event()  # buffer shrank
        self._error: VecraftError | None = None
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._call: grpc.aio.UnaryStreamCall | None = None
        with contextlib.suppress(RuntimeError):
            # Start streaming now when a loop runs, so head_offset is fresh before iteration starts.
            asyncio.get_running_loop()
            self._start()

    # ---- consumer side -------------------------------------------------------------
    def __aiter__(self) -> AsyncIterator[journal_pb2.JournalEntry]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[journal_pb2.JournalEntry]:
        self._start()
        while True:
            if self._buffer:
                entry = self._buffer[0]
                wait_ms = physical_ms(entry.hlc) + self.delay_ms - wall_clock_ms() if self.delay_ms else 0
                if wait_ms <= 0:
                    self._pop()
                    yield entry
                    continue
                # skip_to() may drop the entry meanwhile; the event wakes us for that too.
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait_ms / 1000.0)
                continue
            if self._error is not None:
                raise self._error
            if self._closed:
                return
            self._changed.clear()
            await self._changed.wait()

    def _pop(self) -> journal_pb2.JournalEntry:
        entry = self._buffer.popleft()
        self._buffer_bytes -= len(entry.payload)
        self._drained.set()
        return entry

    def oldest_pending_hlc(self) -> int:
        """HLC of the oldest entry received but not yet yielded, else 0."""
        return self._buffer[0].hlc if self._buffer else 0

    def skip_to(self, offset: int, hlc: int) -> None:
        """The consumer applied up to ``offset`` (whose entry has ``hlc``) itself, by pulling: never
        yield those entries."""
        while self._buffer and self._buffer[0].offset <= offset:
            self._pop()
        if offset > self._received:
            self._received, self._received_hlc = offset, hlc
        self._changed.set()

    async def close(self) -> None:
        self._closed = True
        if self._call is not None:
            self._call.cancel()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._changed.set()

    # ---- stream side -----------------------------------------------------------------
    def _start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"journal-subscription:{self.partition}:{self.replica_id}")

    async def _run(self) -> None:
        try:
            await self._stream()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A reader that dies unseen would leave the consumer waiting forever on a
            # stream nobody reads: the consumer's iteration raises this instead.
            log.exception("journal subscription reader failed", extra={
                "partition": self.partition, "replica_id": self.replica_id})
            err = VecraftError(f"journal subscription of {self.partition} failed: {exc!r}")
            err.__cause__ = exc
            self._error = err
            self._changed.set()

    async def _stream(self) -> None:
        backoff = Backoff(_BACKOFF_MIN_S, _BACKOFF_MAX_S, jitter=0.5)
        router = self._client.router
        while not self._closed:
            req = journal_pb2.SubscribeRequest(partition=self.partition, from_offset=self._received + 1,
                                               replica_id=self.replica_id, shards=self._shards,
                                               role=self._role, after_hlc=self._received_hlc)
            pause: float | None = None  # None: the growing back-off
            address = ""
            try:
                call, address = self._client._open_stream(req)
                self._call = call
                answered = False
                silence_s = self._client.timeouts.stream_silence_s
                while True:
                    try:
                        event = await asyncio.wait_for(call.read(), silence_s)
                    except TimeoutError:
                        call.cancel()
                        raise _StreamSilent(f"no entries and no heartbeat for {silence_s:g}s") from None
                    if event is grpc.aio.EOF:
                        # The server ended the stream (shutting down, or it stopped serving the
                        # partition): reconnect; it names the owner if another instance has it.
                        pause = _OWNER_BACKOFF_MIN_S
                        break
                    if not answered:  # this instance serves the partition's stream
                        answered = True
                        router.succeeded(address, self.partition, owner_bound=True)
                    backoff.reset()
                    await self._accept(event)
            except _StreamGap as gap:
                log.warning("journal subscription saw a gap; resubscribing", extra={
                    "partition": self.partition, "replica_id": self.replica_id, "error": str(gap)})
            except _StreamSilent as silent:
                router.failed(address)
                log.warning("journal subscription went silent; resubscribing", extra={
                    "partition": self.partition, "replica_id": self.replica_id,
                    "journal": address, "resume_from": self._received + 1, "error": str(silent)})
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
                if isinstance(err, NotOwner):
                    # Another instance owns the partition (and tracks its consumers): go there.
                    owner = owner_hints(exc.trailing_metadata()).get(self.partition)
                    router.not_owner(self.partition, address, owner)
                    pause = _OWNER_BACKOFF_MIN_S if owner else _OWNER_BACKOFF_MAX_S
                elif exc.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                    grpc.StatusCode.FAILED_PRECONDITION):
                    self._error = err
                    self._changed.set()
                    return
                elif exc.code() == grpc.StatusCode.CANCELLED and self._closed:
                    return
                else:
                    if exc.code() == grpc.StatusCode.UNAVAILABLE:
                        router.failed(address)  # the next attempt tries another instance first
                    log.info("journal subscription interrupted; reconnecting", extra={
                        "partition": self.partition, "replica_id": self.replica_id, "journal": address,
                        "resume_from": self._received + 1, "error": err.message})
            if pause is not None:
                await asyncio.sleep(pause)
                continue
            await backoff.sleep()

    async def _accept(self, event: journal_pb2.SubscribeEvent) -> None:
        if event.head_offset >= self.head_offset:
            self.head_offset, self.head_hlc = event.head_offset, event.head_hlc
        for entry in event.entries:
            if entry.offset <= self._received:
                continue  # skipped by skip_to() or already received before a reconnect
            if entry.offset != self._received + 1:
                raise _StreamGap(f"offset {entry.offset} arrived after {self._received}")
            self._buffer.append(entry)
            self._buffer_bytes += len(entry.payload)
            self._received, self._received_hlc = entry.offset, entry.hlc
        if event.entries:
            self._changed.set()
        while not self._closed and (len(self._buffer) > _BUFFER_ENTRIES
                                    or self._buffer_bytes > _BUFFER_BYTES):
            self._drained.clear()
            await self._drained.wait()
