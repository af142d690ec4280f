"""The routing table kept from the registry's Watch stream: ready at the first snapshot, nodes that
leave or are marked down are dropped at once, the last table is kept while the meta manager is
away, and a reconnect's snapshot replaces it wholesale."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.support.waits import until
from vecraft.services.api_gateway.downstream import DELETE, PUT, SNAPSHOT_END
from vecraft.services.api_gateway.registry import NodeRegistry
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.rpc.v1 import meta_pb2

pytestmark = pytest.mark.unit

_BREAK = meta_pb2.WatchEvent(revision=1 << 62)  # makes the open stream fail, as a dead meta manager's does


def put(node_id: str, role: str, shards: list[int], pid: int = 1) -> meta_pb2.WatchEvent:
    return meta_pb2.WatchEvent(type=PUT, node=meta_pb2.NodeInfo(
        node_id=node_id, role=role, address=f"{node_id}:1", shards=shards, pid=pid))


def delete(node_id: str) -> meta_pb2.WatchEvent:
    return meta_pb2.WatchEvent(type=DELETE, node=meta_pb2.NodeInfo(node_id=node_id, state="down"))


def placement(version: int, shards: int, down: list[str]) -> meta_pb2.WatchEvent:
    return meta_pb2.WatchEvent(type=PUT, placement=meta_pb2.PlacementMap(
        version=version, down_nodes=down, shards=[meta_pb2.ShardAssignment(shard=s) for s in range(shards)]))


class Meta:
    """A scripted meta manager: each stream sends ``snapshot`` then the end marker, then ``events``."""

    def __init__(self) -> None:
        self.snapshot: list[meta_pb2.WatchEvent] = []
        self.events: asyncio.Queue[meta_pb2.WatchEvent] = asyncio.Queue()
        self.down = False
        self.opened = 0
        self.refused = 0

    async def watch(self) -> AsyncIterator[meta_pb2.WatchEvent]:
        if self.down:
            self.refused += 1
            raise Unavailable("meta manager at m:1 is unavailable: connection refused")
        self.opened += 1
        for event in list(self.snapshot):
            yield event
        yield meta_pb2.WatchEvent(type=SNAPSHOT_END)
        while True:
            event = await self.events.get()
            if event is _BREAK:
                raise Unavailable("meta manager at m:1 is unavailable: stream reset")
            yield event


def query_nodes(registry: NodeRegistry, shard: int) -> list[str]:
    return [n.node_id for n in registry.table.query.get(shard, ())]


async def test_registry_follows_the_watch_and_keeps_its_table_while_the_meta_manager_is_away() -> None:
    meta = Meta()
    meta.snapshot = [put("q0", "query", [0, 1]), put("q1", "query", [0, 1]), put("s0", "storage", [0, 1])]
    registered: list[str] = []
    registry = NodeRegistry(meta.watch, on_registered=registered.append)
    assert not registry.ready and registry.table.shard_count == 0
    task = asyncio.create_task(registry.run())
    try:
        await asyncio.wait_for(registry.wait_ready(), 10)
        assert registry.watching and query_nodes(registry, 1) == ["q0", "q1"]
        assert registry.table.shard_count == 2 and sorted(registered) == ["q0", "q1", "s0"]
        # A node that leaves (lease expired, deregistered) is not routed to from that event on.
        meta.events.put_nowait(delete("q1"))
        await until(lambda: query_nodes(registry, 0) == ["q0"])
        # A placement map: its shard count, and its down nodes are not routed to.
        meta.events.put_nowait(placement(1, 4, down=["q0"]))
        await until(lambda: registry.table.shard_count == 4)
        assert registry.table.down_nodes == ("q0",) and registry.table.fallbacks() == {"q0"}
        registry.forget("q0")  # a call to it failed: not even a fallback any more
        assert registry.table.query == {}
        meta.events.put_nowait(placement(2, 4, down=[]))
        await until(lambda: query_nodes(registry, 0) == ["q0"])
        assert registry.table.fallbacks() == set()
        # A restarted node (new pid) registers anew; a heartbeat-like repeat does not.
        registered.clear()
        meta.events.put_nowait(put("q0", "query", [0, 1], pid=2))
        meta.events.put_nowait(put("q0", "query", [0, 1], pid=2))
        meta.events.put_nowait(put("q2", "query", [2]))
        await until(lambda: query_nodes(registry, 2) == ["q2"])
        assert registered == ["q0", "q2"]

        # The meta manager goes away: the last table stays, still ready.
        kept = registry.table
        meta.down = True
        meta.events.put_nowait(_BREAK)
        await until(lambda: not registry.watching)
        await until(lambda: meta.refused >= 3)  # several failed reconnects
        assert registry.ready and registry.table is kept
        assert registry.describe()["registry_watch"] is False

        # Back: its snapshot replaces the table wholesale (q0 left meanwhile, q3 joined).
        meta.snapshot = [put("q2", "query", [2]), put("q3", "query", [0, 1]), placement(2, 4, down=[])]
        meta.down = False
        await until(lambda: registry.watching)
        assert query_nodes(registry, 0) == ["q3"] and query_nodes(registry, 2) == ["q2"]
        # s0 left meanwhile and nothing else serves its shards: it stays their fallback (tried only
        # for them) until a call to it fails.
        assert [str(n) for n in registry.table.storage[0]] == ["s0@s0:1 (fallback)"]
        registry.forget("s0")
        assert registry.table.storage == {} and registry.table.shard_count == 4
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_the_last_nodes_of_a_shard_stay_its_fallbacks_until_something_replaces_them() -> None:
    meta = Meta()
    meta.snapshot = [put("q0", "query", [0, 1]), put("q1", "query", [1]), put("s0", "storage", [0])]
    registry = NodeRegistry(meta.watch)
    task = asyncio.create_task(registry.run())
    try:
        await asyncio.wait_for(registry.wait_ready(), 10)
        # Every lease expires at once (a meta manager back from a long pause), and the fail-over
        # manager marks the nodes down: they stay, as fallbacks, for the shards nothing else serves.
        for event in (delete("q1"), delete("q0"), delete("s0"), placement(1, 2, down=["q0", "q1", "s0"])):
            meta.events.put_nowait(event)
        await until(lambda: registry.table.placement_version == 1)
        table = registry.table
        assert table.fallbacks() == {"q0", "s0"}  # q1 left while q0 still served shard 1
        assert [str(n) for n in table.query[0]] == [str(n) for n in table.query[1]] == ["q0@q0:1 (fallback)"]
        # q0 registers again (still marked down): a fallback until the map marks it up.
        meta.events.put_nowait(put("q0", "query", [0, 1], pid=2))
        await until(lambda: registry.table.down_nodes == ("q0",))
        assert [str(n) for n in registry.table.query[1]] == ["q0@q0:1 (fallback)"]
        meta.events.put_nowait(placement(2, 2, down=["s0"]))
        await until(lambda: [str(n) for n in registry.table.query[1]] == ["q0@q0:1"])
        # Another storage node serves shard 0: s0 is forgotten.
        meta.events.put_nowait(put("s1", "storage", [0]))
        await until(lambda: [str(n) for n in registry.table.storage[0]] == ["s1@s1:1"])
        assert registry.table.fallbacks() == set()
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_a_stream_cut_before_its_end_marker_changes_nothing() -> None:
    meta = Meta()
    meta.snapshot = [put("q0", "query", [0])]
    registry = NodeRegistry(meta.watch)
    task = asyncio.create_task(registry.run())
    try:
        await asyncio.wait_for(registry.wait_ready(), 10)
        opened = meta.opened

        async def cut() -> AsyncIterator[meta_pb2.WatchEvent]:
            meta.opened += 1
            yield put("q9", "query", [0])
            raise Unavailable("stream reset")

        registry._watch = cut  # the next streams break inside their snapshot
        meta.events.put_nowait(_BREAK)
        await until(lambda: meta.opened > opened + 1)
        assert query_nodes(registry, 0) == ["q0"]
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
