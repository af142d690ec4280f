"""Hybrid logical clock: packing, send/receive rules, overflow, skew, persistence, threads."""

from __future__ import annotations

import tempfile
import threading
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from vecraft.shared.common.errors import ClockSkew
from vecraft.shared.hlc import (
    MAX_LOGICAL,
    MAX_PHYSICAL,
    HybridLogicalClock,
    format_hlc,
    logical,
    pack,
    physical_ms,
    to_datetime,
)

pytestmark = pytest.mark.unit

BASE = 1_700_000_000_000  # a realistic epoch-ms starting point


class FakeWall:
    """A wall clock the test moves by hand (forwards or backwards)."""

    def __init__(self, ms: int = BASE) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@settings(deadline=None)  # pure arithmetic, but a loaded machine can stall any example past 200 ms
@given(st.integers(0, MAX_PHYSICAL), st.integers(0, MAX_LOGICAL))
def test_pack_round_trips_and_orders_like_pairs(phys: int, log: int) -> None:
    hlc = pack(phys, log)
    assert (physical_ms(hlc), logical(hlc)) == (phys, log)
    assert 0 <= hlc < 2**64
    if log < MAX_LOGICAL:
        assert pack(phys, log + 1) > hlc
    if phys < MAX_PHYSICAL:
        assert pack(phys + 1, 0) > hlc


@pytest.mark.parametrize("phys, log", [(-1, 0), (MAX_PHYSICAL + 1, 0), (0, -1), (0, MAX_LOGICAL + 1)])
def test_pack_rejects_out_of_range(phys: int, log: int) -> None:
    with pytest.raises(ValueError):
        pack(phys, log)


def test_human_format() -> None:
    hlc = pack(BASE + 123, 7)
    assert to_datetime(hlc) == datetime.fromtimestamp((BASE + 123) / 1000, tz=UTC)
    assert format_hlc(hlc) == "2023-11-14T22:13:20.123Z+7"


# Each step: ("now", wall delta) or ("update", wall delta, remote offset from wall, remote logical).
steps = st.lists(st.one_of(
    st.tuples(st.just("now"), st.integers(-2000, 2000)),
    st.tuples(st.just("update"), st.integers(-2000, 2000), st.integers(-3000, 500),
              st.integers(0, MAX_LOGICAL)),
), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_monotonic_under_arbitrary_wall_clock(seq: list[tuple]) -> None:
    wall = FakeWall()
    clock = HybridLogicalClock(max_clock_offset_ms=500, wall_clock=wall)
    prev = 0
    for step in seq:
        wall.ms = max(0, wall.ms + step[1])
        if step[0] == "now":
            ts = clock.now()
        else:
            remote = pack(max(0, wall.ms + step[2]), step[3])
            ts = clock.update(remote)
            assert ts > remote
        assert ts > prev
        assert clock.last == ts
        assert physical_ms(ts) >= wall.ms  # never behind the wall clock
        prev = ts


@settings(max_examples=300, deadline=None)
@given(st.integers(-100, 100), st.integers(0, MAX_LOGICAL), st.integers(-100, 100),
       st.integers(0, MAX_LOGICAL))
def test_receive_rule(last_delta: int, last_log: int, remote_delta: int, remote_log: int) -> None:
    wall = FakeWall(BASE + 10_000)
    clock = HybridLogicalClock(max_clock_offset_ms=500, wall_clock=wall)
    # Drive the clock to (wall + last_delta, last_log) through the receive rule itself.
    wall.ms = BASE + 10_000 + last_delta
    clock.update(pack(wall.ms, last_log) - 1 if last_log else pack(wall.ms - 1, MAX_LOGICAL))
    before = clock.last
    assert before == pack(BASE + 10_000 + last_delta, last_log)
    wall.ms = BASE + 10_000
    remote = pack(wall.ms + remote_delta, remote_log)
    ts = clock.update(remote)
    assert ts > before and ts > remote
    expected_phys = max(wall.ms, physical_ms(before), physical_ms(remote))
    top_logicals = [logical(x) for x in (before, remote) if physical_ms(x) == expected_phys]
    if not top_logicals or max(top_logicals) < MAX_LOGICAL:
        assert physical_ms(ts) == expected_phys
        assert logical(ts) == (max(top_logicals) + 1 if top_logicals else 0)
    else:  # logical overflow carries into the physical part
        assert (physical_ms(ts), logical(ts)) == (expected_phys + 1, 0)


def test_logical_counter_never_overflows() -> None:
    wall = FakeWall()
    clock = HybridLogicalClock(wall_clock=wall)
    stamps = [clock.now() for _ in range(MAX_LOGICAL + 10)]
    assert all(b > a for a, b in pairwise(stamps))
    assert physical_ms(stamps[MAX_LOGICAL]) == BASE and logical(stamps[MAX_LOGICAL]) == MAX_LOGICAL
    assert physical_ms(stamps[MAX_LOGICAL + 1]) == BASE + 1 and logical(stamps[MAX_LOGICAL + 1]) == 0
    # Receiving a saturated remote timestamp also carries.
    ts = clock.update(pack(BASE + 1, MAX_LOGICAL))
    assert (physical_ms(ts), logical(ts)) == (BASE + 2, 0)


def test_backwards_wall_clock_holds_physical() -> None:
    wall = FakeWall()
    clock = HybridLogicalClock(wall_clock=wall)
    first = clock.now()
    wall.ms -= 5000
    second = clock.now()
    assert second > first and physical_ms(second) == BASE and logical(second) == 1
    wall.ms = BASE + 1
    assert clock.now() == pack(BASE + 1, 0)


def _rejected() -> float:
    return REGISTRY.get_sample_value("vecraft_hlc_remote_rejected_total") or 0.0


def test_skew_rejected_and_counted() -> None:
    wall = FakeWall()
    clock = HybridLogicalClock(max_clock_offset_ms=500, wall_clock=wall)
    before = clock.now()
    rejected = _rejected()
    with pytest.raises(ClockSkew) as err:
        clock.update(pack(BASE + 501, 0))
    assert "501 ms ahead" in err.value.message and "max_clock_offset_ms" in err.value.message
    assert err.value.details["drift_ms"] == 501
    assert _rejected() == rejected + 1
    assert REGISTRY.get_sample_value("vecraft_hlc_drift_ms") == 501
    assert clock.last == before  # a refused timestamp leaves the clock untouched
    assert physical_ms(clock.update(pack(BASE + 500, 3))) == BASE + 500  # exactly at the limit: fine


def test_threads_get_unique_increasing_stamps() -> None:
    clock = HybridLogicalClock()
    results: list[list[int]] = [[] for _ in range(4)]

    def work(out: list[int]) -> None:
        for _ in range(5000):
            out.append(clock.now())

    threads = [threading.Thread(target=work, args=(out,)) for out in results]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for out in results:
        assert all(b > a for a, b in pairwise(out))
    assert len({ts for out in results for ts in out}) == 20_000


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(-1500, 1500), min_size=1, max_size=40), st.integers(-5000, 5000))
def test_restart_never_reissues(deltas: list[int], restart_delta: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "hlc.json"
        wall = FakeWall()
        clock = HybridLogicalClock(wall_clock=wall, persist_path=path)
        highest = 0
        for d in deltas:
            wall.ms = max(0, wall.ms + d)
            highest = max(highest, clock.now())
        # "Crash": drop the instance; the wall clock may even have gone backwards.
        wall.ms = max(0, wall.ms + restart_delta)
        restarted = HybridLogicalClock(wall_clock=wall, persist_path=path)
        assert restarted.last > highest
        assert restarted.now() > highest


def test_persist_file_rewritten_only_near_bound(tmp_path: Path) -> None:
    path = tmp_path / "hlc.json"
    wall = FakeWall()
    clock = HybridLogicalClock(wall_clock=wall, persist_path=path, reserve_ms=1000)
    clock.now()
    inode = path.stat().st_ino
    for step in range(400):  # 400 ms of traffic stays inside the reserved window
        wall.ms = BASE + step
        clock.now()
    assert path.stat().st_ino == inode
    wall.ms = BASE + 600  # past half the reserve: the bound moves forward (atomic replace)
    clock.now()
    assert path.stat().st_ino != inode
    assert not (tmp_path / "hlc.json.tmp").exists()


def test_damaged_persist_file_refuses_to_start(tmp_path: Path) -> None:
    path = tmp_path / "hlc.json"
    path.write_text("not json")
    with pytest.raises(ValueError, match="damaged"):
        HybridLogicalClock(persist_path=path)
