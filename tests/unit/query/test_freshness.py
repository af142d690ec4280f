"""The staleness bound: exact when the missing entry is known, never below the truth otherwise."""

from __future__ import annotations

import pytest

from vecraft.services.query_processor.cache.freshness import PartitionFreshness
from vecraft.shared.hlc import pack

pytestmark = pytest.mark.unit

T0 = 1_700_000_000_000.0


def hlc(ms: float) -> int:
    return pack(int(ms), 0)


def test_caught_up_reports_the_age_of_the_last_head_report() -> None:
    f = PartitionFreshness("data-0")
    f.note_applied(5, hlc(T0 - 10_000))
    f.note_head(5, hlc(T0 - 10_000), heard_ms=T0)
    assert f.staleness_ms(T0) == 0
    assert f.staleness_ms(T0 + 80) == 80
    # The journal stopped answering: the silence counts as staleness.
    assert f.staleness_ms(T0 + 5_000) == 5_000


def test_lagging_reports_the_age_of_the_oldest_missing_entry() -> None:
    f = PartitionFreshness("data-0")
    f.note_applied(5, hlc(T0 - 10_000))
    f.note_head(5, hlc(T0 - 10_000), heard_ms=T0 - 2_000)
    f.note_head(8, hlc(T0 - 100), heard_ms=T0)
    # Entry 6 is unknown: its commit came after entry 5's and after the last report of head 5.
    assert f.staleness_ms(T0) == 2_000
    f.note_received(6, hlc(T0 - 900))
    f.note_received(7, hlc(T0 - 500))
    assert f.staleness_ms(T0) == 900
    f.note_applied(6, hlc(T0 - 900))
    assert f.staleness_ms(T0) == 500
    f.note_applied(8, hlc(T0 - 100))
    # Head 8 was reported at T0 and is now reached.
    assert f.staleness_ms(T0 + 30) == 30


def test_held_back_entry_of_the_push_stream_counts_when_nothing_is_queued() -> None:
    f = PartitionFreshness("data-0")
    f.note_applied(3, hlc(T0 - 60_000))
    f.note_head(3, hlc(T0 - 60_000), heard_ms=T0 - 1_000)
    assert f.staleness_ms(T0, pending_hlc=hlc(T0 - 700)) == 700
    # With entries queued for apply, the held-back one is later than the missing one.
    f.note_received(4, hlc(T0 - 800))
    assert f.staleness_ms(T0, pending_hlc=hlc(T0 - 300)) == 800


def test_fraction_of_a_millisecond_rounds_up() -> None:
    f = PartitionFreshness("data-0")
    f.note_applied(1, hlc(T0 - 5))
    f.note_head(2, hlc(T0), heard_ms=T0)
    f.note_received(2, hlc(T0))
    assert f.staleness_ms(T0 + 0.2) == 1


def test_head_reports_are_matched_when_the_copy_reaches_them() -> None:
    f = PartitionFreshness("data-0")
    f.note_head(2, hlc(T0 - 50), heard_ms=T0 - 40)
    f.note_head(4, hlc(T0 - 10), heard_ms=T0 - 5)
    f.note_applied(2, hlc(T0 - 50))
    assert f.confirmed_ms == T0 - 40
    f.note_applied(4, hlc(T0 - 10))
    assert f.confirmed_ms == T0 - 5
    assert f.snapshot(T0).staleness_ms == 5
