"""How current the cached copy of one journal partition is: the staleness bound.

Staleness of a copy (DESIGN.md section 6) is ``now`` minus the commit time of
the oldest committed entry it has not applied, 0 when nothing is missing. The
processor cannot know "now's" journal head without asking, so it reports an
upper bound that is never below the true value:

    staleness = max(0, now - L)

where ``L`` is a lower bound of the commit time of the oldest entry the copy
may be missing, the largest of:

- ``confirmed_ms``: the latest wall time at which the journal's head was known
  to be <= the applied offset (a head heard at time t that the copy has
  reached means nothing committed before t is missing);
- the commit time (HLC physical part) of the applied entry: any entry after it
  committed later;
- the exact commit time of entry ``applied + 1`` when it has been received
  (from the push stream or held back by the apply delay).

So a copy that is caught up reports the age of its latest head report (the
head poll interval when the journal is healthy) and one that has not heard
from the journal for a while reports that whole while; a lagging copy reports
exactly how old its oldest missing entry is. HLC physical time comes from the
journal's clock; the bound assumes the processor's clock is not behind it
(same host, or NTP within the cluster's max clock offset).
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from vecraft.shared.hlc import physical_ms

# Head reports still waiting for the copy to reach them; older ones are
# dropped first, which only makes the bound looser, never wrong.
_MAX_PENDING_HEADS = 1024


def wall_ms() -> float:
    """Wall clock in milliseconds (the scale of HLC physical time)."""
    return time.time() * 1000.0


@dataclass(frozen=True, slots=True)
class FreshnessSnapshot:
    """The freshness of one partition at one instant."""

    partition: str
    applied_offset: int
    applied_hlc: int
    head_offset: int
    staleness_ms: int


class PartitionFreshness:
    """Tracks applied position, heard heads and received entries of one partition.

    Not thread-safe: call it from the event loop only (the cache applies in a
    thread pool and reports the result back on the loop).
    """

    def __init__(self, partition: str) -> None:
        self.partition = partition
        self.applied_offset = 0
        self.applied_hlc = 0
        self.head_offset = 0
        self.head_hlc = 0
        self.confirmed_ms = 0.0
        # (head offset, heard at ms) reports above the applied offset.
        self._pending_heads: deque[tuple[int, float]] = deque()
        # (offset, hlc) of entries received but not applied yet, in offset order.
        self._received: deque[tuple[int, int]] = deque()

    # ---- inputs ----------------------------------------------------------------
    def note_head(self, offset: int, hlc: int, heard_ms: float | None = None) -> None:
        """The journal's head was ``offset`` (``hlc``), as of ``heard_ms`` if known.

        ``heard_ms`` must be a time at or before the moment the journal read its
        head (for a request: when it was sent). Reports without a time only
        raise the known head.
        """
        if offset > self.head_offset:
            self.head_offset, self.head_hlc = offset, hlc
        if heard_ms is None:
            return
        if offset <= self.applied_offset:
            self.confirmed_ms = max(self.confirmed_ms, heard_ms)
            return
        if self._pending_heads and self._pending_heads[-1][0] >= offset:
            # A later report of the same (or a smaller, reordered) head: keep the
            # highest offset with the latest time, which is the tighter bound.
            top_offset, top_ms = self._pending_heads[-1]
            self._pending_heads[-1] = (top_offset, max(top_ms, heard_ms))
        else:
            self._pending_heads.append((offset, heard_ms))
            if len(self._pending_heads) > _MAX_PENDING_HEADS:
                self._pending_heads.popleft()

    def note_received(self, offset: int, hlc: int) -> None:
        """An entry arrived from the push stream and waits to be applied."""
        if offset <= self.applied_offset or (self._received and offset <= self._received[-1][0]):
            return
        self._received.append((offset, hlc))
        self.note_head(offset, hlc)

    def note_applied(self, offset: int, hlc: int) -> None:
        """The copy now reflects every entry up to ``offset`` (whose HLC is ``hlc``)."""
        if offset <= self.applied_offset:
            return
        self.applied_offset, self.applied_hlc = offset, hlc
        self.note_head(offset, hlc)
        while self._received and self._received[0][0] <= offset:
            self._received.popleft()
        while self._pending_heads and self._pending_heads[0][0] <= offset:
            self.confirmed_ms = max(self.confirmed_ms, self._pending_heads.popleft()[1])

    # ---- outputs ---------------------------------------------------------------
    def staleness_ms(self, now_ms: float | None = None, pending_hlc: int = 0) -> int:
        """Upper bound of the staleness of the applied state (see module doc).

        Args:
            now_ms: wall time to measure at (default: now).
            pending_hlc: HLC of the oldest entry the push stream holds back
                (``Subscription.oldest_pending_hlc()``), 0 if none.
        """
        now = wall_ms() if now_ms is None else now_ms
        lower = max(self.confirmed_ms, float(physical_ms(self.applied_hlc)) if self.applied_hlc else 0.0)
        nxt = self._next_unapplied_hlc(pending_hlc)
        if nxt:
            lower = max(lower, float(physical_ms(nxt)))
        if lower <= 0.0:
            # Never heard from the journal and nothing applied: nothing is known.
            return int(now)
        # Rounded up: a bound must not shrink by truncation.
        return max(0, math.ceil(now - lower))

    def snapshot(self, now_ms: float | None = None, pending_hlc: int = 0) -> FreshnessSnapshot:
        return FreshnessSnapshot(self.partition, self.applied_offset, self.applied_hlc, self.head_offset,
                                 self.staleness_ms(now_ms, pending_hlc))

    def _next_unapplied_hlc(self, pending_hlc: int) -> int:
        """HLC of entry ``applied + 1`` when known, else 0."""
        if self._received:
            offset, hlc = self._received[0]
            return hlc if offset == self.applied_offset + 1 else 0
        # With nothing received-but-unapplied, the push stream's oldest held-back
        # entry is at most applied + 1 (it is gapless and resumes after the
        # applied offset), so its commit time is a valid lower bound.
        return pending_hlc
