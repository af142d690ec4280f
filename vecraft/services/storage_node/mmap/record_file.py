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


class RecordFile:
    """The mmap'd block file. Appends come from one writer thread; reads may come from any thread.

    ``end`` is the write position. Blocks never move, so a (offset, length)
    pair read from the location index stays valid for as long as the file
    exists; a lock only guards re-mapping when the file grows.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        size = os.fstat(self._fd).st_size
        if size < _MIN_SIZE:
            os.ftruncate(self._fd, _MIN_SIZE)
            size = _MIN_SIZE
        self._size = size
        self._mm = mmap.mmap(self._fd, size)
        self._lock = threading.Lock()
        self.end = 0

    # ---- writing ----------------------------------------------------------------
    def append(self, data: bytes) -> int:
        """Write ``data`` at the end; returns its offset. Not durable until :meth:`flush`."""
        with self._lock:
            start = self.end
            need = start + len(data)
            if need > self._size:
                self._grow(need)
            self._mm[start:need] = data
            self.end = need
            return start

    def _grow(self, need: int) -> None:
        size = max(need, self._size + min(self._size, _GROW_STEP))
        size = -(-size // _MIN_SIZE) * _MIN_SIZE
        self._mm.flush()
        self._mm.close()
        os.ftruncate(self._fd, size)
        self._mm = mmap.mmap(self._fd, size)
        self._size = size

    def flush(self, start: int, end: int) -> None:
        """msync [start, end) so the blocks are on disk before the commit that points at them."""
        if end <= start:
            return
        page = mmap.PAGESIZE
        lo = start - start % page
        with self._lock:
            self._mm.flush(lo, end - lo)

    def set_status(self, offsets: Sequence[int], status: int) -> None:
        """Flip the status byte of the blocks at ``offsets`` (the one in-place write)."""
        if not offsets:
            return
        with self._lock:
            mm = self._mm
            for off in offsets:
                mm[off] = status

    # ---- reading ----------------------------------------------------------------
    def read(self, offset: int, length: int) -> RecordView:
        """Decode the block at ``offset``; raises CorruptRecord when it fails its checks."""
        with self._lock:
            if offset + length > self.end:
                raise CorruptRecord(f"block {offset}+{length} past the end {self.end}")
            block = self._mm[offset:offset + length]
        return decode_block(block)

    def status(self, offset: int) -> int:
        with self._lock:
            return self._mm[offset]

    def scan(self, end: int) -> Iterator[ScannedBlock]:
        """Walk the blocks in [0, end) checking each CRC; stops at the first unreadable header."""
        pos = 0
        while pos + HEADER_SIZE <= end:
            with self._lock:
                status, magic, _r, length, crc = _HEADER.unpack_from(self._mm, pos)
                if magic != MAGIC or pos + HEADER_SIZE + length > end:
                    return
                payload = self._mm[pos + HEADER_SIZE:pos + HEADER_SIZE + length]
            ok = crc32c.crc32c(payload, crc32c.crc32c(_LEN.pack(length))) == crc
            yield ScannedBlock(pos, HEADER_SIZE + length, status, ok)
            pos += HEADER_SIZE + length

    # ---- recovery ---------------------------------------------------------------
    def recover(self, committed_end: int) -> int:
        """Discard everything past ``committed_end`` (an uncommitted batch); returns the bytes cut.

        The tail is zeroed, not just skipped, so a later scan can never mistake
        a stale block for a committed one.
        """
        with self._lock:
            if committed_end > self._size:
                raise CorruptRecord(f"committed end {committed_end} beyond file size {self._size}")
            # Find the old write end: the first never-written block header after committed_end.
            pos = committed_end
            while pos + HEADER_SIZE <= self._size:
                status, magic, _r, length, _crc = _HEADER.unpack_from(self._mm, pos)
                if status == STATUS_EMPTY and magic == 0:
                    break
                if magic != MAGIC:
                    pos = self._size
                    break
                pos = min(self._size, pos + HEADER_SIZE + length)
            cut = pos - committed_end
            if cut:
                self._mm[committed_end:pos] = bytes(cut)
                self._mm.flush()
            self.end = committed_end
            return cut

    def close(self) -> None:
        with self._lock:
            if not self._mm.closed:
                self._mm.flush()
                self._mm.close()
            os.close(self._fd)
