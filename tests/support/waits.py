"""Waiting on a condition in async tests: poll it, fail with a clear message past a deadline.

The deadline only detects a hang; tests wait on what they assert, never on time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(predicate: Callable[[], bool], timeout: float = 30.0, *, interval: float = 0.02) -> None:
    """Return once ``predicate()`` is true; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(interval)


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0, *, what: str = "condition",
             interval: float = 0.2) -> None:
    """:func:`until` for synchronous tests (a LocalCluster is driven synchronously)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what}: not reached in {timeout:g} s"
        time.sleep(interval)
