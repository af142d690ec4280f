"""Metric naming, idempotent registration and the sync/async timer."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from vecraft.shared.common import metrics

pytestmark = pytest.mark.unit


def _count(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(f"{name}_count", labels or None)
    return 0.0 if value is None else value


def _sum(registry: CollectorRegistry, name: str) -> float:
    value = registry.get_sample_value(f"{name}_sum")
    assert value is not None
    return value


def test_names_follow_the_pattern() -> None:
    assert metrics.metric_name("journal", "append", "seconds") == "vecraft_journal_append_seconds"
    for bad in ("", "Journal", "append-latency", "1x"):
        with pytest.raises(ValueError):
            metrics.metric_name(bad, "x", "seconds")


def test_constructors_are_idempotent_and_refuse_conflicts() -> None:
    reg = CollectorRegistry()
    h1 = metrics.latency_histogram("t", "op", "doc", ["kind"], registry=reg)
    h2 = metrics.latency_histogram("t", "op", "doc", ["kind"], registry=reg)
    assert h1 is h2
    with pytest.raises(ValueError):
        metrics.latency_histogram("t", "op", "doc", ["other"], registry=reg)
    with pytest.raises(ValueError):
        metrics.gauge("t", "op", "seconds", "doc", ["kind"], registry=reg)
    c = metrics.counter("t", "ops", "doc", registry=reg)
    c.inc(3)
    assert reg.get_sample_value("vecraft_t_ops_total") == 3
    g = metrics.gauge("t", "lag", "ops", "doc", registry=reg)
    g.set(7)
    assert reg.get_sample_value("vecraft_t_lag_ops") == 7


def test_buckets_cover_sub_millisecond_to_seconds() -> None:
    assert metrics.LATENCY_BUCKETS[0] <= 0.0001
    assert metrics.LATENCY_BUCKETS[-1] >= 10
    assert list(metrics.LATENCY_BUCKETS) == sorted(metrics.LATENCY_BUCKETS)


def test_timed_as_context_manager_observes_even_on_error() -> None:
    reg = CollectorRegistry()
    h = metrics.latency_histogram("t", "ctx", "doc", registry=reg)
    with metrics.timed(h) as t:
        pass
    assert t.duration is not None and t.duration >= 0
    with pytest.raises(RuntimeError), metrics.timed(h):
        raise RuntimeError("boom")
    assert _count(reg, "vecraft_t_ctx_seconds") == 2


def test_timed_decorates_sync_functions_with_labels() -> None:
    reg = CollectorRegistry()
    h = metrics.latency_histogram("t", "sync", "doc", ["op"], registry=reg)

    @metrics.timed(h.labels(op="get"))
    def get(x: int) -> int:
        return x + 1

    assert get(1) == 2 and get(2) == 3
    assert get.__name__ == "get"
    assert _count(reg, "vecraft_t_sync_seconds", op="get") == 2


async def test_timed_times_the_await_of_async_functions() -> None:
    reg = CollectorRegistry()
    h = metrics.latency_histogram("t", "async", "doc", registry=reg)

    @metrics.timed(h)
    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "done"

    assert await slow() == "done"
    assert _count(reg, "vecraft_t_async_seconds") == 1
    # The coroutine's run time is measured, not just its creation.
    assert _sum(reg, "vecraft_t_async_seconds") >= 0.04

    async with metrics.timed(h):
        await asyncio.sleep(0)
    assert _count(reg, "vecraft_t_async_seconds") == 2
