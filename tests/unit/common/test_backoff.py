"""The one retry delay: growth, cap, jitter bounds, reset."""

from __future__ import annotations

import asyncio
import time

import pytest

from vecraft.shared.common.backoff import Backoff

pytestmark = pytest.mark.unit


def test_doubles_up_to_the_cap_and_resets() -> None:
    backoff = Backoff(0.1, 1.0)
    assert [round(backoff.next(), 6) for _ in range(6)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next() == 0.1 and backoff.current == pytest.approx(0.2)


def test_nth_counts_from_zero() -> None:
    backoff = Backoff(0.5, 4.0)
    assert [backoff.nth(n) for n in (-1, 0, 1, 2, 3, 10)] == [0.5, 0.5, 1.0, 2.0, 4.0, 4.0]
    assert backoff.current == 0.5  # nth keeps no state


def test_another_factor() -> None:
    backoff = Backoff(1.0, 30.0, factor=3.0)
    assert [backoff.next() for _ in range(5)] == [1.0, 3.0, 9.0, 27.0, 30.0]


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.5, 0.999999])
def test_jitter_stays_within_its_fraction(draw: float) -> None:
    backoff = Backoff(1.0, 8.0, jitter=0.5, rng=lambda: draw)
    for expected in (1.0, 2.0, 4.0, 8.0, 8.0):
        delay = backoff.next()
        assert expected * 0.5 <= delay <= expected * 1.5
        assert delay == pytest.approx(expected * (1 + 0.5 * (2 * draw - 1)))


@pytest.mark.parametrize(("first", "cap", "factor", "jitter"),
                         [(0.0, 1.0, 2.0, 0.0), (2.0, 1.0, 2.0, 0.0), (0.1, 1.0, 0.5, 0.0),
                          (0.1, 1.0, 2.0, 1.5)])
def test_bad_bounds_are_refused(first: float, cap: float, factor: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(first, cap, factor=factor, jitter=jitter)


def test_sleep_waits_the_delay() -> None:
    backoff = Backoff(0.05, 1.0)
    began = time.monotonic()
    asyncio.run(backoff.sleep())
    assert time.monotonic() - began >= 0.045 and backoff.current == pytest.approx(0.1)
