"""Prometheus helpers every Vecraft service uses.

Names follow one pattern, ``vecraft_<area>_<thing>_<unit>`` (for example
``vecraft_journal_append_seconds`` or ``vecraft_storage_applied_entries_total``),
so dashboards can find a metric without reading code. The constructors here
build that name from its parts and are idempotent: asking twice for the same
metric in one process returns the same object instead of failing with
prometheus-client's "Duplicated timeseries" (several services or tests may
live in one interpreter). Asking for an existing name with a different type or
label set is a programming error and raises ``ValueError``.

:func:`timed` measures wall time into a histogram (or a labelled child) as a
context manager (``with`` / ``async with``) or a decorator for plain and
``async`` functions; prometheus-client's own ``Histogram.time()`` would time
only the creation of a coroutine.
"""

from __future__ import annotations

import functools
import inspect
import re
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

#: Latency buckets in seconds: 100 µs .. 10 s, about three per decade. Sub-ms
#: buckets matter for in-process index searches and cache hits; the top ones
#: for pull-before-read syncs that wait on a lagging replica.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)

_PART = re.compile(r"^[a-z][a-z0-9_]*$")
_lock = threading.Lock()
_metrics: dict[tuple[int, str], Counter | Gauge | Histogram] = {}

F = TypeVar("F", bound=Callable[..., Any])


class Observer(Protocol):
    """Anything with ``observe(seconds)``: a Histogram, Summary or a labelled child."""

    def observe(self, amount: float) -> None: ...


def metric_name(area: str, thing: str, unit: str) -> str:
    """``vecraft_<area>_<thing>_<unit>``; each part lower_snake_case.

    Raises:
        ValueError: a part is empty or not lower_snake_case.
    """
    for part in (area, thing, unit):
        if not _PART.match(part):
            raise ValueError(f"metric name part {part!r} must be lower_snake_case")
    return f"vecraft_{area}_{thing}_{unit}"


def _get_or_create(kind: type[Counter | Gauge | Histogram], name: str, documentation: str,
                   labels: Sequence[str], registry: CollectorRegistry,
                   **kwargs: Any) -> Any:
    key = (id(registry), name)
    with _lock:
        existing = _metrics.get(key)
        if existing is not None:
            if type(existing) is not kind or tuple(existing._labelnames) != tuple(labels):
                raise ValueError(f"metric {name} already exists as {type(existing).__name__}"
                                 f"{tuple(existing._labelnames)}")
            return existing
        metric = kind(name, documentation, labelnames=tuple(labels), registry=registry, **kwargs)
        _metrics[key] = metric
        return metric


def counter(area: str, thing: str, documentation: str, labels: Sequence[str] = (), *,
            registry: CollectorRegistry = REGISTRY) -> Counter:
    """A counter named ``vecraft_<area>_<thing>_total``."""
    # prometheus-client appends "_total" itself when it exposes a counter.
    return _get_or_create(Counter, metric_name(area, thing, "total"), documentation, labels, registry)


def gauge(area: str, thing: str, unit: str, documentation: str, labels: Sequence[str] = (), *,
          registry: CollectorRegistry = REGISTRY) -> Gauge:
    """A gauge named ``vecraft_<area>_<thing>_<unit>`` (unit e.g. ``ops``, ``bytes``, ``ms``)."""
    return _get_or_create(Gauge, metric_name(area, thing, unit), documentation, labels, registry)


def latency_histogram(area: str, thing: str, documentation: str, labels: Sequence[str] = (), *,
                      buckets: Sequence[float] = LATENCY_BUCKETS,
                      registry: CollectorRegistry = REGISTRY) -> Histogram:
    """A histogram of durations named ``vecraft_<area>_<thing>_seconds``."""
    return _get_or_create(Histogram, metric_name(area, thing, "seconds"), documentation, labels,
                          registry, buckets=tuple(buckets))


class timed:  # noqa: N801 - lower case: used like a function, ``with timed(h):`` / ``@timed(h)``
    """Observe the elapsed wall time (seconds) into ``metric``.

    Usable as ``with timed(h):``, ``async with timed(h):``, ``@timed(h)`` on a
    function or on an ``async def`` (the await is timed, not the call). The
    duration is observed also when the body raises. ``duration`` holds the last
    measurement of a context-manager use.
    """

    def __init__(self, metric: Observer) -> None:
        self.metric = metric
        self.duration: float | None = None
        self._start = 0.0

    def __enter__(self) -> Self:
        self._start = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.duration = time.perf_counter() - self._start
        self.metric.observe(self.duration)

    async def __aenter__(self) -> Self:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        metric = self.metric
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                # A fresh timer per call: the decorated function may run concurrently.
                with timed(metric):
                    return await func(*args, **kwargs)
            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with timed(metric):
                return func(*args, **kwargs)
        return wrapper  # type: ignore[return-value]
