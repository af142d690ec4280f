"""The status code of a service's health path, as ``vecraft up``'s supervisor polls it.

urllib3 (the SDK's HTTP library) in a worker thread rather than httpx: the supervisor
stays up for the cluster's whole life, and httpx (with the command-line tools it
imports) costs its process 8 MiB of the 48 it needs (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import ssl

import urllib3


class StatusProbe:
    """GETs with a short timeout and no retries; TLS verified against ``verify`` when it is a context."""

    def __init__(self, verify: ssl.SSLContext | bool, *, timeout_s: float = 1.0) -> None:
        timeout = urllib3.Timeout(total=timeout_s)
        if isinstance(verify, ssl.SSLContext):
            self._pool = urllib3.PoolManager(timeout=timeout, retries=False, ssl_context=verify)
        else:
            self._pool = urllib3.PoolManager(timeout=timeout, retries=False)

    async def status(self, url: str) -> int | None:
        """The status code of ``GET url``; None when nothing answered (refused, timed out, TLS refused)."""
        try:
            response = await asyncio.to_thread(self._pool.request, "GET", url)
        except urllib3.exceptions.HTTPError:
            return None
        return int(response.status)

    def close(self) -> None:
        self._pool.clear()
