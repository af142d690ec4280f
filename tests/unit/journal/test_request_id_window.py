"""The request-id index is bounded by its retention window (the idempotency window).

Real segment files on disk; the wall clock (which the HLC follows and ages are
measured against) is injected, so no test waits.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from vecraft.services.journal_service.wal import LogWrite, Position
from vecraft.services.journal_service.wal.local import LocalJournalBackend
from vecraft.services.journal_service.wal.request_ids import RequestIdIndex, RequestIdRetention
from vecraft.shared.hlc import HybridLogicalClock, pack

pytestmark = pytest.mark.unit

PARTS = ["data-0", "data-1", "system"]
T0 = 1_750_000_000_000  # ms


class Wall:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


def backend(path: Path, wall: Wall, count: int = 1000, seconds: float = 60.0) -> LocalJournalBackend:
    clock = HybridLogicalClock(max_clock_offset_ms=500, wall_clock=wall, persist_path=path / "hlc.json")
    return LocalJournalBackend(path, PARTS, clock=clock, wall_clock=wall,
                               request_id_retention=RequestIdRetention(count=count, seconds=seconds))


async def append(b: LocalJournalBackend, partition: str, rid: str) -> tuple[int, bool]:
    done = await b.partition(partition).append(LogWrite(rid, rid.encode()))
    return done.position.offset, done.duplicate


def evicted(reason: str) -> float:
    return REGISTRY.get_sample_value("vecraft_journal_request_ids_evicted_total", {"reason": reason}) or 0.0


async def test_a_retry_within_the_age_window_is_a_duplicate_and_after_it_a_new_write(tmp_path: Path) -> None:
    wall = Wall()
    b = backend(tmp_path, wall, seconds=60)
    await b.open()
    assert await append(b, "data-0", "r-1") == (1, False)
    wall.ms += 60_000  # exactly at the end of the window: still remembered
    assert await append(b, "data-0", "r-1") == (1, True)
    assert b.lookup("r-1") == Position("data-0", 1, pack(T0, 0))
    before = evicted("age")
    wall.ms += 1
    assert b.lookup("r-1") is None
    assert evicted("age") == before + 1
    assert await append(b, "data-0", "r-1") == (2, False)  # past the window: a new write
    await b.close()


async def test_the_count_bound_forgets_the_oldest_ids_first(tmp_path: Path) -> None:
    wall = Wall()
    b = backend(tmp_path, wall, count=3)
    await b.open()
    for i in range(5):
        wall.ms += 10
        await append(b, "data-0" if i % 2 else "data-1", f"r-{i}")
    # The three newest are answered as duplicates, the two oldest are forgotten.
    assert [b.lookup(f"r-{i}") is not None for i in range(5)] == [False, False, True, True, True]
    assert await append(b, "data-1", "r-4") == (3, True)
    assert await append(b, "data-1", "r-0") == (4, False)
    await b.close()


async def test_the_window_survives_a_restart_keeping_only_what_is_inside_it(tmp_path: Path) -> None:
    wall = Wall()
    b = backend(tmp_path, wall, count=3, seconds=60)
    await b.open()
    written: dict[str, int] = {}
    # Oldest first; partitions interleaved, so recovery (one partition after another) reads them
    # in another order than they were written.
    for rid, partition, at in [("ancient", "data-1", 0), ("s-1", "system", 70_000),
                               ("d-2", "data-0", 71_000), ("s-3", "system", 72_000),
                               ("d-4", "data-0", 73_000), ("s-5", "system", 74_000)]:
        wall.ms = T0 + at
        written[rid] = (await append(b, partition, rid))[0]
    await b.close()

    wall.ms = T0 + 75_000
    b2 = backend(tmp_path, wall, count=3, seconds=60)
    await b2.open()
    # "ancient" is older than 60 s; of the rest the three newest stay, across partitions.
    assert {rid for rid in written if b2.lookup(rid) is not None} == {"s-3", "d-4", "s-5"}
    assert await append(b2, "system", "s-5") == (written["s-5"], True)
    assert await append(b2, "data-0", "d-4") == (written["d-4"], True)
    assert await append(b2, "data-0", "d-2") == (3, False)  # forgotten: a new write
    await b2.close()

    # A restart after the whole window has passed remembers nothing older than it.
    wall.ms = T0 + 75_000 + 60_001
    b3 = backend(tmp_path, wall, count=3, seconds=60)
    await b3.open()
    assert all(b3.lookup(rid) is None for rid in [*written, "s-5"])
    await b3.close()


def test_the_index_alone_keeps_its_place_order_and_bounds() -> None:
    wall = Wall()
    index = RequestIdIndex(RequestIdRetention(count=2, seconds=1), wall_clock=wall)
    index["a"] = Position("p", 1, pack(T0, 0))
    index["b"] = Position("p", 2, pack(T0, 1))
    index["a"] = Position("p", 1, pack(T0, 0))  # re-adding keeps its place: still the oldest
    index["c"] = Position("p", 3, pack(T0, 2))
    assert list(index) == ["b", "c"] and len(index) == 2
    wall.ms += 1001
    assert index.get("c") is None and len(index) == 0
    with pytest.raises(ValueError, match="count >= 1 and seconds > 0"):
        RequestIdRetention(count=0)
