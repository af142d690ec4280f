"""The on-disk record format: round trip, CRC catches damage, torn-tail vs middle damage."""

from __future__ import annotations

import pytest

from vecraft.services.journal_service.wal.records import (
    CorruptRecord,
    decode_at,
    encode,
    find_valid_record,
    iter_records,
)

pytestmark = pytest.mark.unit


def test_round_trip_keeps_every_field() -> None:
    rec = encode(7, 123456789, "req-é".encode(), (0, 3, 65535), b"\x00payload\xff")
    got = decode_at(rec, 0)
    assert (got.offset, got.hlc, got.request_id, got.shards, got.payload, got.size) == (
        7, 123456789, "req-é", (0, 3, 65535), b"\x00payload\xff", len(rec))


@pytest.mark.parametrize("index", [5, 9, 14, 30, -1])
def test_any_flipped_byte_is_detected(index: int) -> None:
    rec = bytearray(encode(1, 2, b"r", (1,), b"x" * 40))
    rec[index] ^= 0x40
    with pytest.raises(CorruptRecord):
        decode_at(bytes(rec), 0)


def test_truncated_record_is_incomplete() -> None:
    rec = encode(1, 2, b"r", (), b"y" * 100)
    for cut in (3, 12, 30, len(rec) - 1):
        with pytest.raises(CorruptRecord, match="incomplete"):
            decode_at(rec[:cut], 0)


def test_iter_and_find_valid_record_after_damage() -> None:
    a, b, c = (encode(i, i * 10, f"r{i}".encode(), (), b"z" * 20) for i in (1, 2, 3))
    buf = bytearray(a + b + c)
    assert [r.offset for _, r in iter_records(bytes(buf))] == [1, 2, 3]
    buf[len(a) + 20] ^= 1  # damage record 2's body
    with pytest.raises(CorruptRecord) as info:
        list(iter_records(bytes(buf)))
    assert info.value.position == len(a)
    # Record 3 still verifies after the damaged one: damage in the middle, not a torn tail.
    assert find_valid_record(bytes(buf), len(a) + 1) == len(a) + len(b)
    assert find_valid_record(bytes(a + b"\x00" * 50), len(a)) is None
