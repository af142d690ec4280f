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
