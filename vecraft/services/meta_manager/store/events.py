"""In-process fan-out of store events to any number of subscribers.

Both backends publish into one :class:`EventHub`: SQLite after each commit,
etcd from its single watch on the key prefix. Each gRPC ``Watch`` stream holds
a :class:`Subscription`. A subscriber that falls more than ``max_pending``
events behind is cut off (its iteration raises :class:`SubscriptionOverflow`)
instead of letting memory grow without bound; it resubscribes and takes a
fresh snapshot.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Generic, TypeVar

from vecraft.shared.common.errors import Unavailable

T = TypeVar("T")

DEFAULT_MAX_PENDING = 10_000


class SubscriptionOverflow(Unavailable):
    """The subscriber fell too far behind; resubscribe and re-read the state."""


class Subscription(Generic[T]):
    """One consumer's queue of events; iterate with ``async for``; close when done."""

    def __init__(self, hub: EventHub[T], max_pending: int) -> None:
        self._hub = hub
        self._queue: asyncio.Queue[T | None] = asyncio.Queue()
        self._max_pending = max_pending
        self._overflowed = False
        self._closed = False

    def _offer(self, event: T) -> None:
        if self._closed:
            return
        if self._queue.qsize() >= self._max_pending:
            self._overflowed = True
            self._closed = True
            self._queue.put_nowait(None)
            self._hub._remove(self)
            return
        self._queue.put_nowait(event)

    def close(self) -> None:
        """Stop receiving; a pending ``async for`` ends. Idempotent."""
        if not self._closed:
            self._closed = True
            self._queue.put_nowait(None)
        self._hub._remove(self)

    def __aiter__(self) -> AsyncIterator[T]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[T]:
        while True:
            event = await self._queue.get()
            if event is None:
                if self._overflowed:
                    raise SubscriptionOverflow(
                        f"watch subscriber fell more than {self._max_pending} events behind")
                return
            yield event

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class EventHub(Generic[T]):
    """Publishes each event to every open subscription, in publish order."""

    def __init__(self, max_pending: int = DEFAULT_MAX_PENDING) -> None:
        self._subs: set[Subscription[T]] = set()
        self._max_pending = max_pending

    def subscribe(self) -> Subscription[T]:
        sub: Subscription[T] = Subscription(self, self._max_pending)
        self._subs.add(sub)
        return sub

    def publish(self, event: T) -> None:
        for sub in list(self._subs):
            sub._offer(event)

    def close_all(self) -> None:
        """End every subscription (on shutdown)."""
        for sub in list(self._subs):
            sub.close()

    def _remove(self, sub: Subscription[T]) -> None:
        self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)
