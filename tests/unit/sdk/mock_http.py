"""The sync client over an in-memory handler (``httpx.Request -> httpx.Response``), no network.

The sync client sends through a urllib3 pool; :class:`HandlerPool` stands in
for it, so the tests script answers the same way for the sync and the async
client (whose httpx client takes ``httpx.MockTransport``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from urllib3 import HTTPHeaderDict

from vecraft_client import VecraftClient

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class _Answer:
    status: int
    headers: HTTPHeaderDict
    data: bytes


class HandlerPool:
    """Answers the transport's ``request(...)`` calls with ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    def request(self, method: str, url: str, *, body: bytes | None = None,
                headers: dict[str, str] | None = None, **_: Any) -> _Answer:
        response = self.handler(httpx.Request(method, url, content=body, headers=headers))
        return _Answer(response.status_code, HTTPHeaderDict(dict(response.headers)), response.read())

    def clear(self) -> None:
        pass


def mock_sync_client(handler: Handler, **kwargs: Any) -> VecraftClient:
    client = VecraftClient(endpoint="http://vecraft.test:8000", **kwargs)
    client._transport._pool = HandlerPool(handler)  # type: ignore[union-attr,assignment]
    return client
