"""The per-request decision table of the four consistency levels."""

from __future__ import annotations

import pytest

from vecraft.services.query_processor.vector_search.consistency import (
    DEFAULT_MAX_STALENESS_MS,
    NO_SYNC,
    SyncDecision,
    decide,
    is_met,
    requirement,
)
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.consistency import ConsistencyLevel as L

pytestmark = pytest.mark.unit


def test_eventual_never_syncs_without_an_offset() -> None:
    req = requirement(L.EVENTUAL, max_staleness_ms=5)
    assert decide(req, applied=0, staleness_ms=10**9) == NO_SYNC
    assert is_met(req, applied=0, staleness_ms=10**9)


@pytest.mark.parametrize(("staleness", "expected"), [(0, NO_SYNC), (500, NO_SYNC), (501, SyncDecision(True))])
def test_bounded_syncs_to_the_head_past_its_bound(staleness: int, expected: SyncDecision) -> None:
    req = requirement(L.BOUNDED_STALENESS, max_staleness_ms=500)
    assert decide(req, applied=7, staleness_ms=staleness) == expected
    assert is_met(req, applied=7, staleness_ms=staleness) == (expected == NO_SYNC)


def test_bounded_zero_means_the_default_bound() -> None:
    assert requirement(L.BOUNDED_STALENESS).max_staleness_ms == DEFAULT_MAX_STALENESS_MS == 1000
    assert requirement(L.STRONG, max_staleness_ms=300).max_staleness_ms == 0


def test_read_your_writes_syncs_to_the_session_offset() -> None:
    req = requirement(L.READ_YOUR_WRITES, min_offset=10)
    assert decide(req, applied=10, staleness_ms=10**6) == NO_SYNC
    assert decide(req, applied=9, staleness_ms=0) == SyncDecision(True, 10)
    assert not is_met(req, applied=9, staleness_ms=0)
    assert decide(requirement(L.READ_YOUR_WRITES), applied=0, staleness_ms=10**6) == NO_SYNC


def test_strong_with_a_gateway_head_syncs_only_when_behind() -> None:
    req = requirement(L.STRONG, min_offset=42)
    assert not req.latest
    assert decide(req, applied=42, staleness_ms=10**6) == NO_SYNC
    assert decide(req, applied=41, staleness_ms=0) == SyncDecision(True, 42)


def test_strong_without_a_head_asks_the_journal() -> None:
    req = requirement(L.STRONG)
    assert req.latest
    assert decide(req, applied=10**6, staleness_ms=0) == SyncDecision(True, None)
    assert not is_met(req, applied=5, staleness_ms=0, head_target=6)
    assert is_met(req, applied=6, staleness_ms=10**6, head_target=6)


@pytest.mark.parametrize("bad", [-1, 3_600_001])
def test_out_of_range_bound_is_refused(bad: int) -> None:
    with pytest.raises(InvalidRequest, match="max_staleness_ms"):
        requirement(L.BOUNDED_STALENESS, max_staleness_ms=bad)
