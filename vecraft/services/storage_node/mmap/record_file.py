"""Append-only, memory-mapped record file: one block per stored record version.

Block layout (little endian)::

    status   u8    0 = never written, 1 = LIVE, 2 = DELETED (superseded or deleted)
    magic    u8    0x56 ('V')
    reserved u16
    length   u32   payload bytes
    crc      u32   CRC32C of the length field and the payload
    payload        see :func:`encode_records`

The status byte is the only byte ever rewritten in place, which is why the CRC
leaves it out. The SQLite location index (``location_index.py``) is the
authority on which block is current: the file's committed end is stored in the
same SQLite transaction as the rows that point into it, so bytes past that end
after a crash are an uncommitted batch and :meth:`RecordFile.recover` discards
them, and status bytes that disagree with the index (a crash between the commit
and the status flip) are repaired by the same scan.

Offsets are logical (a file's first byte is its ``base``), so a compaction
(``record_compaction.py``) can move the live blocks into a new file without any
offset ever naming two blocks; see :class:`RecordFile`.

Payload::

    entry_offset u64, hlc u64, cid_len u16, id_len u16, dim u32, meta_len u32, doc_len u32
    collection_id, id, vector (dim float32), metadata_json, document
"""

from __future__ import annotations

import mmap
import os
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import crc32c
import numpy as np

from vecraft.shared.common.fsync import fsync_path

STATUS_EMPTY = 0
STATUS_LIVE = 1
STATUS_DELETED = 2
MAGIC = 0x56

_HEADER = struct.Struct("<BBHII")
_PAYLOAD_HEAD = struct.Struct("<QQHHIII")
HEADER_SIZE = _HEADER.size
_LEN = struct.Struct("<I")
_GROW_STEP = 64 * 1024 * 1024
_MIN_SIZE = 1024 * 1024
# Bytes a compaction gathers before one write to the new file.
_COPY_PIECE = 8 * 1024 * 1024


class CorruptRecord(Exception):
    """A block the location index points to fails its CRC or header check."""


@dataclass(frozen=True, slots=True)
class RecordView:
    """One decoded block."""

    collection_id: str
    id: str
    vector: np.ndarray
    metadata_json: str
    document: str
    entry_offset: int
    hlc: int


@dataclass(frozen=True, slots=True)
class ScannedBlock:
    offset: int
    length: int
    status: int
    crc_ok: bool


def encode_records(collection_id: str, ids: Sequence[str], vectors: np.ndarray,
                   metadata_json: Sequence[str], documents: Sequence[str],
                   entry_offset: int, hlc: int) -> tuple[bytes, list[int]]:
    """Encode a batch of records as consecutive LIVE blocks.

    Returns the bytes and each block's length (block i starts at the sum of the
    lengths before it). ``vectors`` is ``len(ids) x dim`` float32; the rows are
    sliced from its buffer, never converted to Python floats.
    """
    vecs = np.ascontiguousarray(vectors, dtype="<f4")
    n = len(ids)
    dim = int(vecs.shape[1]) if vecs.ndim == 2 else 0
    raw = vecs.tobytes()
    row = dim * 4
    cid = collection_id.encode()
    parts: list[bytes] = []
    lengths: list[int] = []
    for i in range(n):
        rid = ids[i].encode()
        meta = metadata_json[i].encode() if i < len(metadata_json) else b""
        doc = documents[i].encode() if i < len(documents) else b""
        payload = b"".join((
            _PAYLOAD_HEAD.pack(entry_offset, hlc, len(cid), len(rid), dim, len(meta), len(doc)),
            cid, rid, raw[i * row:(i + 1) * row], meta, doc))
        crc = crc32c.crc32c(payload, crc32c.crc32c(_LEN.pack(len(payload))))
        parts.append(_HEADER.pack(STATUS_LIVE, MAGIC, 0, len(payload), crc))
        parts.append(payload)
        lengths.append(HEADER_SIZE + len(payload))
    return b"".join(parts), lengths


def decode_block(block: bytes | memoryview) -> RecordView:
    """Decode one whole block (header included); raises CorruptRecord on a bad header or CRC."""
    if len(block) < HEADER_SIZE:
        raise CorruptRecord("block shorter than its header")
    _status, magic, _r, length, crc = _HEADER.unpack_from(block, 0)
    payload = bytes(block[HEADER_SIZE:HEADER_SIZE + length])
    if magic != MAGIC or len(payload) != length or crc32c.crc32c(
            payload, crc32c.crc32c(_LEN.pack(length))) != crc:
        raise CorruptRecord("block header or CRC mismatch")
    entry_offset, hlc, cid_len, id_len, dim, meta_len, doc_len = _PAYLOAD_HEAD.unpack_from(payload, 0)
    pos = _PAYLOAD_HEAD.size
    cid = payload[pos:pos + cid_len].decode()
    pos += cid_len
    rid = payload[pos:pos + id_len].decode()
    pos += id_len
    vector = np.frombuffer(payload, dtype="<f4", count=dim, offset=pos)
    pos += dim * 4
    meta = payload[pos:pos + meta_len].decode()
    pos += meta_len
    doc = payload[pos:pos + doc_len].decode()
    return RecordView(cid, rid, vector, meta, doc, entry_offset, hlc)



class _Mapping:
    """One block file mapped in memory; its first byte is the logical offset ``base``."""

    def __init__(self, path: Path, base: int) -> None:
        self.path = path
        self.base = base
        #: Logical end of its blocks, kept for a file that only serves reads (see RecordFile.switch).
        self.end = base
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        size = os.fstat(self.fd).st_size
        if size < _MIN_SIZE:
            os.ftruncate(self.fd, _MIN_SIZE)
            size = _MIN_SIZE
        self.size = size
        self.mm = mmap.mmap(self.fd, size)

    def grow(self, need: int) -> None:
        size = max(need, self.size + min(self.size, _GROW_STEP))
        size = -(-size // _MIN_SIZE) * _MIN_SIZE
        self.mm.flush()
        self.mm.close()
        os.ftruncate(self.fd, size)
        self.mm = mmap.mmap(self.fd, size)
        self.size = size

    def close(self) -> None:
        if not self.mm.closed:
            self.mm.flush()
            self.mm.close()
        os.close(self.fd)


class RecordFile:
    """The mmap'd block file. Appends come from one writer thread; reads may come from any thread.

    Offsets are *logical*: the file's first byte is offset :attr:`base` (0 for a file never
    compacted). A compaction writes the live blocks into a new file whose base is the old file's
    end, so the offsets of the two files never overlap and an offset names one block of one file
    for good. That is what lets reads run through a compaction without a lock: a reader holding an
    offset of the old file (looked up before the switch) still reads it from the old mapping, kept
    for reads (:meth:`switch`) until the replica knows no such reader is left
    (:meth:`release_previous`); an offset of the new one is read from the new file.

    ``end`` is the logical write position. Blocks never move inside a file; a lock only guards
    re-mapping when the file grows and the switch between files.
    """

    def __init__(self, path: Path, base: int = 0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._cur = _Mapping(path, base)
        #: The file compacted away, still mapped for readers that hold its offsets.
        self._prev: _Mapping | None = None
        self._lock = threading.Lock()
        self.end = base
        #: Bytes of blocks in [base, end) no live row points to (DELETED versions): what a
        #: compaction would reclaim. Counted at start-up (consistency scan) and by set_status.
        self.dead_bytes = 0
        self._dead_before_switch = 0

    @property
    def path(self) -> Path:
        """The current file (appends go to it)."""
        return self._cur.path

    @property
    def base(self) -> int:
        """Logical offset of the current file's first byte."""
        return self._cur.base

    @property
    def retains_previous(self) -> bool:
        """True while the file a compaction replaced is still mapped for readers."""
        return self._prev is not None

    # ---- writing ----------------------------------------------------------------
    def append(self, data: bytes) -> int:
        """Write ``data`` at the end; returns its offset. Not durable until :meth:`flush`."""
        with self._lock:
            cur = self._cur
            start = self.end
            need = start + len(data) - cur.base
            if need > cur.size:
                cur.grow(need)
            cur.mm[start - cur.base:need] = data
            self.end = start + len(data)
            return start

    def flush(self, start: int, end: int) -> None:
        """msync [start, end) so the blocks are on disk before the commit that points at them."""
        if end <= start:
            return
        page = mmap.PAGESIZE
        with self._lock:
            cur = self._cur
            lo = start - cur.base
            lo -= lo % page
            cur.mm.flush(lo, end - cur.base - lo)

    def set_status(self, offsets: Sequence[int], status: int) -> None:
        """Flip the status byte of the blocks at ``offsets`` (the one in-place write).

        Keeps :attr:`dead_bytes`: a block turning DELETED adds its length, one turning LIVE again
        (a start-up repair) takes it off.
        """
        if not offsets:
            return
        with self._lock:
            cur = self._cur
            mm = cur.mm
            dead = 0
            for off in offsets:
                pos = off - cur.base
                old = mm[pos]
                if old == status:
                    continue
                mm[pos] = status
                size = HEADER_SIZE + _LEN.unpack_from(mm, pos + 4)[0]
                if status == STATUS_DELETED:
                    dead += size
                elif old == STATUS_DELETED:
                    dead -= size
            self.dead_bytes += dead

    # ---- reading ----------------------------------------------------------------
    def read(self, offset: int, length: int) -> RecordView:
        """Decode the block at ``offset``; raises CorruptRecord when it fails its checks."""
        with self._lock:
            src = self._cur
            end = self.end
            if offset < src.base and self._prev is not None:
                src = self._prev
                end = src.end
            if offset < src.base or offset + length > end:
                raise CorruptRecord(f"block {offset}+{length} outside the record file [{src.base}, {end})")
            pos = offset - src.base
            block = src.mm[pos:pos + length]
        return decode_block(block)

    def status(self, offset: int) -> int:
        with self._lock:
            return self._cur.mm[offset - self._cur.base]

    def scan(self, end: int) -> Iterator[ScannedBlock]:
        """Walk the blocks in [base, end) checking each CRC; stops at the first unreadable header."""
        base = self._cur.base
        pos = 0
        stop = end - base
        while pos + HEADER_SIZE <= stop:
            with self._lock:
                mm = self._cur.mm
                status, magic, _r, length, crc = _HEADER.unpack_from(mm, pos)
                if magic != MAGIC or pos + HEADER_SIZE + length > stop:
                    return
                payload = mm[pos + HEADER_SIZE:pos + HEADER_SIZE + length]
            ok = crc32c.crc32c(payload, crc32c.crc32c(_LEN.pack(length))) == crc
            yield ScannedBlock(base + pos, HEADER_SIZE + length, status, ok)
            pos += HEADER_SIZE + length

    # ---- compaction ---------------------------------------------------------------
    def write_compacted(self, dest: Path, base: int, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Write the blocks at ``offsets`` (ascending) back to back into the new file ``dest``.

        ``dest``'s first byte is the logical offset ``base``. The file is written and fsynced (and
        its directory) before this returns, so a commit pointing into it never names bytes that
        are not on disk. Returns each block's new offset. The caller holds the apply lock: nothing
        appends or flips a status meanwhile, so the mapping read from cannot move.
        """
        offsets = np.asarray(offsets, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        new_offsets = base + np.concatenate(([0], np.cumsum(lengths)[:-1])) if len(lengths) else lengths
        total = int(lengths.sum())
        mm = self._cur.mm
        phys = offsets - self._cur.base
        stops = phys + lengths
        # Copy runs of adjacent live blocks in one slice each, written in ~8 MiB pieces.
        cut = np.flatnonzero(phys[1:] != stops[:-1]) + 1
        run_starts = phys[np.concatenate(([0], cut))] if len(phys) else phys
        run_stops = stops[np.concatenate((cut - 1, [len(phys) - 1]))] if len(phys) else phys
        with open(dest, "wb") as f:
            pending: list[bytes] = []
            size = 0
            for lo, hi in zip(run_starts.tolist(), run_stops.tolist(), strict=True):
                pending.append(mm[lo:hi])
                size += hi - lo
                if size >= _COPY_PIECE:
                    f.write(b"".join(pending))
                    pending, size = [], 0
            f.write(b"".join(pending))
            f.truncate(max(_MIN_SIZE, -(-total // _MIN_SIZE) * _MIN_SIZE))
            f.flush()
            os.fsync(f.fileno())
        fsync_path(dest.parent)
        return new_offsets

    def switch(self, path: Path, base: int, end: int) -> None:
        """Make the compacted file ``path`` the current one; the old one stays mapped for reads.

        Done before the commit that points the location index at ``path``: until then nobody holds
        an offset of it, and offsets of the old file keep reading from the old mapping after it.
        """
        with self._lock:
            if self._prev is not None:
                raise RuntimeError("the previous record file is still mapped; release it first")
            new = _Mapping(path, base)
            new.end = end
            old = self._cur
            old.end = self.end
            self._prev, self._cur = old, new
            self.end = end
            self._dead_before_switch = self.dead_bytes
            self.dead_bytes = 0

    def switch_back(self) -> None:
        """Undo :meth:`switch` (its commit failed): the old file is current again, the new one deleted."""
        with self._lock:
            new, old = self._cur, self._prev
            if old is None:
                raise RuntimeError("no switch to undo")
            self._cur, self._prev = old, None
            self.end = old.end
            self.dead_bytes = self._dead_before_switch
        new.close()
        new.path.unlink(missing_ok=True)

    def release_previous(self) -> None:
        """Unmap the file a compaction replaced (no reader holds its offsets any more)."""
        with self._lock:
            prev, self._prev = self._prev, None
        if prev is not None:
            prev.close()

    # ---- recovery ---------------------------------------------------------------
    def recover(self, committed_end: int) -> int:
        """Discard everything past ``committed_end`` (an uncommitted batch); returns the bytes cut.

        The tail is zeroed, not just skipped, so a later scan can never mistake
        a stale block for a committed one.
        """
        with self._lock:
            cur = self._cur
            mm = cur.mm
            committed = committed_end - cur.base
            if committed < 0 or committed > cur.size:
                raise CorruptRecord(f"committed end {committed_end} outside the file "
                                    f"[{cur.base}, {cur.base + cur.size})")
            # Find the old write end: the first never-written block header after committed_end.
            pos = committed
            while pos + HEADER_SIZE <= cur.size:
                status, magic, _r, length, _crc = _HEADER.unpack_from(mm, pos)
                if status == STATUS_EMPTY and magic == 0:
                    break
                if magic != MAGIC:
                    pos = cur.size
                    break
                pos = min(cur.size, pos + HEADER_SIZE + length)
            cut = pos - committed
            if cut:
                mm[committed:pos] = bytes(cut)
                mm.flush()
            self.end = committed_end
            return cut

    def close(self) -> None:
        with self._lock:
            for mapping in (self._cur, self._prev):
                if mapping is not None:
                    mapping.close()
            self._prev = None
