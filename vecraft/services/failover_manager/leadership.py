"""One active fail-over manager: a named lease in the meta manager, renewed at a third of its TTL.

Standby instances keep trying to acquire it. The holder acts with the lease's
fencing token, which the meta manager checks in the same transaction as every
placement map write: an instance that lost the lease without noticing (a long
pause, a partition) is refused (``FencedOut``), so two managers can never both
change the map. Mutual exclusion does not rest on the lease alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from vecraft.clients.meta import MetaClient
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.common.metrics import gauge

log = logging.getLogger(__name__)

LEASE_NAME = "failover-manager"

_ACTIVE = gauge("failover", "active", "state", "1 while this fail-over manager holds the lease and acts")


class Leadership:
    """Acquire and keep the lease ``name`` for ``holder``; :attr:`held` and :attr:`token` say the state."""

    def __init__(self, meta: MetaClient, holder: str, ttl_ms: int, name: str = LEASE_NAME) -> None:
        self._meta = meta
        self.name = name
        self.holder = holder
        self.ttl_ms = ttl_ms
        self.held = False
        self.token = 0
        self.since_unix_ms = 0
        self._confirmed = 0.0  # monotonic time of the last successful acquire/renew
        _ACTIVE.set(0)

    def lost(self, why: str) -> None:
        if self.held:
            log.warning("no longer the active fail-over manager", extra={"reason": why, "token": self.token})
        self.held = False
        _ACTIVE.set(0)

    async def run(self) -> None:
        """Keep trying to hold the lease until cancelled; release it on the way out."""
        try:
            while True:
                try:
                    if self.held:
                        state = await self._meta.renew_lease(self.name, self.holder, self.token)
                        if state.held:
                            self._confirmed = time.monotonic()
                        else:
                            self.lost("the lease was not renewed in time")
                    else:
                        state = await self._meta.acquire_lease(self.name, self.holder, self.ttl_ms)
                        if state.held:
                            self.held, self.token = True, state.fencing_token
                            self.since_unix_ms = time.time_ns() // 1_000_000
                            self._confirmed = time.monotonic()
                            _ACTIVE.set(1)
                            log.info("active fail-over manager", extra={"token": self.token})
                except VecraftError as exc:
                    # Unconfirmed for a whole TTL: someone else may hold it by now.
                    if self.held and time.monotonic() - self._confirmed > self.ttl_ms / 1000:
                        self.lost(f"meta manager unreachable: {exc.message}")
                await asyncio.sleep(self.ttl_ms / 3000)
        finally:
            if self.held:
                with contextlib.suppress(VecraftError, asyncio.CancelledError):
                    await asyncio.shield(self._meta.release_lease(self.name, self.holder, self.token))
                self.lost("shutting down")
