"""What every backend's partition keeps in memory: the offset index and the append front.

Both backends hold, per partition, the HLC and cumulative byte size of every
entry (index = offset - 1) and a journal-wide request-id index, and queue
appends for one writer task that commits them in groups. The bookkeeping that
does not depend on where entries are stored lives here once; a backend adds
its storage (files, a JetStream stream), its writer loop and ``read``.

A writer that fails (raises anything, or returns before the log is closing)
fails its partition visibly: every queued and later append of it is answered
``Unavailable`` naming the partition and the cause, the failure is counted
(``vecraft_journal_partition_failures_total``) and the backend reports the
partition in :meth:`IndexedJournalBackend.failed_partitions`, which the
service turns into readiness false. Committed entries stay readable, and a
retry of a request id already committed is still answered.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import re
from array import array
from collections.abc import Coroutine, Mapping, MutableMapping
from typing import Any, Generic, TypeVar

from vecraft.services.journal_service import metrics
from vecraft.services.journal_service.wal import Appended, JournalBackend, LogWrite, PartitionLog, Position
from vecraft.shared.common.errors import NotFound, Trimmed, Unavailable

log = logging.getLogger(__name__)

PendingAppend = tuple[LogWrite, "asyncio.Future[Appended]"]


class IndexedPartitionLog(PartitionLog):
    """A PartitionLog with an in-memory offset index and a group-commit queue.

    ``request_ids`` and ``inflight`` are shared by every partition of one
    backend, so a request id is unique across the whole journal
    (both backends pass a :class:`~.request_ids.RequestIdIndex`, bounded by
    its retention window; any mapping works).
    """

    def __init__(self, name: str, *, request_ids: MutableMapping[str, Position],
                 inflight: dict[str, asyncio.Future[Appended]]) -> None:
        self.name = name
        self._rids = request_ids
        self._inflight = inflight
        # Index by offset - 1 - _base: offsets 1.._base were trimmed (:meth:`_forget_below`).
        self._base = 0
        self._hlc = array("Q")
        self._cum = array("Q")  # bytes of entries 1..offset (trimmed ones included: absolute)
        self._cum_base = 0  # bytes of the trimmed entries 1.._base
        self._queue: list[PendingAppend] = []
        self._writing: list[PendingAppend] = []  # the batch the writer took last (see _take_queue)
        self._failed: BaseException | None = None
        self._wake = asyncio.Event()
        self._committed = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self._head_metric = metrics.HEAD_OFFSET.labels(name)
        self._batch_metric = metrics.GROUP_COMMIT_ENTRIES.labels(name)

    # ---- PartitionLog ------------------------------------------------------------
    @property
    def head(self) -> tuple[int, int]:
        n = len(self._hlc)
        return (self._base + n, self._hlc[n - 1]) if n else (0, 0)

    @property
    def first_offset(self) -> int:
        return self._base + 1

    @property
    def _last(self) -> int:
        """The newest indexed offset (0 when empty)."""
        return self._base + len(self._hlc)

    async def wait_for(self, offset: int, timeout: float) -> bool:
        if self._last >= offset:
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._committed.wait(), timeout)
        return self._last >= offset

    def hlc_at(self, offset: int) -> int:
        return self._hlc[offset - 1 - self._base] if self._base < offset <= self._last else 0

    def bytes_after(self, offset: int) -> int:
        last = self._last
        if offset >= last or not self._cum:
            return 0
        before = self._cum[offset - 1 - self._base] if offset > self._base else self._cum_base
        return self._cum[-1] - before

    @property
    def failure(self) -> str | None:
        """Why this partition refuses writes (its writer failed), else None."""
        return None if self._failed is None else _describe(self._failed)

    # ---- for backends ------------------------------------------------------------
    def _start_writer(self, body: Coroutine[Any, Any, None]) -> None:
        """Run ``body`` (the backend's writer loop) as this partition's writer task."""
        self._writer = asyncio.get_running_loop().create_task(self._run_writer(body),
                                                              name=f"journal-writer:{self.name}")

    async def _run_writer(self, body: Coroutine[Any, Any, None]) -> None:
        try:
            await body
        except Exception as exc:  # noqa: BLE001 - whatever stops the writer fails the partition
            self._writer_failed(exc)
            return
        if not self._closing:
            self._writer_failed(RuntimeError("the writer task ended while the journal was running"))

    def _take_queue(self, count: int | None = None) -> list[PendingAppend]:
        """Hand everything queued (or the first ``count``) to the writer; it stays failable until the
        next take."""
        if count is None or count >= len(self._queue):
            self._writing, self._queue = self._queue, []
        else:
            self._writing, self._queue = self._queue[:count], self._queue[count:]
        return self._writing

    def _writer_failed(self, exc: BaseException) -> None:
        """The writer cannot go on: refuse this partition's appends from now on (see module doc)."""
        if self._failed is not None:
            return
        self._failed = exc
        log.error("journal writer of partition %s failed; the partition refuses writes until the "
                  "journal restarts", self.name, exc_info=exc,
                  extra={"partition": self.name, "error": _describe(exc)})
        metrics.PARTITION_FAILURES.labels(self.name).inc()
        metrics.PARTITION_FAILED.labels(self.name).set(1)
        err = self._failed_error()
        for write, fut in self._writing + self._queue:
            if self._inflight.get(write.request_id) is fut:
                del self._inflight[write.request_id]
            if not fut.done():
                fut.set_exception(err)
        self._writing, self._queue = [], []

    def _failed_error(self) -> Unavailable:
        assert self._failed is not None
        return Unavailable(f"journal partition {self.name} failed and refuses writes until the journal "
                           f"restarts: {_describe(self._failed)}",
                           details={"partition": self.name, "cause": _describe(self._failed)})

    async def _already_appended(self, request_id: str) -> Appended | None:
        """The position of ``request_id`` if it is committed or being committed, else None."""
        if not request_id:
            return None
        known = self._rids.get(request_id)
        if known is not None:
            return Appended(known, True)
        running = self._inflight.get(request_id)
        if running is not None:
            done = await asyncio.shield(running)
            return Appended(done.position, True)
        return None

    async def _enqueue(self, write: LogWrite) -> Appended:
        """Queue ``write`` for the writer task and wait until it is durable."""
        if self._failed is not None:
            raise self._failed_error()
        if self._closing:
            raise Unavailable(f"journal partition {self.name} is shutting down", retry_after_ms=500)
        fut: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.append((write, fut))
        if write.request_id:
            self._inflight[write.request_id] = fut
        self._wake.set()
        # Shielded: a caller that goes away must not cancel a write other callers may wait on.
        return await asyncio.shield(fut)

    def _last_to_read(self, from_offset: int, to_offset: int, max_entries: int, max_bytes: int) -> int:
        """Last offset of a read starting at ``from_offset`` within the limits (always >= 1 entry);
        0 when there is nothing to read.

        Raises:
            Trimmed: ``from_offset`` is below :attr:`first_offset`.
        """
        self._check_not_trimmed(from_offset)
        last = min(to_offset, from_offset + max(1, max_entries) - 1, self._last)
        if from_offset < 1 or last < from_offset:
            return 0
        b = self._base
        before = self._cum[from_offset - 2 - b] if from_offset - 1 > b else self._cum_base
        if self._cum[last - 1 - b] - before > max_bytes:
            found = bisect.bisect_right(self._cum, before + max_bytes, from_offset - 1 - b, last - b)
            last = max(from_offset, found + b)
        return last

    def _check_not_trimmed(self, from_offset: int) -> None:
        if from_offset <= self._base:
            raise trimmed_error(self.name, from_offset, self.first_offset)

    def _forget_below(self, first: int) -> None:
        """Drop the index of every offset below ``first`` (their entries were trimmed from storage)."""
        n = min(first - 1, self._last - 1) - self._base  # the head entry always stays indexed
        if n <= 0:
            return
        self._cum_base = self._cum[n - 1]
        del self._hlc[:n]
        del self._cum[:n]
        self._base += n
        metrics.FIRST_OFFSET.labels(self.name).set(self._base + 1)

    def _committed_now(self) -> None:
        """New entries are durable: update the head metric and wake ``wait_for`` callers."""
        self._head_metric.set(self._last)
        event, self._committed = self._committed, asyncio.Event()
        event.set()


L = TypeVar("L", bound=IndexedPartitionLog)


class IndexedJournalBackend(JournalBackend, Generic[L]):
    """Partition lookup and the journal-wide request-id index shared by both backends.

    A backend fills ``_names`` (partitions in order), ``_logs`` (one log each)
    and ``_rids`` (request id -> position, shared with its logs).
    """

    _names: list[str]
    _logs: dict[str, L]
    _rids: MutableMapping[str, Position]

    def partitions(self) -> list[str]:
        return list(self._names)

    def partition(self, name: str) -> L:
        try:
            return self._logs[name]
        except KeyError:
            raise NotFound(f"unknown journal partition {name!r}; known partitions: "
                           f"{', '.join(self._names)}", details={"partitions": self._names}) from None

    def lookup(self, request_id: str) -> Position | None:
        return self._rids.get(request_id)

    def failed_partitions(self) -> dict[str, str]:
        return {name: plog.failure for name, plog in self._logs.items() if plog.failure is not None}

    def _refuse_unknown_partitions(self, where: str, found: Mapping[str, str]) -> None:
        """Refuse to start beside partitions holding entries that this journal does not serve.

        Not serving them would hide acknowledged writes: typically ``data-3``
        after ``--data-partitions`` was lowered from 4 to 2, whose tenants would
        also be routed to other partitions from then on.

        Args:
            where: the storage, for the message ("journal data directory /d").
            found: partitions outside ``_names`` holding entries -> what they hold.

        Raises:
            RuntimeError: ``found`` is not empty; the message names each partition and what to do.
        """
        if not found:
            return
        listed = ", ".join(f"'{name}' ({what})" for name, what in sorted(found.items()))
        served = ", ".join(self._names)
        data = [int(m.group(1)) for name in found if (m := re.fullmatch(r"data-(\d+)", name))]
        if data:
            wanted = max(data) + 1
            advice = (f"They were written with a higher --data-partitions (at least {wanted}). Lowering "
                      f"--data-partitions is not supported: the tenants of those partitions would be routed "
                      f"to others and their acknowledged writes hidden. Start with the --data-partitions the "
                      f"journal was written with (at least {wanted})")
        else:
            advice = "Start with the configuration that wrote them"
        raise RuntimeError(f"{where} holds entries of journal partitions this journal does not serve: "
                           f"{listed}; it serves {served}. {advice}; nothing was changed")


def trimmed_error(partition: str, from_offset: int, first: int) -> Trimmed:
    """The error of a read below the partition's first stored offset."""
    return Trimmed(f"journal partition {partition} no longer holds offset {from_offset}: entries below "
                   f"{first} were trimmed by the compactor (docs/compactor.md); a replica that needs them "
                   f"rebuilds from a backup or a peer's copy", details={"partition": partition,
                                                                        "first_offset": first})


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
