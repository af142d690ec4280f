"""The one snapshot-stream follower: snapshots handed over whole, changes one by one, a stream cut inside
its snapshot changes nothing, any failure (a VecraftError or a bug) is survived, the backoff resets on a
complete snapshot."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.waits import until
from vecraft.shared.common.backoff import Backoff
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.common.stream_follow import follow_snapshot_stream

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

END = "end"


async def test_snapshots_changes_and_failures() -> None:
    streams: list[list[str | Exception]] = [
        ["a", "b", END, "c", Unavailable("reset")],   # a snapshot, a change, then a break
        ["x", RuntimeError("a bug")],                 # cut inside its snapshot: nothing taken
        ["d", END, "e"],                              # a new snapshot replaces the state
    ]
    opened = 0

    async def open_stream() -> AsyncIterator[str]:
        nonlocal opened
        script = streams[min(opened, len(streams) - 1)]
        opened += 1
        for item in script:
            if isinstance(item, Exception):
                raise item
            yield item
        await asyncio.Event().wait()  # the last stream stays open

    snapshots: list[list[str]] = []
    changes: list[str] = []
    broken = 0

    def on_broken() -> None:
        nonlocal broken
        broken += 1

    backoff = Backoff(0.01, 0.08)
    task = asyncio.create_task(follow_snapshot_stream(
        open_stream, is_end=lambda e: e == END, snapshot=snapshots.append, change=changes.append,
        backoff=backoff, what="test", broken=on_broken))
    try:
        await until(lambda: len(snapshots) == 2 and changes == ["c", "e"])
        assert snapshots == [["a", "b"], ["d"]] and broken == 2 and opened == 3
        assert backoff.current == backoff.first  # reset by the last complete snapshot
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
