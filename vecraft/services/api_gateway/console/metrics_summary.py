"""The gateway's own Prometheus metrics, summarized for the console's overview.

Read from the process's registry (what ``/metrics`` exposes), cumulative since
the gateway started:

- searches by requested consistency level (``vecraft_gateway_search_seconds``):
  count, share of all searches, mean and estimated p50 / p95 / p99 latency;
- journal appends by kind (``vecraft_gateway_journal_append_seconds``), the
  same figures;
- HTTP requests by status class and failed per-shard searches by error.

Percentiles are estimated from the histogram buckets the way Prometheus'
``histogram_quantile`` does: linear within the bucket that holds the rank, the
highest finite bound when the rank falls in the ``+Inf`` bucket.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry

SEARCH_HISTOGRAM = "vecraft_gateway_search_seconds"
APPEND_HISTOGRAM = "vecraft_gateway_journal_append_seconds"
HTTP_REQUESTS = "vecraft_gateway_http_requests"
SHARD_FAILURES = "vecraft_gateway_shard_failures"

QUANTILES = (0.5, 0.95, 0.99)


@dataclasses.dataclass
class _Histogram:
    """One labelled child: cumulative bucket counts by upper bound, count and sum (seconds)."""

    buckets: dict[float, float] = dataclasses.field(default_factory=dict)
    count: float = 0.0
    total: float = 0.0


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """Estimate the ``q`` quantile (seconds) from cumulative ``{upper bound: count}``; None when empty."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def _histograms(registry: CollectorRegistry, name: str, label: str) -> dict[str, _Histogram]:
    out: dict[str, _Histogram] = defaultdict(_Histogram)
    for family in registry.collect():
        if family.name != name:
            continue
        for sample in family.samples:
            key = sample.labels.get(label, "")
            if sample.name == f"{name}_bucket":
                out[key].buckets[float(sample.labels["le"])] = sample.value
            elif sample.name == f"{name}_count":
                out[key].count = sample.value
            elif sample.name == f"{name}_sum":
                out[key].total = sample.value
    return out


def _counter(registry: CollectorRegistry, name: str, label: str) -> dict[str, float]:
    out: dict[str, float] = defaultdict(float)
    for family in registry.collect():
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_total":
                out[sample.labels.get(label, "")] += sample.value
    return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def _latency_rows(histograms: dict[str, _Histogram], label: str) -> dict[str, Any]:
    total = sum(h.count for h in histograms.values())
    rows = []
    for key, h in sorted(histograms.items()):
        if h.count <= 0:
            continue
        row: dict[str, Any] = {label: key, "count": int(h.count), "share": round(h.count / total, 4),
                               "mean_ms": _ms(h.total / h.count)}
        for q in QUANTILES:
            row[f"p{round(q * 100)}_ms"] = _ms(quantile(q, h.buckets))
        rows.append(row)
    return {"total": int(total), "rows": rows}


def summarize(registry: CollectorRegistry = REGISTRY) -> dict[str, Any]:
    """The console's metrics summary (see the module doc); counts since the process started."""
    by_status: dict[str, int] = defaultdict(int)
    for status, value in _counter(registry, HTTP_REQUESTS, "status").items():
        by_status[f"{status[:1]}xx" if status[:1].isdigit() else status] += int(value)
    failures = {error: int(v) for error, v in sorted(_counter(registry, SHARD_FAILURES, "error").items())}
    return {
        "searches": _latency_rows(_histograms(registry, SEARCH_HISTOGRAM, "level"), "level"),
        "writes": _latency_rows(_histograms(registry, APPEND_HISTOGRAM, "kind"), "kind"),
        "http_requests": dict(sorted(by_status.items())),
        "shard_failures": failures,
    }
