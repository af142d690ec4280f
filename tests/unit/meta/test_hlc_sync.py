"""HLC coordination: high-water mark, drift sign, flagging, no runaway clock."""

from __future__ import annotations

import pytest

from vecraft.services.meta_manager.hlc_sync import HlcCoordinator
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.hlc import pack, physical_ms

pytestmark = pytest.mark.unit

NOW = 1_700_000_000_000


def coordinator(now: list[int]) -> HlcCoordinator:
    return HlcCoordinator(500, wall_clock=lambda: now[0])


def test_reports_within_the_offset_raise_the_high_water_mark() -> None:
    now = [NOW]
    hlc = coordinator(now)
    assert hlc.cluster_hlc() == pack(NOW, 0)
    report = hlc.report("a", pack(NOW + 200, 5))
    assert (report.drift_ms, report.flagged) == (200, False)
    assert report.cluster_hlc == pack(NOW + 200, 5)
    # The next node is measured against the raised mark.
    behind = hlc.report("b", pack(NOW + 100, 0))
    assert (behind.drift_ms, behind.flagged) == (-100, False)
    assert behind.cluster_hlc == pack(NOW + 200, 5)
    # The wall clock carries the mark forward when nobody reports.
    now[0] = NOW + 10_000
    assert physical_ms(hlc.cluster_hlc()) == NOW + 10_000


def test_a_runaway_clock_is_flagged_and_ignored_until_it_recovers() -> None:
    now = [NOW]
    hlc = coordinator(now)
    runaway = hlc.report("fast", pack(NOW + 60_000, 0))
    assert runaway.flagged and runaway.drift_ms == 60_000
    assert runaway.cluster_hlc == pack(NOW, 0)
    assert hlc.report("slow", pack(NOW - 501, 0)).flagged
    assert hlc.flagged_nodes() == ["fast", "slow"]
    assert not hlc.report("fast", pack(NOW + 1, 0)).flagged
    assert hlc.flagged_nodes() == ["slow"]


@pytest.mark.parametrize("node, value", [("", 1), ("n", 0)])
def test_bad_reports(node: str, value: int) -> None:
    with pytest.raises(InvalidRequest):
        coordinator([NOW]).report(node, value)
