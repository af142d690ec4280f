"""The on-disk record format of the local journal backend.

One record per journal entry, records back to back in a segment file::

    magic    u32  0x31524356 ("VCR1" little endian): finds record starts when
                  deciding whether a bad record is a torn tail or damage
    length   u32  bytes of the body that follows the 12-byte prefix
    crc      u32  CRC32C of ``length`` (4 bytes) + body
    body:
      offset     u64
      hlc        u64
      rid_len    u16   request id (UTF-8) length
      n_shards   u16
      request_id rid_len bytes
      shards     n_shards x u32
      payload    the rest of the body (opaque to the journal)

All integers little endian. The CRC covers the length so that a damaged
length field is caught as well.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import crc32c

MAGIC = 0x31524356
MAGIC_BYTES = struct.pack("<I", MAGIC)
_PREFIX = struct.Struct("<III")
_LEN = struct.Struct("<I")
_FIXED = struct.Struct("<QQHH")
PREFIX_SIZE = _PREFIX.size
FIXED_SIZE = _FIXED.size
#: Bytes a record adds around its request id, shards and payload.
OVERHEAD = PREFIX_SIZE + FIXED_SIZE
MAX_REQUEST_ID_BYTES = 0xFFFF
MAX_SHARDS = 0xFFFF


class CorruptRecord(Exception):
    """A record at ``position`` failed its checks (bad magic, length or CRC)."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(f"bad record at byte {position}: {reason}")
        self.position = position
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record; ``size`` is its whole length on disk."""

    offset: int
    hlc: int
    request_id: str
    shards: tuple[int, ...]
    payload: bytes
    size: int


def encode_parts(offset: int, hlc: int, request_id: bytes, shards: Sequence[int],
                 payload: bytes) -> tuple[bytes, bytes]:
    """One record as ``(head, payload)``: written back to back they form the record.

    Kept in two parts so a writer can hand the payload to ``pwritev`` without
    copying it. ``request_id`` is already UTF-8 encoded.
    """
    shard_bytes = struct.pack(f"<{len(shards)}I", *shards) if shards else b""
    body_head = _FIXED.pack(offset, hlc, len(request_id), len(shards)) + request_id + shard_bytes
    len_bytes = _LEN.pack(len(body_head) + len(payload))
    crc = crc32c.crc32c(payload, value=crc32c.crc32c(body_head, value=crc32c.crc32c(len_bytes)))
    return MAGIC_BYTES + len_bytes + _LEN.pack(crc) + body_head, payload


def encode(offset: int, hlc: int, request_id: bytes, shards: Sequence[int], payload: bytes) -> bytes:
    """The bytes of one record. ``request_id`` is already UTF-8 encoded."""
    return b"".join(encode_parts(offset, hlc, request_id, shards, payload))


def decode_at(buf: bytes | memoryview, pos: int) -> Record:
    """Decode and verify the record starting at ``pos`` of ``buf``.

    Raises:
        CorruptRecord: the record is incomplete (runs past the end of ``buf``),
            has a bad magic or length, or fails its CRC.
    """
    end = len(buf)
    if pos + PREFIX_SIZE > end:
        raise CorruptRecord(pos, f"incomplete header ({end - pos} of {PREFIX_SIZE} bytes)")
    magic, length, crc = _PREFIX.unpack_from(buf, pos)
    if magic != MAGIC:
        raise CorruptRecord(pos, f"bad magic {magic:#010x}")
    if length < FIXED_SIZE:
        raise CorruptRecord(pos, f"length {length} is shorter than the fixed body")
    body_start = pos + PREFIX_SIZE
    body_end = body_start + length
    if body_end > end:
        raise CorruptRecord(pos, f"incomplete body ({end - body_start} of {length} bytes)")
    view = memoryview(buf)
    if crc32c.crc32c(view[body_start:body_end], value=crc32c.crc32c(view[pos + 4:pos + 8])) != crc:
        raise CorruptRecord(pos, "CRC32C mismatch")
    offset, hlc, rid_len, n_shards = _FIXED.unpack_from(buf, body_start)
    cursor = body_start + FIXED_SIZE
    shards_at = cursor + rid_len
    payload_at = shards_at + 4 * n_shards
    if payload_at > body_end:
        raise CorruptRecord(pos, "request id and shards overrun the body")
    request_id = bytes(view[cursor:shards_at]).decode("utf-8", errors="replace")
    shards = struct.unpack_from(f"<{n_shards}I", buf, shards_at) if n_shards else ()
    return Record(offset, hlc, request_id, shards, bytes(view[payload_at:body_end]), body_end - pos)


def iter_records(buf: bytes | memoryview, start: int = 0) -> Iterator[tuple[int, Record]]:
    """``(position, record)`` for each record of ``buf`` from ``start`` to its end.

    Raises:
        CorruptRecord: at the first record that does not verify.
    """
    pos = start
    end = len(buf)
    while pos < end:
        rec = decode_at(buf, pos)
        yield pos, rec
        pos += rec.size


def find_valid_record(buf: bytes | memoryview, start: int) -> int | None:
    """Position of the first record at or after ``start`` that verifies, else None.

    Used after a bad record to tell a torn tail (nothing valid follows) from
    damage in the middle of the log (a whole record follows the bad one).
    """
    data = bytes(buf) if isinstance(buf, memoryview) else buf
    pos = data.find(MAGIC_BYTES, start)
    while pos != -1:
        try:
            decode_at(data, pos)
            return pos
        except CorruptRecord:
            pos = data.find(MAGIC_BYTES, pos + 1)
    return None
