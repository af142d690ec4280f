"""Percentiles and summaries of the benchmark harness."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vecraft.bench._stats import fraction, percentile, ratio, summarize

pytestmark = pytest.mark.unit


def test_percentile_interpolates_between_order_statistics() -> None:
    values = list(range(1, 101))  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0


def test_percentile_of_nothing_is_nan_and_bad_q_is_refused() -> None:
    assert math.isnan(percentile([], 95))
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summarize_matches_numpy_and_ignores_order() -> None:
    rng = np.random.default_rng(3)
    lat = rng.exponential(5.0, size=1001)
    s = summarize(rng.permutation(lat))
    assert s.count == 1001
    assert s.p50 == pytest.approx(np.percentile(lat, 50))
    assert s.p95 == pytest.approx(np.percentile(lat, 95))
    assert s.p99 == pytest.approx(np.percentile(lat, 99))
    assert s.max == pytest.approx(lat.max())
    assert s.p50 <= s.p95 <= s.p99 <= s.max


def test_summarize_empty_is_all_nan() -> None:
    s = summarize([])
    assert s.count == 0 and math.isnan(s.p95) and math.isnan(s.mean)


def test_fraction_skips_unknown_and_ratio_guards_zero() -> None:
    assert fraction([True, False, None, True]) == pytest.approx(2 / 3)
    assert math.isnan(fraction([None, None]))
    assert ratio(2.0, 4.0) == 0.5
    assert math.isnan(ratio(1.0, 0.0))
    assert math.isnan(ratio(math.nan, 1.0))
