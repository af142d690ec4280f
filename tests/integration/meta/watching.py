"""Watch-stream helpers of the meta manager suite: a node fixture builder and a background collector."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from vecraft.shared.rpc.v1 import meta_pb2


def node(node_id: str, role: str, shards: tuple[int, ...] = (), partitions: tuple[str, ...] = ()) \
        -> meta_pb2.NodeInfo:
    port = abs(hash(node_id)) % 50000 + 1000
    return meta_pb2.NodeInfo(node_id=node_id, role=role, address=f"127.0.0.1:{port}",
                             shards=shards, partitions=partitions)


class Events:
    """Collects a watch stream in the background; ``await wait_for(pred)`` returns the first match."""

    def __init__(self, stream: AsyncIterator[meta_pb2.WatchEvent]) -> None:
        self.seen: list[meta_pb2.WatchEvent] = []
        self.arrived: list[float] = []  # monotonic time each event of ``seen`` was read
        self._changed = asyncio.Condition()
        self._task = asyncio.create_task(self._read(stream))

    async def _read(self, stream: AsyncIterator[meta_pb2.WatchEvent]) -> None:
        async for event in stream:
            async with self._changed:
                self.arrived.append(time.monotonic())
                self.seen.append(event)
                self._changed.notify_all()

    async def wait_for(self, pred: object, timeout: float = 20.0) -> meta_pb2.WatchEvent:
        check = pred  # type: ignore[assignment]

        def match() -> meta_pb2.WatchEvent | None:
            return next((e for e in self.seen if check(e)), None)  # type: ignore[operator]

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: match() is not None), timeout)
        found = match()
        assert found is not None
        return found

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
