"""How many vectors each tenant stores, for ``max_vectors`` (docs/quotas.md, "How exact").

The storage nodes report their live records per collection (``Status``, as the web console
reads them); per shard the replica holding the most counts, summed over shards and over the
tenant's collections. A reading is reused for ``max_age_s``; when it is older, the next
check starts a new one in the background and goes on with the old reading (only the very
first check of a gateway waits for one). Rows this gateway admitted after a reading was
started are added to it until the next reading, so one gateway's own bursts are counted at
once; rows other gateways admitted, and rows not yet applied by the storage nodes when the
reading was taken, are not.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: Reads ``{"tenant/collection": live records}`` from the storage nodes.
ReadCounts = Callable[[], Awaitable[dict[str, int]]]

DEFAULT_MAX_AGE_S = 1.0


class StoredVectors:
    """Live vectors per tenant (see the module doc)."""

    def __init__(self, read: ReadCounts, *, max_age_s: float = DEFAULT_MAX_AGE_S) -> None:
        self._read = read
        self._max_age_s = max_age_s
        self._totals: dict[str, int] | None = None
        self._taken_at = 0.0
        self._since: dict[str, int] = defaultdict(int)
        self._refresh: asyncio.Task[None] | None = None

    async def total(self, tenant: str) -> int:
        """Vectors ``tenant`` stores, as well as this gateway knows."""
        if self._totals is None:
            await self._refreshed()
        elif time.monotonic() - self._taken_at > self._max_age_s and self._refresh is None:
            self._refresh = asyncio.ensure_future(self._take())
            self._refresh.add_done_callback(self._done)
        totals = self._totals or {}
        return totals.get(tenant, 0) + self._since.get(tenant, 0)

    def admitted(self, tenant: str, rows: int) -> None:
        """Count ``rows`` this gateway admitted for ``tenant`` until the next reading."""
        self._since[tenant] += rows

    async def _refreshed(self) -> None:
        if self._refresh is None:
            self._refresh = asyncio.ensure_future(self._take())
            self._refresh.add_done_callback(self._done)
        await asyncio.shield(self._refresh)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._refresh = None
        with contextlib.suppress(asyncio.CancelledError):
            task.exception()  # retrieved: _take logs its own failures

    async def _take(self) -> None:
        started = time.monotonic()
        since_before = dict(self._since)
        try:
            by_collection = await self._read()
        except Exception as exc:  # noqa: BLE001 - a failed reading must not fail writes: fail open
            log.warning("reading the tenants' vector counts failed; max_vectors uses the last reading: %s",
                        exc)
            if self._totals is None:
                self._totals = {}
            self._taken_at = started
            return
        totals: dict[str, int] = defaultdict(int)
        for label, live in by_collection.items():
            tenant, _, _ = label.partition("/")
            totals[tenant] += live
        self._totals, self._taken_at = dict(totals), started
        # Rows admitted while the reading was taken may or may not be in it: keep counting them.
        self._since = defaultdict(int, {t: n - since_before.get(t, 0) for t, n in self._since.items()
                                        if n - since_before.get(t, 0) > 0})
