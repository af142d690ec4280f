"""Following the placement map: which shards a node is given, the one-step-at-a-time reconciliation
of its hosted replicas towards them (a fake host records the loads and drops), and the node's
readiness as replicas come and go."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tests.support.waits import until
from vecraft.clients.meta import assigned_shards
from vecraft.services.storage_node.hosting import ShardHosting, next_step
from vecraft.services.storage_node.main import StorageNode, StorageNodeSettings
from vecraft.services.storage_node.placement import follow_placement
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.rpc.v1 import meta_pb2

pytestmark = pytest.mark.unit


class FakeHost:
    """Hosted shards in a set; a load or drop may be held until released, or fail."""

    def __init__(self, hosted: Sequence[int] = ()) -> None:
        self.shards = set(hosted)
        self.steps: list[tuple[str, int]] = []
        self.hold: dict[int, asyncio.Event] = {}
        self.fail: dict[int, int] = {}  # shard -> loads left to fail
        self.running = 0
        self.most_at_once = 0

    def hosted(self) -> set[int]:
        return set(self.shards)

    async def _step(self, kind: str, shard: int) -> None:
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        try:
            self.steps.append((kind, shard))
            if shard in self.hold:
                await self.hold[shard].wait()
        finally:
            self.running -= 1

    async def load(self, shard: int) -> None:
        await self._step("load", shard)
        if self.fail.get(shard, 0) > 0:
            self.fail[shard] -= 1
            raise OSError(f"disk error on shard-{shard}")
        self.shards.add(shard)

    async def drop(self, shard: int) -> None:
        await self._step("drop", shard)
        self.shards.discard(shard)


@pytest.fixture
async def hosting() -> AsyncIterator[tuple[FakeHost, ShardHosting]]:
    host = FakeHost([0])
    hosting = ShardHosting(host, retry_s=0.05)
    task = asyncio.create_task(hosting.run())
    yield host, hosting
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


def test_drops_come_first_then_loads_each_in_shard_order() -> None:
    assert next_step({0, 1, 4}, frozenset({1, 2, 3})) == ("drop", 0)
    assert next_step({1, 4}, frozenset({1, 2, 3})) == ("drop", 4)
    assert next_step({1}, frozenset({1, 3, 2})) == ("load", 2)
    assert next_step({1}, frozenset({1, 2, 3}), failed=[2]) == ("load", 3)
    assert next_step({1, 2}, frozenset({1, 2})) is None
    assert next_step({1, 2}, frozenset()) == ("drop", 1)


def test_a_node_hosts_the_shards_whose_assignment_lists_it() -> None:
    placement = meta_pb2.PlacementMap(version=3, shards=[
        meta_pb2.ShardAssignment(shard=0, storage_nodes=["a", "b"], query_nodes=["q"]),
        meta_pb2.ShardAssignment(shard=1, storage_nodes=["b"], query_nodes=["a"]),
        meta_pb2.ShardAssignment(shard=2, storage_nodes=["a"])])
    # a query node of shard 1 is not a storage one
    assert assigned_shards(placement, "a", "storage") == [0, 2]
    assert assigned_shards(placement, "b", "storage") == [0, 1]
    assert assigned_shards(placement, "c", "storage") == []


async def test_nothing_changes_before_a_wanted_set(hosting: tuple[FakeHost, ShardHosting]) -> None:
    host, hosts = hosting
    assert hosts.pending() is None
    hosts.want({0, 1})
    await until(lambda: host.shards == {0, 1})
    assert host.steps == [("load", 1)]


async def test_one_change_at_a_time_and_the_newest_wanted_set_wins(
        hosting: tuple[FakeHost, ShardHosting]) -> None:
    host, hosts = hosting
    host.hold[1] = asyncio.Event()
    hosts.want({0, 1})
    await until(lambda: host.steps == [("load", 1)])
    assert hosts.current == ("load", 1)
    # Two maps arrive while shard 1 loads: the one in between is never acted on.
    hosts.want({0, 2})
    hosts.want({3})
    host.hold[1].set()
    await until(lambda: host.shards == {3})
    assert host.steps == [("load", 1), ("drop", 0), ("drop", 1), ("load", 3)]
    assert host.most_at_once == 1 and hosts.current is None


async def test_a_failed_load_is_retried_and_does_not_stop_the_others(
        hosting: tuple[FakeHost, ShardHosting]) -> None:
    host, hosts = hosting
    host.fail[1] = 2
    hosts.want({0, 1, 2})
    await until(lambda: 2 in host.shards and 1 in hosts.failed)
    assert "disk error on shard-1" in hosts.failed[1]
    await until(lambda: host.shards == {0, 1, 2})  # retried after retry_s, the third try loads it
    assert host.steps.count(("load", 1)) == 3 and not hosts.failed


async def test_a_new_wanted_set_retries_a_failed_load_at_once() -> None:
    host = FakeHost()
    hosts = ShardHosting(host, retry_s=3600)
    host.fail[1] = 1
    hosts.want({1})
    await hosts.reconcile()
    assert host.shards == set() and set(hosts.failed) == {1}
    hosts.want({1, 2})
    await hosts.reconcile()
    assert host.shards == {1, 2} and not hosts.failed


class FakeMeta:
    """A meta manager's placement watch: each connection plays one script, then breaks."""

    def __init__(self, scripts: list[list[meta_pb2.WatchEvent]]) -> None:
        self.scripts = scripts
        self.connections = 0

    async def watch(self, topics: Sequence[str] = (), *,
                    snapshot_end: bool = False) -> AsyncIterator[meta_pb2.WatchEvent]:
        assert list(topics) == ["placement"] and snapshot_end
        self.connections += 1
        if not self.scripts:
            await asyncio.Event().wait()
        for event in self.scripts.pop(0):
            yield event
        raise Unavailable("meta manager is unavailable")


def _put(version: int, shards: dict[int, list[str]]) -> meta_pb2.WatchEvent:
    placement = meta_pb2.PlacementMap(version=version, shards=[
        meta_pb2.ShardAssignment(shard=s, storage_nodes=nodes) for s, nodes in shards.items()])
    return meta_pb2.WatchEvent(type=meta_pb2.WatchEvent.PUT, placement=placement)


async def test_the_watch_reconnects_and_passes_every_map_it_hears() -> None:
    end = meta_pb2.WatchEvent()  # the end-of-snapshot marker carries no item
    meta = FakeMeta([
        [end],  # no map yet
        [_put(1, {0: ["a"]}), end, _put(2, {0: ["a"], 1: ["a"]})],
        [_put(2, {0: ["a"], 1: ["a"]}), end],  # the snapshot after a reconnect repeats the map
    ])
    heard: list[int] = []
    task = asyncio.create_task(follow_placement(meta, lambda m: heard.append(m.version),  # type: ignore[arg-type]
                                                retry_s=(0.01,)))
    try:
        await until(lambda: meta.connections == 4)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert heard == [1, 2, 2]


async def test_readiness_waits_for_the_initial_shards_only_and_follows_halts(tmp_path: Path) -> None:
    node = StorageNode(StorageNodeSettings(shards=[0, 2], data_dir=tmp_path, node_id="n"))
    for shard in (0, 2):
        node.replicas[shard].caught_up = True
        node._caught_up(node.replicas[shard])
        assert node.is_ready == (shard == 2)  # ready once both initial shards caught up

    node.replicas[1] = node._new_replica(1)  # loaded later, still catching up: stays ready
    node._update_readiness()
    assert node.is_ready and node.loading_shards() == [1] and node.serving_shards() == [0, 2]
    node.replicas[1].halts.halt("data-0", "apply_failed", "an entry of a collection never created")
    assert not node.is_ready  # a halted replica, loaded later or not, takes readiness with it
    await node.drop(1)  # never opened: nothing to close
    assert node.is_ready and sorted(node.replicas) == [0, 2]


async def test_an_initial_shard_dropped_before_it_caught_up_is_not_waited_for(tmp_path: Path) -> None:
    node = StorageNode(StorageNodeSettings(shards=[0, 2], data_dir=tmp_path, node_id="n"))
    node.replicas[0].caught_up = True
    node._caught_up(node.replicas[0])
    assert not node.is_ready
    await node.drop(2)
    assert node.is_ready
