"""The one staleness measure (vecraft/shared/replica): conservative, monotonic clock only."""

from __future__ import annotations

import pytest

from vecraft.shared.hlc import pack
from vecraft.shared.replica import UNKNOWN_STALENESS_MS, PartitionStaleness

pytestmark = pytest.mark.unit

T0 = 5_000_000.0  # a monotonic instant (ms)
WALL = 1_700_000_000_000  # HLC physical ms: another clock, never compared with T0


def hlc(ms: float) -> int:
    return pack(int(ms), 0)


def test_unknown_until_a_head_read_confirms_the_copy() -> None:
    f = PartitionStaleness("data-0")
    f.note_applied(5, hlc(WALL))
    assert f.staleness_ms(T0) == UNKNOWN_STALENESS_MS
    f.note_head(5, hlc(WALL), heard_ms=T0)
    assert f.staleness_ms(T0) == 0


def test_a_silent_journal_reads_as_ever_staler_never_fresh() -> None:
    f = PartitionStaleness("data-0")
    f.note_applied(5, hlc(WALL))
    f.note_head(5, hlc(WALL), heard_ms=T0)
    # No more head reads: caught up with the last head heard, yet the silence counts.
    assert f.staleness_ms(T0 + 80) == 80
    assert f.staleness_ms(T0 + 5_000) == 5_000
    # Untimed reports (a stream heartbeat repeating the old head) confirm nothing.
    f.note_head(5, hlc(WALL))
    assert f.staleness_ms(T0 + 6_000) == 6_000


def test_hlc_ahead_of_the_wall_clock_never_shrinks_the_bound() -> None:
    f = PartitionStaleness("data-0")
    f.note_applied(5, hlc(WALL))
    f.note_head(5, hlc(WALL), heard_ms=T0)
    # Entries whose HLC runs an hour ahead of any wall clock (a writer's clock pushed it).
    ahead = WALL + 3_600_000
    f.note_head(7, hlc(ahead + 10), heard_ms=T0 + 1_000)
    f.note_received(6, hlc(ahead))
    assert f.staleness_ms(T0 + 1_000) == 1_000  # the confirmed bound, not "now - hlc" < 0


def test_behind_uses_the_oldest_missing_entry_when_it_is_older() -> None:
    f = PartitionStaleness("data-0")
    f.note_applied(5, hlc(WALL))
    f.note_head(5, hlc(WALL), heard_ms=T0)
    # Head 8 heard at T0+100; entry 6 committed 900 ms (journal clock) before entry 8.
    f.note_head(8, hlc(WALL + 1_000), heard_ms=T0 + 100)
    f.note_received(6, hlc(WALL + 100))
    assert f.staleness_ms(T0 + 100) == 900
    assert f.staleness_ms(T0 + 1_500) == 2_300
    f.note_applied(8, hlc(WALL + 1_000))
    assert f.confirmed_ms == T0 + 100 and f.staleness_ms(T0 + 130) == 30


def test_reached_head_reports_confirm_at_their_send_time() -> None:
    f = PartitionStaleness("data-0")
    f.note_head(2, hlc(WALL), heard_ms=T0 - 40)
    f.note_head(4, hlc(WALL + 5), heard_ms=T0 - 5)
    f.note_applied(2, hlc(WALL))
    assert f.confirmed_ms == T0 - 40
    f.note_applied(4, hlc(WALL + 5))
    assert f.snapshot(T0).staleness_ms == 5


def test_fraction_of_a_millisecond_rounds_up() -> None:
    f = PartitionStaleness("data-0")
    f.note_applied(1, hlc(WALL))
    f.note_head(1, hlc(WALL), heard_ms=T0)
    assert f.staleness_ms(T0 + 0.2) == 1
