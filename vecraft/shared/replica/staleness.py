"""How stale a replica's copy of one journal partition may be: one conservative measure.

Staleness of a copy (DESIGN.md section 6) is *now* minus the commit time of
the oldest committed entry it has not applied. A replica cannot know the
journal's head at this very moment without asking, so it reports a bound that
is never below the true value:

- **confirmed**: the latest moment ``t`` (local monotonic clock) at which the
  replica learned that it had everything the journal had committed: a head
  read *sent* at ``t`` answered ``h`` and the replica has applied ``h``. Every
  entry it may be missing committed after ``t``, so ``now - t`` bounds the
  staleness from above. A journal that goes silent (dead, partitioned) stops
  confirmations, and the bound keeps growing; it never drops back to 0 by
  itself.
- **behind** (a head above the applied offset is known): the age of the oldest
  unapplied entry, estimated as ``now - t_h + (hlc(h) - hlc(e))`` from a head
  report ``h`` heard at ``t_h`` and that entry's HLC, and never smaller than
  the confirmed bound.

Clocks are never mixed: monotonic times are compared with monotonic times and
HLCs with HLCs. HLC physical time is *not* wall time (a writer's clock can push
it ahead of the journal's wall clock), so ``now - physical(hlc)`` is never used.

Not thread-safe: call it from one event loop.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass

from vecraft.shared.hlc import physical_ms

# Head reports still waiting for the copy to reach them; the oldest are dropped
# first, which only loosens the bound (a later report confirms less), never breaks it.
_MAX_PENDING_HEADS = 1024

#: Reported while no head read ever confirmed the copy: nothing is known about it.
UNKNOWN_STALENESS_MS = 2**31 - 1


def monotonic_ms() -> float:
    """The local monotonic clock in milliseconds: the only clock staleness is measured on."""
    return time.monotonic() * 1000.0


@dataclass(frozen=True, slots=True)
class StalenessSnapshot:
    """The position and staleness of one partition at one instant."""

    partition: str
    applied_offset: int
    applied_hlc: int
    head_offset: int
    staleness_ms: int


class PartitionStaleness:
    """Applied position, heard heads and received entries of one partition; the staleness bound."""

    def __init__(self, partition: str) -> None:
        self.partition = partition
        self.applied_offset = 0
        self.applied_hlc = 0
        self.head_offset = 0
        self.head_hlc = 0
        #: Monotonic ms of the latest confirmation (0.0: never confirmed).
        self.confirmed_ms = 0.0
        # The latest timed head report: (offset, hlc, heard at monotonic ms).
        self._timed_head: tuple[int, int, float] | None = None
        # (head offset, heard at ms) reports above the applied offset, offsets increasing.
        self._pending_heads: deque[tuple[int, float]] = deque()
        # (offset, hlc) of entries received but not applied yet, in offset order.
        self._received: deque[tuple[int, int]] = deque()

    # ---- inputs ----------------------------------------------------------------
    def note_head(self, offset: int, hlc: int, heard_ms: float | None = None) -> None:
        """The journal's head was ``offset`` (``hlc``), read by a request sent at ``heard_ms``.

        ``heard_ms`` (monotonic ms) must be at or before the moment the journal
        read its head: the time the request was *sent*. Reports without a time
        (stream heartbeats, received entries) only raise the known head.
        """
        if offset > self.head_offset:
            self.head_offset, self.head_hlc = offset, hlc
        if heard_ms is None:
            return
        if self._timed_head is None or offset >= self._timed_head[0]:
            self._timed_head = (offset, hlc, heard_ms)
        if offset <= self.applied_offset:
            self.confirmed_ms = max(self.confirmed_ms, heard_ms)
            return
        if self._pending_heads and self._pending_heads[-1][0] >= offset:
            top_offset, top_ms = self._pending_heads[-1]
            self._pending_heads[-1] = (top_offset, max(top_ms, heard_ms))
        else:
            self._pending_heads.append((offset, heard_ms))
            if len(self._pending_heads) > _MAX_PENDING_HEADS:
                self._pending_heads.popleft()

    def note_received(self, offset: int, hlc: int) -> None:
        """An entry arrived (push stream) and waits to be applied."""
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

    def reset(self) -> None:
        """Forget everything (the copy is rebuilt from scratch)."""
        self.__init__(self.partition)  # type: ignore[misc]

    # ---- outputs ---------------------------------------------------------------
    def behind(self) -> bool:
        """Whether a head above the applied offset is known."""
        return self.head_offset > self.applied_offset

    def staleness_ms(self, now_ms: float | None = None, pending_hlc: int = 0) -> int:
        """Upper bound of the staleness of the applied state (see module doc).

        Args:
            now_ms: monotonic ms to measure at (default: now).
            pending_hlc: HLC of the oldest entry the push stream holds back
                (``Subscription.oldest_pending_hlc()``), 0 if none.
        """
        if self.confirmed_ms <= 0.0:
            return UNKNOWN_STALENESS_MS
        now = monotonic_ms() if now_ms is None else now_ms
        bound = now - self.confirmed_ms
        oldest = self._next_unapplied_hlc(pending_hlc) if self.behind() else 0
        if oldest and self._timed_head is not None:
            h_offset, h_hlc, h_ms = self._timed_head
            if h_offset > self.applied_offset and h_hlc >= oldest:
                bound = max(bound, now - h_ms + (physical_ms(h_hlc) - physical_ms(oldest)))
        # Rounded up: a bound must not shrink by truncation.
        return min(UNKNOWN_STALENESS_MS, max(0, math.ceil(bound)))

    def snapshot(self, now_ms: float | None = None, pending_hlc: int = 0) -> StalenessSnapshot:
        return StalenessSnapshot(self.partition, self.applied_offset, self.applied_hlc, self.head_offset,
                                 self.staleness_ms(now_ms, pending_hlc))

    def _next_unapplied_hlc(self, pending_hlc: int) -> int:
        """HLC of entry ``applied + 1`` when known, else 0."""
        if self._received:
            offset, hlc = self._received[0]
            return hlc if offset == self.applied_offset + 1 else 0
        # Nothing received-but-unapplied: the push stream's oldest held-back entry
        # is entry applied + 1 (the stream is gapless and resumes after applied).
        return pending_hlc
