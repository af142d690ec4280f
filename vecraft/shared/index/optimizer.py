"""Background index optimization: rebuild a collection's HNSW graph once enough of it is tombstones.

Deletes and upserts of existing ids leave dead nodes in the graph (labels are
never reused): they cost memory and make every walk wider. An
:class:`IndexOptimizer` checks the indexes it is given every
``interval_s``; when one's dead fraction reaches the policy's threshold (like
Qdrant's vacuum at 20 %) and it has at least ``min_dead_rows`` dead nodes (so
tiny collections are not rebuilt constantly), it runs
:meth:`CollectionIndex.optimize` in a worker thread: reads and writes go on
during the rebuild and the new graph is swapped in atomically.

One rebuild runs at a time per process, whatever number of optimizers (one per
hosted shard replica, one per query-processor cache): an optimizer that finds
the process's slot taken tries again at its next check. The most-dead due
index goes first. Each service reports through an :class:`OptimizeObserver`
(its metrics). See docs/indexes.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from vecraft.shared.index.collection import CollectionIndex, OptimizeResult

log = logging.getLogger(__name__)

#: Dead fraction at which an index is rebuilt by default (Qdrant vacuums at 20 %).
DEFAULT_THRESHOLD = 0.2
#: Fewest dead nodes worth a rebuild: below it a collection is not rebuilt whatever its fraction.
MIN_DEAD_ROWS = 1000
#: How often an optimizer looks at its indexes (a check reads two counters per index).
CHECK_INTERVAL_S = 1.0
#: A collection whose rebuild failed is not tried again for this long.
RETRY_AFTER_FAILURE_S = 60.0

# Held while any rebuild of this process runs (acquired without waiting: busy means "next check").
_PROCESS_SLOT = threading.Lock()


@dataclass(frozen=True, slots=True)
class OptimizePolicy:
    """When an index is due for a rebuild. ``threshold`` 0 disables rebuilding."""

    threshold: float = DEFAULT_THRESHOLD
    min_dead_rows: int = MIN_DEAD_ROWS

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"optimize threshold must be within [0, 1], got {self.threshold}")
        if self.min_dead_rows < 0:
            raise ValueError(f"min_dead_rows must be >= 0, got {self.min_dead_rows}")

    @property
    def enabled(self) -> bool:
        return self.threshold > 0

    def due(self, index: CollectionIndex) -> bool:
        dead = index.dead_rows
        return (self.enabled and dead > 0 and dead >= self.min_dead_rows
                and index.dead_fraction >= self.threshold)


class OptimizeObserver:
    """What an optimizer reports (no-ops here; each service sets its metrics)."""

    def dead_fraction(self, label: Label, fraction: float) -> None:
        """The current dead fraction of the index ``label`` (after every check and rebuild)."""

    def forget(self, label: Label) -> None:
        """``label`` is no longer among the optimizer's indexes (dropped): drop its gauges."""

    def rebuilt(self, label: Label, result: OptimizeResult) -> None:
        """A rebuild of ``label`` finished and was swapped in."""


class OptimizeMetrics(OptimizeObserver):
    """Reports to a service's metrics (labelled by the index's label): the dead-fraction gauge, the
    rebuilds and dropped-rows counters and the rebuild-time histogram (unlabelled)."""

    def __init__(self, dead_fraction: Any, rebuilds: Any, dropped: Any, seconds: Any) -> None:
        self._dead_fraction, self._rebuilds = dead_fraction, rebuilds
        self._dropped, self._seconds = dropped, seconds

    def dead_fraction(self, label: Label, fraction: float) -> None:
        self._dead_fraction.labels(*label).set(fraction)

    def forget(self, label: Label) -> None:
        with contextlib.suppress(KeyError):
            self._dead_fraction.remove(*label)

    def rebuilt(self, label: Label, result: OptimizeResult) -> None:
        self._rebuilds.labels(*label).inc()
        self._dropped.labels(*label).inc(result.dropped)
        self._seconds.observe(result.seconds)


#: Names an index in metrics and logs: the label values of its metrics, e.g. (shard, "tenant/name").
Label = tuple[str, ...]
#: The indexes an optimizer watches, asked at every check: (label, index) pairs.
Indexes = Callable[[], Iterable[tuple[Label, CollectionIndex]]]


class IndexOptimizer:
    """Checks ``indexes()`` every ``interval_s`` and rebuilds the most-dead due one (:meth:`run`)."""

    def __init__(self, indexes: Indexes, policy: OptimizePolicy, observer: OptimizeObserver | None = None,
                 *, interval_s: float = CHECK_INTERVAL_S, name: str = "") -> None:
        self.indexes = indexes
        self.policy = policy
        self.observer = observer if observer is not None else OptimizeObserver()
        self.interval_s = interval_s
        self.name = name
        self._published: set[Label] = set()
        self._failed_until: dict[Label, float] = {}

    async def run(self) -> None:
        """Check and rebuild until cancelled; a rebuild in progress is stopped and awaited first."""
        while True:
            await self.tick()
            await asyncio.sleep(self.interval_s)

    async def tick(self) -> OptimizeResult | None:
        """One check: publish every dead fraction, rebuild the most-dead due index if the process's
        slot is free. Returns what the rebuild did (None: none ran, was stopped, or failed: logged)."""
        due: list[tuple[float, Label, CollectionIndex]] = []
        seen: set[Label] = set()
        for label, index in self.indexes():
            fraction = index.dead_fraction
            self.observer.dead_fraction(label, fraction)
            seen.add(label)
            if self.policy.due(index) and self._failed_until.get(label, 0.0) <= time.monotonic():
                due.append((fraction, label, index))
        for label in self._published - seen:
            self.observer.forget(label)
        self._published = seen
        if not due or not _PROCESS_SLOT.acquire(blocking=False):
            return None
        _, label, index = max(due, key=lambda item: item[0])
        try:
            result = await self._rebuild(label, index)
        finally:
            _PROCESS_SLOT.release()
        if result is not None:
            self.observer.rebuilt(label, result)
            self.observer.dead_fraction(label, index.dead_fraction)
            log.info("index rebuilt without its tombstones",
                     extra={"optimizer": self.name, "collection": "/".join(label), "dropped": result.dropped,
                            "nodes": result.nodes_after, "replayed": result.replayed,
                            "seconds": round(result.seconds, 3),
                            "final_section_ms": round(result.final_section_seconds * 1000, 2)})
        return result

    async def _rebuild(self, label: Label, index: CollectionIndex) -> OptimizeResult | None:
        stop = threading.Event()
        work = asyncio.ensure_future(asyncio.to_thread(index.optimize, stop=stop))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            # The replica or cache is going away: stop the thread between chunks and wait for it,
            # so nothing touches the index after its owner closed.
            stop.set()
            await asyncio.wait([work])
            raise
        except Exception:  # a failed rebuild leaves the index as it was; retried later
            log.exception("index rebuild failed; the index keeps its current graph",
                          extra={"optimizer": self.name, "collection": "/".join(label),
                                 "retry_in_s": RETRY_AFTER_FAILURE_S})
            self._failed_until[label] = time.monotonic() + RETRY_AFTER_FAILURE_S
            return None
