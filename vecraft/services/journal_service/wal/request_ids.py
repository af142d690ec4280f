"""The journal-wide request-id index, bounded by a retention window (the idempotency window).

A retried append whose request id is in the index is answered with the
original entry's position (``duplicate=true``) instead of being appended
again. Keeping every id forever would grow memory without bound, so the index
remembers an id while its entry is both

- younger than ``seconds`` (by the entry's HLC physical time against the wall
  clock), and
- among the newest ``count`` ids,

and forgets the oldest first, like Kafka expires idle producer ids
(``producer.id.expiration.ms``, one day by default). A retry inside the window
is a duplicate, also after a restart: the index is rebuilt from the stored
records, keeping only those inside the window. A retry after it is a new write.

Entries are added in commit order, which is HLC order within a partition and
nearly so across partitions (their group commits finish independently), so
"oldest first" is exact per partition and off by at most one group commit
across them; an id is never forgotten *before* its window ends.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass

from vecraft.services.journal_service import metrics
from vecraft.services.journal_service.wal import Position
from vecraft.shared.hlc import physical_ms, wall_clock_ms


@dataclass(frozen=True, slots=True)
class RequestIdRetention:
    """How long and how many request ids the journal remembers (the idempotency window)."""

    #: Ids remembered at most; past it the oldest is forgotten. A few hundred bytes of memory each.
    count: int = 1_000_000
    #: Seconds after its entry was written that an id is remembered at least (if within ``count``).
    seconds: float = 86_400.0

    def __post_init__(self) -> None:
        if self.count < 1 or self.seconds <= 0:
            raise ValueError(f"request-id retention needs count >= 1 and seconds > 0, got {self}")


#: Kafka's producer-id expiration (one day) and a million ids.
DEFAULT_RETENTION = RequestIdRetention()


class RequestIdIndex(MutableMapping[str, Position]):
    """Request id -> position of its entry, forgetting ids outside the retention window.

    Args:
        retention: the window.
        wall_clock: wall-clock milliseconds (injectable for tests); must be the
            clock the journal's HLC follows, since ages are measured against
            entries' HLC physical times.

    Not thread-safe: used from the event loop only. Adding an id already held
    replaces its position but keeps its place in the eviction order.
    """

    def __init__(self, retention: RequestIdRetention = DEFAULT_RETENTION, *,
                 wall_clock: Callable[[], int] = wall_clock_ms) -> None:
        self.retention = retention
        self._wall = wall_clock
        self._positions: dict[str, Position] = {}
        self._order: collections.deque[str] = collections.deque()  # oldest first
        self._recovering: list[tuple[int, str, Position]] = []
        self._horizon = 0
        self._held = metrics.REQUEST_IDS_HELD
        self._evicted_age = metrics.REQUEST_IDS_EVICTED.labels("age")
        self._evicted_count = metrics.REQUEST_IDS_EVICTED.labels("count")

    # ---- MutableMapping ------------------------------------------------------------
    def __getitem__(self, request_id: str) -> Position:
        self._expire()
        return self._positions[request_id]

    def __setitem__(self, request_id: str, position: Position) -> None:
        if request_id not in self._positions:
            self._order.append(request_id)
        self._positions[request_id] = position
        self._expire()
        self._held.set(len(self._positions))

    def __delitem__(self, request_id: str) -> None:
        del self._positions[request_id]
        self._order.remove(request_id)  # O(n); the journal never forgets an id this way
        self._held.set(len(self._positions))

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._order))

    def __len__(self) -> int:
        return len(self._positions)

    # ---- rebuild on start -------------------------------------------------------------
    def recovered(self, request_id: str, position: Position) -> None:
        """A stored record's id, read on start in any order; kept only if inside the window.

        Call :meth:`recovery_done` once every partition has been read.
        """
        if not self._recovering and not self._horizon:
            self._horizon = self._wall() - self._window_ms
        if physical_ms(position.hlc) < self._horizon:
            return
        self._recovering.append((position.hlc, request_id, position))
        if len(self._recovering) > 2 * self.retention.count:
            self._trim_recovering()

    def recovery_done(self) -> None:
        """Add the recovered ids oldest first, so the newest ``count`` stay."""
        self._trim_recovering()
        for _, request_id, position in self._recovering:
            self[request_id] = position
        self._recovering = []
        self._horizon = 0
        self._held.set(len(self._positions))

    # ---- internals ----------------------------------------------------------------------
    @property
    def _window_ms(self) -> int:
        return int(self.retention.seconds * 1000)

    def _trim_recovering(self) -> None:
        self._recovering.sort(key=lambda item: item[0])
        del self._recovering[:-self.retention.count]

    def _expire(self) -> None:
        """Forget ids past the count bound or the age bound, oldest first."""
        order, positions = self._order, self._positions
        held = len(positions)
        while len(order) > self.retention.count:
            del positions[order.popleft()]
            self._evicted_count.inc()
        if order:
            horizon = self._wall() - self._window_ms
            while order and physical_ms(positions[order[0]].hlc) < horizon:
                del positions[order.popleft()]
                self._evicted_age.inc()
        if len(positions) != held:
            self._held.set(len(positions))
