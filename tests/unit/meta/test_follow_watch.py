"""follow_watch: a snapshot in one call per connection, live events one by one, reconnection with backoff."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from vecraft.clients import meta as meta_client
from vecraft.clients.meta import follow_watch
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.rpc.v1 import meta_pb2

pytestmark = pytest.mark.unit


def quota(tenant: str) -> meta_pb2.WatchEvent:
    return meta_pb2.WatchEvent(quota=meta_pb2.Quota(tenant=tenant))


END = meta_pb2.WatchEvent()  # the end-of-snapshot marker: no item


class FakeMeta:
    """Two connections: the first breaks after one live event, the second stays open."""

    def __init__(self) -> None:
        self.connections = 0
        self.second = asyncio.Event()

    async def watch(self, topics: Sequence[str], *, snapshot_end: bool = False
                    ) -> AsyncIterator[meta_pb2.WatchEvent]:
        assert list(topics) == ["quotas"] and snapshot_end
        self.connections += 1
        if self.connections == 1:
            for event in (quota("a"), quota("b"), END, quota("c")):
                yield event
            raise Unavailable("meta manager went away")
        for event in (quota("b"), END):
            yield event
        self.second.set()
        await asyncio.Event().wait()


async def test_snapshots_replace_and_changes_follow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(meta_client, "FOLLOW_BACKOFF_MIN_S", 0.01)
    seen: list[tuple[str, list[str]]] = []
    meta = FakeMeta()
    task = asyncio.create_task(follow_watch(
        meta, ["quotas"], what="quota",  # type: ignore[arg-type]
        snapshot=lambda events: seen.append(("snapshot", [e.quota.tenant for e in events])),
        change=lambda event: seen.append(("change", [event.quota.tenant]))))
    await asyncio.wait_for(meta.second.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == [("snapshot", ["a", "b"]), ("change", ["c"]), ("snapshot", ["b"])]
