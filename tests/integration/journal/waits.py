"""Waiting on what the journal reports (its Stats), instead of sleeping and hoping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from vecraft.clients.journal import JournalClient


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = 30.0,
                     what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; ``timeout`` only detects a hang."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, f"{what} not reached in {timeout:g}s"
        await asyncio.sleep(0.02)


async def consumers(client: JournalClient, partition: str) -> dict[str, bool]:
    """replica_id -> live, for every consumer of ``partition`` the journal knows."""
    return {r.replica_id: r.live for r in (await client.stats()).replicas if r.partition == partition}


async def wait_subscribed(client: JournalClient, partition: str, *replica_ids: str) -> None:
    """Until the journal has registered a live consumer for each of ``replica_ids`` (their stream
    is open on the server, so appends from now on wait for / count them)."""
    async def registered() -> bool:
        known = await consumers(client, partition)
        return all(known.get(r) for r in replica_ids)

    await wait_until(registered, what=f"subscriptions {replica_ids} of {partition}")


async def wait_not_live(client: JournalClient, partition: str, *replica_ids: str) -> None:
    """Until the journal no longer counts ``replica_ids`` as live (stream closed, liveness passed)."""
    async def gone() -> bool:
        known = await consumers(client, partition)
        return not any(known.get(r) for r in replica_ids)

    await wait_until(gone, what=f"{replica_ids} of {partition} no longer live")
