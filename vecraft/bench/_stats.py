"""Latency and ratio summaries shared by every benchmark.

Percentiles use linear interpolation between order statistics (numpy's
default), so P95 of 20 samples lies between the 19th and 20th smallest value;
with few samples the tail percentiles are rough and the reports say how many
samples each cell has.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``; NaN when there are none."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be in 0..100, got {q}")
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return math.nan
    return float(np.percentile(arr, q))


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Order statistics of one set of latencies, in milliseconds."""

    count: int
    p50: float
    p95: float
    p99: float
    mean: float
    max: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarize(latencies_ms: Iterable[float]) -> LatencySummary:
    """P50/P95/P99, mean and max of ``latencies_ms`` (all NaN when empty)."""
    arr = np.fromiter(latencies_ms, dtype=np.float64)
    if arr.size == 0:
        nan = math.nan
        return LatencySummary(0, nan, nan, nan, nan, nan)
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return LatencySummary(int(arr.size), float(p50), float(p95), float(p99),
                          float(arr.mean()), float(arr.max()))


def fraction(flags: Iterable[bool | None]) -> float:
    """Share of True among the known (non-None) flags; NaN when none is known."""
    known = [bool(f) for f in flags if f is not None]
    return sum(known) / len(known) if known else math.nan


def ratio(ours: float, theirs: float) -> float:
    """``ours / theirs``; NaN when either is unknown or ``theirs`` is zero."""
    if math.isnan(ours) or math.isnan(theirs) or theirs == 0:
        return math.nan
    return ours / theirs
