"""The local (file) journal backend: segmented append-only files, one directory per partition.

Write path (one writer task per partition): appends queue up while the
previous batch is being written; the writer takes everything queued, stamps
offsets and HLCs in order, and hands the batch to an I/O thread that encodes
the records, writes them with one ``write()`` per segment and covers them all
with one ``fsync`` (group commit). Only then are the entries indexed, made
visible to readers and their callers answered.

Read path: an in-memory index (offset -> segment, position, length, HLC,
cumulative bytes) rebuilt from the records on start; a range is read with one
``pread`` per segment and every record is verified again (CRC32C) before it is
served.

Request ids are indexed across all partitions from the records themselves, so
idempotency survives restarts without a separate file; the index keeps only
the ids inside its retention window (:mod:`.request_ids`).
"""

from __future__ import annotations

import asyncio
import bisect
import fcntl
import logging
import os
import threading
import time
from array import array
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vecraft.services.journal_service import metrics
from vecraft.services.journal_service.wal import (
    Appended,
    JournalCorruption,
    LogWrite,
    Position,
    TrimResult,
)
from vecraft.services.journal_service.wal.indexed import (
    IndexedJournalBackend,
    IndexedPartitionLog,
    PendingAppend,
)
from vecraft.services.journal_service.wal.records import CorruptRecord, Record, encode_parts, iter_records
from vecraft.services.journal_service.wal.request_ids import (
    DEFAULT_RETENTION,
    RequestIdIndex,
    RequestIdRetention,
)
from vecraft.services.journal_service.wal.segments import (
    Segment,
    create_segment,
    log_start,
    recover,
    stored_bytes,
    trim_segments,
)
from vecraft.shared.common.errors import ClockSkew, Unavailable
from vecraft.shared.hlc import HybridLogicalClock, wall_clock_ms
from vecraft.shared.rpc.v1 import journal_pb2

log = logging.getLogger(__name__)

# Reads bigger than this run in the I/O pool so the event loop keeps serving.
_INLINE_READ_BYTES = 1 << 20
_IOV_MAX = min(os.sysconf("SC_IOV_MAX"), 1024)
# (offset, hlc, request id, shards, payload) as handed to the I/O thread.
_Stamped = tuple[int, int, bytes, tuple[int, ...], bytes]
#: Where versions before transactions moved into the data partitions kept them.
LEGACY_TXN_PARTITION = "txn"


class LocalPartitionLog(IndexedPartitionLog):
    """One partition stored as segment files under ``directory``."""

    def __init__(self, name: str, directory: Path, *, clock: HybridLogicalClock,
                 request_ids: RequestIdIndex, inflight: dict[str, asyncio.Future[Appended]],
                 segment_bytes: int, fsync: bool, io: ThreadPoolExecutor) -> None:
        super().__init__(name, request_ids=request_ids, inflight=inflight)
        self._rid_index = request_ids
        self._dir = directory
        self._clock = clock
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._io = io
        self._segments: list[Segment] = []
        self._seg_firsts: list[int] = []
        # Guards the segment list between the writer's I/O thread (a new segment) and a trim.
        self._seg_lock = threading.Lock()
        # Trimmed segments still open because a read may use them; closed when no read is running.
        self._retired: list[Segment] = []
        self._reads = 0
        # Index by offset - 1 - _base, as the base class's arrays.
        self._pos = array("Q")
        self._len = array("Q")
        self._fsync_metric = metrics.FSYNC_SECONDS.labels(name)

    # ---- lifecycle ---------------------------------------------------------------
    def open(self) -> None:
        """Recover the segment files (blocking; run before serving).

        Request ids go to the index as recovered ones: the backend calls
        ``recovery_done`` once every partition is read.
        """
        def sink(pos: int, rec: Record) -> None:
            self._index(pos, rec.size, rec.hlc)
            if rec.request_id:
                self._rid_index.recovered(rec.request_id, Position(self.name, rec.offset, rec.hlc))

        self._base = log_start(self._dir) - 1
        self._segments, cut = recover(self._dir, self.name, sink)
        metrics.TORN_TAIL_BYTES.labels(self.name).inc(cut)
        metrics.FIRST_OFFSET.labels(self.name).set(self.first_offset)
        self._seg_firsts = [s.first_offset for s in self._segments]
        self._head_metric.set(self._last)
        self._start_writer(self._write_loop())

    async def close(self) -> None:
        """Commit what is queued, then stop the writer and close the files."""
        self._closing = True
        self._wake.set()
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)
        for _, fut in self._queue:
            if not fut.done():
                fut.set_exception(Unavailable(f"journal partition {self.name} is shutting down"))
        self._queue.clear()
        for seg in self._segments + self._retired:
            seg.close()
        self._segments.clear()
        self._retired.clear()

    # ---- PartitionLog ------------------------------------------------------------
    async def refresh(self) -> tuple[int, int]:
        """The head: this process is the only writer of its files (the LOCK), so the index is current."""
        return self.head

    async def append(self, write: LogWrite) -> Appended:
        existing = await self._already_appended(write.request_id)
        if existing is not None:
            return existing
        return await self._enqueue(write)

    async def read(self, from_offset: int, to_offset: int, *, max_entries: int,
                   max_bytes: int) -> list[journal_pb2.JournalEntry]:
        last = self._last_to_read(from_offset, to_offset, max_entries, max_bytes)
        if not last:
            return []
        ranges = self._ranges(from_offset, last)
        total = sum(length for _, _, length, _ in ranges)
        if total <= _INLINE_READ_BYTES:
            return self._read_ranges(ranges)
        # The files stay open while the pool reads them, even if a trim removes them meanwhile.
        self._reads += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._io, self._read_ranges, ranges)
        finally:
            self._reads -= 1
            self._close_retired()

    def size(self) -> tuple[int, int]:
        return sum(s.size for s in self._segments), len(self._segments)

    async def trim(self, before: int) -> TrimResult:
        """Delete the segment files that hold only offsets below ``before`` (never the active one)."""
        loop = asyncio.get_running_loop()
        with self._seg_lock:
            candidates = list(self._segments)
        trimmed = await loop.run_in_executor(self._io, trim_segments, self._dir, candidates, before)
        if not trimmed:
            return TrimResult(self.first_offset, 0, 0)
        first = candidates[len(trimmed)].first_offset
        with self._seg_lock:
            del self._segments[:len(trimmed)]
            del self._seg_firsts[:len(trimmed)]
        entries = first - self.first_offset
        freed = sum(seg.size for seg in trimmed)
        self._forget_below(first)
        self._retired.extend(trimmed)
        self._close_retired()
        metrics.TRIMMED_ENTRIES.labels(self.name).inc(entries)
        metrics.TRIMMED_BYTES.labels(self.name).inc(freed)
        log.info("trimmed journal partition", extra={"partition": self.name, "first_offset": first,
                                                     "entries": entries, "bytes": freed,
                                                     "segments": len(trimmed)})
        return TrimResult(first, entries, freed)

    def _close_retired(self) -> None:
        if self._reads == 0:
            for seg in self._retired:
                seg.close()
            self._retired.clear()

    def _forget_below(self, first: int) -> None:
        n = min(first - 1, self._last - 1) - self._base
        if n > 0:
            del self._pos[:n]
            del self._len[:n]
        super()._forget_below(first)

    # ---- index and reads ---------------------------------------------------------
    def _index(self, pos: int, size: int, hlc: int) -> None:
        # Segments are found by offset (bisect on their first offsets), so only the position is kept.
        self._pos.append(pos)
        self._len.append(size)
        self._hlc.append(hlc)
        self._cum.append((self._cum[-1] if self._cum else 0) + size)

    def _ranges(self, first: int, last: int) -> list[tuple[Segment, int, int, int]]:
        """``(segment, byte position, byte length, first offset)`` covering ``first..last``."""
        out = []
        offset = first
        while offset <= last:
            seg_index = bisect.bisect_right(self._seg_firsts, offset) - 1
            seg = self._segments[seg_index]
            next_first = (self._seg_firsts[seg_index + 1] if seg_index + 1 < len(self._seg_firsts)
                          else last + 1)
            end = min(last, next_first - 1)
            start_pos = self._pos[offset - 1 - self._base]
            end_pos = self._pos[end - 1 - self._base] + self._len[end - 1 - self._base]
            out.append((seg, start_pos, end_pos - start_pos, offset))
            offset = end + 1
        return out

    def _read_ranges(self, ranges: Sequence[tuple[Segment, int, int, int]]) -> list[journal_pb2.JournalEntry]:
        entries = []
        for seg, pos, length, first in ranges:
            data = os.pread(seg.fd, length, pos)
            expected = first
            try:
                if len(data) != length:
                    raise CorruptRecord(pos, f"short read: {len(data)} of {length} bytes")
                for _, rec in iter_records(data):
                    if rec.offset != expected:
                        raise CorruptRecord(pos, f"offset {rec.offset} where {expected} belongs")
                    entries.append(journal_pb2.JournalEntry(
                        partition=self.name, offset=rec.offset, hlc=rec.hlc, request_id=rec.request_id,
                        payload=rec.payload, shards=rec.shards))
                    expected += 1
            except CorruptRecord as bad:
                log.error("corrupt record served from %s: %s", seg.path, bad,
                          extra={"partition": self.name, "offset": expected})
                raise JournalCorruption(f"partition {self.name} offset {expected}: {bad}") from bad
        return entries

    # ---- write path --------------------------------------------------------------
    async def _write_loop(self) -> None:
        """Commit whatever is queued, batch after batch; ends once closing and drained.

        Any error (a failed write or fsync, the clock failing to persist its
        high-water mark) ends it; the base class then fails the partition.
        """
        while True:
            if not self._queue:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            await self._commit(self._take_queue())

    def _stamp(self, batch: list[PendingAppend]) -> tuple[list[_Stamped], list[PendingAppend]]:
        """Assign offsets and HLCs in queue order; refuse writes whose HLC is too far ahead."""
        stamped: list[_Stamped] = []
        accepted: list[PendingAppend] = []
        offset = self._last
        for write, fut in batch:
            try:
                hlc = self._clock.update(write.client_hlc) if write.client_hlc else self._clock.now()
            except ClockSkew as err:
                self._inflight.pop(write.request_id, None)
                if not fut.done():
                    fut.set_exception(err)
                continue
            offset += 1
            stamped.append((offset, hlc, write.request_id.encode(), write.shards, write.payload))
            accepted.append((write, fut))
        return stamped, accepted

    async def _commit(self, batch: list[PendingAppend]) -> None:
        stamped, accepted = self._stamp(batch)
        if not stamped:
            return
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        # A failed write or fsync raises out of the writer loop: the partition becomes read-only
        # rather than risk serving what the disk lost.
        placed = await loop.run_in_executor(self._io, self._write_batch, stamped)
        self._fsync_metric.observe(time.perf_counter() - started)
        self._batch_metric.observe(len(stamped))
        for (_, hlc, _, _, _), (pos, size) in zip(stamped, placed, strict=True):
            self._index(pos, size, hlc)
        for (write, fut), (offset, hlc, _, _, _) in zip(accepted, stamped, strict=True):
            position = Position(self.name, offset, hlc)
            if write.request_id:
                self._rids[write.request_id] = position
                self._inflight.pop(write.request_id, None)
            if not fut.done():
                fut.set_result(Appended(position, False))
        self._committed_now()

    def _write_batch(self, stamped: list[_Stamped]) -> list[tuple[int, int]]:
        """Encode, write and fsync ``stamped`` (I/O thread). Returns (position, size) of each.

        Rolls to a new segment at a record boundary when the active one would
        pass ``segment_bytes``; the full segment is fsync'd before the new file
        exists, so only the newest file can ever hold a torn record.
        """
        placed: list[tuple[int, int]] = []
        with self._seg_lock:
            seg = self._segments[-1]
        chunk: list[bytes] = []
        chunk_bytes = 0
        for offset, hlc, rid, shards, payload in stamped:
            head, body = encode_parts(offset, hlc, rid, shards, payload)
            size = len(head) + len(body)
            if seg.size + chunk_bytes > 0 and seg.size + chunk_bytes + size > self._segment_bytes:
                self._flush(seg, chunk)
                seg.size += chunk_bytes
                new = create_segment(self._dir, offset)
                # Publish the segment before the index points into it (readers only see committed offsets).
                with self._seg_lock:
                    self._segments.append(new)
                    self._seg_firsts.append(offset)
                seg, chunk, chunk_bytes = new, [], 0
            placed.append((seg.size + chunk_bytes, size))
            chunk += (head, body)
            chunk_bytes += size
        self._flush(seg, chunk)
        seg.size += chunk_bytes
        return placed

    def _flush(self, seg: Segment, chunk: list[bytes]) -> None:
        """Write ``chunk`` at the end of ``seg`` and fsync it; ``seg.size`` is unchanged.

        ``pwritev`` hands the payloads to the kernel without joining them
        first (a join would copy every byte once more while holding the GIL).
        """
        at = seg.size
        try:
            for i in range(0, len(chunk), _IOV_MAX):
                parts = chunk[i:i + _IOV_MAX]
                want = sum(len(p) for p in parts)
                done = os.pwritev(seg.fd, parts, at)
                if done < want:  # short write (rare): finish this slice byte-wise
                    rest = memoryview(b"".join(parts))[done:]
                    while rest:
                        n = os.pwrite(seg.fd, rest, at + done)
                        rest, done = rest[n:], done + n
                at += want
            if self._fsync:
                os.fdatasync(seg.fd)
        except BaseException:
            # Leave no half-written batch behind for readers or recovery.
            os.ftruncate(seg.fd, seg.size)
            raise


class LocalJournalBackend(IndexedJournalBackend[LocalPartitionLog]):
    """Every partition under ``data_dir/<partition>/``; an exclusive lock file guards the directory.

    ``request_id_retention`` bounds the request-id index (the idempotency
    window, :mod:`.request_ids`); ``wall_clock`` measures its ages and must be
    the wall clock ``clock`` follows (both injectable for tests).
    """

    def __init__(self, data_dir: Path, partitions: Sequence[str], *, clock: HybridLogicalClock,
                 segment_bytes: int = 64 << 20, fsync: bool = True,
                 request_id_retention: RequestIdRetention = DEFAULT_RETENTION,
                 wall_clock: Callable[[], int] = wall_clock_ms) -> None:
        self._dir = Path(data_dir)
        self._names = list(partitions)
        self._clock = clock
        self._segment_bytes = segment_bytes
        self._fsync = fsync
        self._rids: RequestIdIndex = RequestIdIndex(request_id_retention, wall_clock=wall_clock)
        self._logs: dict[str, LocalPartitionLog] = {}
        self._io = ThreadPoolExecutor(max_workers=max(2, min(8, len(self._names))),
                                      thread_name_prefix="journal-io")
        self._lock_fd: int | None = None
        self._closed = False

    async def open(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self._dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise RuntimeError(f"journal data directory {self._dir} is in use by another process") from exc
        try:
            self._refuse_legacy_txn()
            self._refuse_unknown_partitions(f"journal data directory {self._dir}", self._unknown_partitions())
        except BaseException:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise
        inflight: dict[str, asyncio.Future[Appended]] = {}
        newest = 0
        for name in self._names:
            plog = LocalPartitionLog(name, self._dir / name, clock=self._clock, request_ids=self._rids,
                                     inflight=inflight, segment_bytes=self._segment_bytes,
                                     fsync=self._fsync, io=self._io)
            plog.open()
            self._logs[name] = plog
            newest = max(newest, plog.head[1])
            log.info("partition recovered", extra={"partition": name, "head_offset": plog.head[0],
                                                   "segments": plog.size()[1]})
        self._rids.recovery_done()
        if newest > self._clock.last:
            # Normally the clock's persisted high-water mark is already past every stored HLC.
            self._clock.restore(newest)

    def _refuse_legacy_txn(self) -> None:
        """Refuse a data directory whose ``txn`` partition (of an older version) holds entries.

        Transactions are entries of their tenant's data partition now; a ``txn``
        partition written before is no longer read, so starting would silently
        drop the transactions it holds.
        """
        if LEGACY_TXN_PARTITION in self._names:
            return
        size, files = stored_bytes(self._dir / LEGACY_TXN_PARTITION)
        if size == 0:
            return
        raise RuntimeError(
            f"journal data directory {self._dir} holds a non-empty '{LEGACY_TXN_PARTITION}' partition "
            f"({size} bytes in {files} segment files): it was written by an older Vecraft version, which "
            f"kept transactions in a partition of their own. This version orders every write of a "
            f"collection, transactions included, in its tenant's data partition (docs/journal.md, "
            f"'Order across partitions') and does not read '{LEGACY_TXN_PARTITION}', so starting would "
            f"lose those transactions. Export the data with the version that wrote it and import it into "
            f"an empty data directory served by this version; this directory is left unchanged")

    async def refresh(self, partitions: Sequence[str] = ()) -> None:
        """Nothing to learn: this process is the only writer of its files."""

    async def lookup_latest(self, request_id: str) -> Position | None:
        """:meth:`lookup`: the index holds every entry of these files (within the window)."""
        return self.lookup(request_id)

    def _unknown_partitions(self) -> dict[str, str]:
        """Partition directories outside the configured set that hold segment bytes -> what they hold.

        Empty ones (and directories without segment files) are ignored.
        """
        found = {}
        for entry in sorted(self._dir.iterdir()):
            if entry.is_dir() and entry.name not in self._names:
                size, files = stored_bytes(entry)
                if size:
                    found[entry.name] = f"{size} bytes in {files} segment files"
        return found

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for plog in self._logs.values():
            await plog.close()
        self._io.shutdown(wait=True)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

