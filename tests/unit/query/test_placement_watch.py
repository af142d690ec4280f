"""The placement map as a query processor follows it: which versions it takes, and a broken Watch stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import pytest

from tests.support.waits import until
from vecraft.clients.meta import MetaClient, assigned_shards
from vecraft.services.query_processor.membership import PlacementWatch
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.rpc.v1 import meta_pb2

pytestmark = pytest.mark.unit


def placement(version: int, **query_nodes: Sequence[int]) -> meta_pb2.PlacementMap:
    """A map of ``version`` where node ``n`` (keyword) serves the shards given."""
    shards = sorted({s for served in query_nodes.values() for s in served})
    return meta_pb2.PlacementMap(version=version, shards=[
        meta_pb2.ShardAssignment(shard=s, storage_nodes=["s1"],
                                 query_nodes=[n for n, served in query_nodes.items() if s in served])
        for s in shards])


def put(m: meta_pb2.PlacementMap) -> meta_pb2.WatchEvent:
    return meta_pb2.WatchEvent(type=meta_pb2.WatchEvent.PUT, placement=m)


END = meta_pb2.WatchEvent()


class ScriptedMeta(MetaClient):
    """``watch`` plays one scripted stream per call, each ending in a broken stream (Unavailable)."""

    def __init__(self, streams: list[list[meta_pb2.WatchEvent]]) -> None:
        super().__init__("127.0.0.1:1")
        self.streams = streams
        self.calls = 0

    async def watch(self, topics: Sequence[str] = (), *,
                    snapshot_end: bool = False) -> AsyncIterator[meta_pb2.WatchEvent]:
        assert list(topics) == ["placement"] and snapshot_end
        self.calls += 1
        if not self.streams:
            raise Unavailable("meta manager down")
        for event in self.streams.pop(0):
            yield event
        raise Unavailable("stream broken")


def test_assigned_shards_are_those_listing_the_node() -> None:
    m = placement(3, q1=[0, 2], q2=[1, 2])
    assert assigned_shards(m, "q1", "query") == [0, 2] and assigned_shards(m, "q2", "query") == [1, 2]
    assert assigned_shards(m, "q3", "query") == []


def test_newer_versions_win_and_a_snapshot_replaces() -> None:
    watch = PlacementWatch(ScriptedMeta([]), "q1")
    assert watch.assigned() is None and watch.version == 0  # no map: the flags apply
    assert not watch.offer(meta_pb2.PlacementMap())  # version 0 is "no map"
    assert watch.offer(placement(2, q1=[0]))
    assert watch.changed.is_set() and watch.assigned() == [0]
    watch.changed.clear()
    # An event that raced the snapshot repeats an older version: ignored.
    assert not watch.offer(placement(1, q1=[5])) and not watch.offer(placement(2, q1=[5]))
    assert not watch.changed.is_set() and watch.assigned() == [0]
    assert watch.offer(placement(3, q2=[0]))
    assert watch.assigned() == []  # a map that leaves the node out: it serves nothing
    # A new stream's snapshot is the meta manager's current map, whatever its version.
    assert watch.offer(placement(1, q1=[1]), snapshot=True) and watch.assigned() == [1]


async def test_a_broken_stream_keeps_the_last_map_and_reconnects() -> None:
    meta = ScriptedMeta([
        [put(placement(1, q1=[0])), END, put(placement(2, q1=[0, 1]))],
        [END],  # a snapshot without a map (never happens once one exists): keep ours
        [put(placement(2, q1=[0, 1])), END, put(placement(1, q1=[7])), put(placement(4, q1=[1]))],
    ])
    watch = PlacementWatch(meta, "q1")
    task = asyncio.create_task(watch.run())
    try:
        await until(lambda: watch.version == 4, 10)
        assert watch.assigned() == [1] and watch.settled.is_set()
        assert meta.calls >= 3
        await until(lambda: meta.calls >= 4, 10)  # down now: still retrying, still the last map
        assert watch.version == 4 and not watch.connected
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_an_unreachable_meta_manager_settles_at_once() -> None:
    watch = PlacementWatch(ScriptedMeta([]), "q1")
    task = asyncio.create_task(watch.run())
    try:
        await asyncio.wait_for(watch.settled.wait(), 5)
        assert watch.assigned() is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
