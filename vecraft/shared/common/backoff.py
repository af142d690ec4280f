"""The one retry delay of Vecraft's loops: doubled after each failure, capped, reset on success.

Every reconnecting loop (Watch followers, journal calls and subscriptions) and the
supervisor's restarts take their waits from a :class:`Backoff`, each with its own
bounds; the growth, the cap, the jitter and the reset are written here once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable


class Backoff:
    """Delays ``first``, ``first * factor``, ... up to ``cap`` (seconds), back to ``first`` on :meth:`reset`.

    ``jitter`` spreads each delay uniformly over ``delay * (1 ± jitter)`` (0 <= jitter <= 1), so
    clients that lost the same server do not all come back in the same instant.
    """

    def __init__(self, first: float, cap: float, *, factor: float = 2.0, jitter: float = 0.0,
                 rng: Callable[[], float] = random.random) -> None:
        if not 0 < first <= cap or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError(f"need 0 < first <= cap, factor >= 1 and 0 <= jitter <= 1; got first={first}, "
                             f"cap={cap}, factor={factor}, jitter={jitter}")
        self.first, self.cap, self.factor, self.jitter = first, cap, factor, jitter
        self._rng = rng
        self._current = first

    @property
    def current(self) -> float:
        """The delay :meth:`next` gives next, before jitter."""
        return self._current

    def next(self) -> float:
        """The delay to wait now; the one after it grows."""
        delay = self._current
        self._current = min(self._current * self.factor, self.cap)
        if self.jitter:
            delay *= 1 + self.jitter * (2 * self._rng() - 1)
        return delay

    def nth(self, n: int) -> float:
        """The delay before retry ``n`` (0 = the first), without jitter, for a caller that counts its
        failures itself."""
        return float(min(self.first * self.factor ** max(n, 0), self.cap))

    def reset(self) -> None:
        """A success: the next delay is ``first`` again."""
        self._current = self.first

    async def sleep(self) -> None:
        """Wait :meth:`next` seconds."""
        await asyncio.sleep(self.next())
