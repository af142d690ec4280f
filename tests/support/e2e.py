"""Helpers of the end-to-end tests that talk HTTP to a ``vecraft up`` cluster.

- :func:`vec`: a deterministic vector per seed;
- :func:`checked_info`: a search answer's ``consistency_info``, after checking
  that the spec's response headers say exactly the same;
- :class:`Ack` and :class:`Ledger`: every acknowledged write with the time it
  was acknowledged and its journal offset, to ask "which writes were
  acknowledged before this search began".
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
import time
import uuid
from typing import Any

import httpx
import numpy as np


def vec(seed: int, dim: int) -> list[float]:
    """A float32-exact random vector (JSON round trips it unchanged)."""
    return np.random.default_rng(seed).standard_normal(dim).astype(np.float32).tolist()


def _flag(value: bool) -> str:
    return "true" if value else "false"


def checked_info(resp: httpx.Response) -> dict[str, Any]:
    """``consistency_info`` of a 200 search answer whose headers equal it (asserted)."""
    assert resp.status_code == 200, resp.text
    info: dict[str, Any] = resp.json()["consistency_info"]
    headers = {
        "x-actual-staleness-ms": str(info["staleness_ms"]),
        "x-index-version-used": str(info["index_version"]),
        "x-consistency-achieved": info["level_achieved"],
        "x-cache-hit": _flag(info["cache_hit"]),
        "x-sync-performed": _flag(info["sync_performed"]),
    }
    assert {name: resp.headers.get(name) for name in headers} == headers, (dict(resp.headers), info)
    return info


@dataclasses.dataclass(frozen=True, slots=True)
class Ack:
    """One acknowledged write: its record id, journal offset and (monotonic) send and ack times."""

    id: str
    offset: int
    sent_at: float
    acked_at: float


class Ledger:
    """Acknowledged writes in acknowledgement order (one event loop appends, so times never go back)."""

    def __init__(self) -> None:
        self.acks: list[Ack] = []
        self._times: list[float] = []

    def add(self, ack: Ack) -> None:
        assert not self._times or ack.acked_at >= self._times[-1]
        self.acks.append(ack)
        self._times.append(ack.acked_at)

    def acked_before(self, t: float) -> list[Ack]:
        """Every write acknowledged strictly before monotonic time ``t``."""
        return self.acks[:bisect.bisect_left(self._times, t)]

    def max_offset_before(self, t: float) -> int:
        """Highest offset acknowledged before ``t`` (0 when none)."""
        return max((a.offset for a in self.acked_before(t)), default=0)


async def write(client: httpx.AsyncClient, ledger: Ledger | None, collection: str, record_id: str,
                vector: list[float], *, ack: str = "journal", session_token: str | None = None
                ) -> tuple[Ack, dict[str, Any]]:
    """Insert one record tagged ``{"tag": record_id}``; record the acknowledgement in ``ledger``."""
    body: dict[str, Any] = {"collection": collection, "id": record_id, "vector": vector,
                            "metadata": {"tag": record_id}, "ack": ack}
    if session_token is not None:
        body["session_token"] = session_token
    sent_at = time.monotonic()
    headers = {"X-Request-Id": uuid.uuid4().hex}
    resp = await client.post("/v1/vectors", json=body, headers=headers)
    while resp.status_code == 429:
        # Back-pressure on a loaded machine: retry after Retry-After with the same request id,
        # as the SDK does; the write counts as acknowledged only when the retry is.
        await asyncio.sleep(float(resp.headers.get("Retry-After", "1")))
        resp = await client.post("/v1/vectors", json=body, headers=headers)
    acked_at = time.monotonic()
    assert resp.status_code == 201, resp.text
    answer: dict[str, Any] = resp.json()
    written = Ack(id=record_id, offset=answer["offset"], sent_at=sent_at, acked_at=acked_at)
    if ledger is not None:
        ledger.add(written)
    return written, answer
