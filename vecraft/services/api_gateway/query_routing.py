"""Which query processor of a shard serves a search: round-robin, or pinned to the session.

A shard may have several query processors (``vecraft up --query-replicas N``,
``--query-addresses 0=A 0=B``). Each keeps its own journal-fed cache, and a
READ_YOUR_WRITES read makes the processor that serves it pull the journal up
to the session's offset when it is behind ("sync"). A session whose reads go
to one processor pays that sync once per write; spread over N processors it
pays it up to N times. Hence:

* reads with an affinity key (READ_YOUR_WRITES with a session) go to the
  processor the key hashes to — "client affinity" — and to the next one in
  ring order while that one is marked down;
* all other reads (EVENTUAL, BOUNDED_STALENESS, STRONG) go round-robin.

A processor whose call failed with UNAVAILABLE is marked down for
``cooldown_s`` seconds and skipped meanwhile (it is still tried when every
replica is down). :meth:`QueryRouter.plan` gives the processors to try, in
order; the caller tries the first and, when it is unavailable, the second.

Every attempt is counted in ``vecraft_gateway_query_routes_total{shard,
processor, reason}`` with reason ``round_robin``, ``affinity`` or
``failover`` (a retry, or the session's processor being down).
"""

from __future__ import annotations

import itertools
import time
import zlib
from collections.abc import Callable, Sequence

from vecraft.shared.common.metrics import counter

ROUTES = counter("gateway", "query_routes", "query processor calls by shard, processor and reason",
                 ["shard", "processor", "reason"])

ROUND_ROBIN, AFFINITY, FAILOVER = "round_robin", "affinity", "failover"

#: Seconds a processor that answered UNAVAILABLE is skipped.
DEFAULT_COOLDOWN_S = 3.0


def affinity_slot(key: str, n: int) -> int:
    """The stable replica index of ``key`` among ``n`` (the same in every gateway process)."""
    return zlib.crc32(key.encode()) % n


class QueryRouter:
    """Round-robin and affinity over the query processors of each shard group."""

    def __init__(self, *, cooldown_s: float = DEFAULT_COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._counters: dict[tuple[str, ...], itertools.count[int]] = {}
        self._down_until: dict[str, float] = {}

    def is_down(self, address: str) -> bool:
        until = self._down_until.get(address)
        if until is None:
            return False
        if self._clock() >= until:
            del self._down_until[address]
            return False
        return True

    def mark_down(self, address: str) -> None:
        self._down_until[address] = self._clock() + self._cooldown_s

    def mark_up(self, address: str) -> None:
        self._down_until.pop(address, None)

    def plan(self, addresses: Sequence[str], affinity: str | None = None) -> list[tuple[str, str]]:
        """``(address, reason)`` of every processor, in the order to try them.

        The first is the chosen one; processors marked down come last.
        """
        n = len(addresses)
        if affinity:
            start, first_reason = affinity_slot(affinity, n), AFFINITY
        else:
            key = tuple(addresses)
            if key not in self._counters:
                self._counters[key] = itertools.count()
            start, first_reason = next(self._counters[key]) % n, ROUND_ROBIN
        ring = [addresses[(start + i) % n] for i in range(n)]
        order = [a for a in ring if not self.is_down(a)] + [a for a in ring if self.is_down(a)]
        out: list[tuple[str, str]] = []
        for i, address in enumerate(order):
            if i == 0:
                # The session's own processor is down: serving elsewhere is a failover.
                reason = first_reason if address == ring[0] or first_reason == ROUND_ROBIN else FAILOVER
            else:
                reason = FAILOVER
            out.append((address, reason))
        return out
