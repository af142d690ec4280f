"""The local file backend in-process: group commit, ordering, idempotency, recovery, segments."""

from __future__ import annotations

import asyncio
import os
from itertools import pairwise
from pathlib import Path

import pytest

from vecraft.services.journal_service.wal import JournalCorruption, LogWrite
from vecraft.services.journal_service.wal.local import LocalJournalBackend
from vecraft.shared.common.errors import ClockSkew, NotFound
from vecraft.shared.hlc import HybridLogicalClock, pack, wall_clock_ms

pytestmark = pytest.mark.unit

PARTS = ["data-0", "txn", "system"]


def backend(path: Path, segment_bytes: int = 1 << 20) -> LocalJournalBackend:
    clock = HybridLogicalClock(max_clock_offset_ms=500, persist_path=path / "hlc.json")
    return LocalJournalBackend(path, PARTS, clock=clock, segment_bytes=segment_bytes)


async def read_all(b: LocalJournalBackend, name: str = "data-0") -> list:
    plog = b.partition(name)
    head = plog.head[0]
    out = []
    while len(out) < head:
        out += await plog.read(len(out) + 1, head, max_entries=1000, max_bytes=1 << 20)
    return out


async def test_concurrent_appends_are_gapless_ordered_and_group_committed(tmp_path: Path) -> None:
    b = backend(tmp_path)
    await b.open()
    plog = b.partition("data-0")
    results = await asyncio.gather(*[plog.append(LogWrite(f"r{i}", f"p{i}".encode(), (i % 3,)))
                                     for i in range(300)])
    assert sorted(r.position.offset for r in results) == list(range(1, 301))
    entries = await read_all(b)
    assert [e.offset for e in entries] == list(range(1, 301))
    assert all(a.hlc < b_.hlc for a, b_ in pairwise(entries))
    by_rid = {r.position.offset: i for i, r in enumerate(results)}
    for e in entries:
        i = by_rid[e.offset]
        assert (e.request_id, e.payload, list(e.shards)) == (f"r{i}", f"p{i}".encode(), [i % 3])
    await b.close()


async def test_request_id_is_idempotent_across_partitions_restarts_and_races(tmp_path: Path) -> None:
    b = backend(tmp_path)
    await b.open()
    first, racing = await asyncio.gather(b.partition("data-0").append(LogWrite("same", b"a")),
                                         b.partition("data-0").append(LogWrite("same", b"a")))
    assert first.position == racing.position and {first.duplicate, racing.duplicate} == {False, True}
    again = await b.partition("txn").append(LogWrite("same", b"other"))
    assert again.duplicate and again.position == first.position
    await b.close()
    b2 = backend(tmp_path)
    await b2.open()
    after = await b2.partition("data-0").append(LogWrite("same", b"a"))
    assert after.duplicate and after.position == first.position
    assert b2.partition("data-0").head[0] == 1 and b2.partition("txn").head[0] == 0
    assert b2.lookup("same") == first.position
    await b2.close()


async def test_hlc_is_above_client_hlc_and_far_ahead_clients_are_refused(tmp_path: Path) -> None:
    b = backend(tmp_path)
    await b.open()
    plog = b.partition("system")
    ahead = pack(wall_clock_ms() + 200, 5)
    got = await plog.append(LogWrite("h1", b"x", (), ahead))
    assert got.position.hlc > ahead
    with pytest.raises(ClockSkew):
        await plog.append(LogWrite("h2", b"x", (), pack(wall_clock_ms() + 60_000, 0)))
    assert plog.head[0] == 1  # the refused write took no offset
    await b.close()


async def test_restart_keeps_entries_and_hlc_moves_on(tmp_path: Path) -> None:
    b = backend(tmp_path, segment_bytes=4096)
    await b.open()
    plog = b.partition("data-0")
    for i in range(60):
        await plog.append(LogWrite(f"r{i}", os.urandom(200)))
    before = await read_all(b)
    assert plog.size()[1] > 3  # rolled into several segments
    await b.close()
    b2 = backend(tmp_path, segment_bytes=4096)
    await b2.open()
    assert [(e.offset, e.hlc, e.payload) for e in await read_all(b2)] == \
        [(e.offset, e.hlc, e.payload) for e in before]
    nxt = await b2.partition("data-0").append(LogWrite("next", b"n"))
    assert nxt.position.offset == 61 and nxt.position.hlc > before[-1].hlc
    # A read spanning segments in one call, and byte limits that still return one entry.
    span = await b2.partition("data-0").read(5, 50, max_entries=100, max_bytes=1 << 20)
    assert [e.offset for e in span] == list(range(5, 51))
    one = await b2.partition("data-0").read(5, 50, max_entries=100, max_bytes=1)
    assert [e.offset for e in one] == [5]
    await b2.close()


def last_segment(path: Path, name: str = "data-0") -> Path:
    return sorted((path / name).glob("*.wal"))[-1]


async def test_torn_tail_is_cut_back_to_the_last_whole_record(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    b = backend(tmp_path)
    await b.open()
    for i in range(10):
        await b.partition("data-0").append(LogWrite(f"r{i}", b"v" * 100))
    await b.close()
    seg = last_segment(tmp_path)
    size = seg.stat().st_size
    os.truncate(seg, size - 37)  # record 10 loses its end
    with open(seg, "ab") as f:
        f.write(b"\x00" * 64)  # and zeros follow, as after a crash that extended the file
    b2 = backend(tmp_path)
    await b2.open()
    assert b2.partition("data-0").head[0] == 9
    assert b2.lookup("r9") is None and b2.lookup("r8") is not None
    assert any("cut torn tail" in r.getMessage() for r in caplog.records)
    again = await b2.partition("data-0").append(LogWrite("r9", b"again"))
    assert again.position.offset == 10 and not again.duplicate
    await b2.close()


async def test_damage_in_the_middle_is_a_loud_error(tmp_path: Path) -> None:
    b = backend(tmp_path)
    await b.open()
    for i in range(10):
        await b.partition("data-0").append(LogWrite(f"r{i}", b"v" * 100))
    await b.close()
    seg = last_segment(tmp_path)
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0xFF
    seg.write_bytes(bytes(data))
    with pytest.raises(JournalCorruption, match="refuses to skip"):
        await backend(tmp_path).open()


async def test_unknown_partition_names_the_known_ones(tmp_path: Path) -> None:
    b = backend(tmp_path)
    await b.open()
    with pytest.raises(NotFound, match="data-0, txn, system"):
        b.partition("data-9")
    await b.close()


async def test_second_process_cannot_open_the_same_directory(tmp_path: Path) -> None:
    b = backend(tmp_path)
    await b.open()
    with pytest.raises(RuntimeError, match="in use"):
        await backend(tmp_path).open()
    await b.close()


async def test_trim_crashed_between_start_file_and_deletion_is_finished_at_start(tmp_path: Path) -> None:
    b = backend(tmp_path, segment_bytes=1024)
    await b.open()
    plog = b.partition("data-0")
    for i in range(100):
        await plog.append(LogWrite(f"c{i}", b"z" * 30))
    files = sorted((tmp_path / "data-0").glob("*.wal"))
    assert len(files) > 3
    keep_from = int(files[2].stem)
    await b.close()
    # What a trim leaves when killed right after writing START: the older files still there.
    (tmp_path / "data-0" / "START").write_text(f"{keep_from}\n")
    again = backend(tmp_path, segment_bytes=1024)
    await again.open()
    plog = again.partition("data-0")
    assert plog.first_offset == keep_from and plog.head[0] == 100
    assert sorted((tmp_path / "data-0").glob("*.wal")) == files[2:]
    entries = await plog.read(keep_from, 100, max_entries=1000, max_bytes=1 << 20)
    assert [e.offset for e in entries] == list(range(keep_from, 101))
    await again.close()


async def test_a_start_file_past_every_segment_is_refused(tmp_path: Path) -> None:
    b = backend(tmp_path, segment_bytes=1024)
    await b.open()
    for i in range(40):
        await b.partition("data-0").append(LogWrite(f"d{i}", b"z" * 30))
    await b.close()
    for path in (tmp_path / "data-0").glob("*.wal"):
        path.unlink()
    (tmp_path / "data-0" / "START").write_text("30\n")
    with pytest.raises(JournalCorruption, match="no segment file is left"):
        await backend(tmp_path, segment_bytes=1024).open()


async def test_trim_waits_for_running_reads_before_closing_files(tmp_path: Path) -> None:
    b = backend(tmp_path, segment_bytes=4096)
    await b.open()
    plog = b.partition("data-0")
    for i in range(40):
        await plog.append(LogWrite(f"big{i}", os.urandom(100_000)))  # reads over 1 MiB go to the pool
    reading = asyncio.ensure_future(plog.read(1, 40, max_entries=40, max_bytes=16 << 20))
    await asyncio.sleep(0)
    await plog.trim(30)
    entries = await reading
    assert [e.offset for e in entries] == list(range(1, 41))
    assert plog.first_offset == 30
    await b.close()
