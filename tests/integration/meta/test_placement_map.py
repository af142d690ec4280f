"""The placement map and named leases with fencing tokens, on both backends, through a real meta manager.

The module has its own meta manager per backend (``shared_meta`` is module scoped), so the
one placement map of the store belongs to this module; each test moves it forward from
whatever version it finds.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.integration.meta.watching import Events, node
from tests.support.procs import ServiceProcess
from vecraft.clients.meta import MetaClient
from vecraft.shared.common.errors import Conflict, FencedOut, InvalidRequest
from vecraft.shared.rpc.v1 import meta_pb2

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

PUT, DELETE = meta_pb2.WatchEvent.PUT, meta_pb2.WatchEvent.DELETE


@pytest.fixture
async def client(shared_meta: ServiceProcess) -> AsyncIterator[MetaClient]:
    c = MetaClient(shared_meta.grpc_address)
    yield c
    await c.close()


def lease_name() -> str:
    return f"lease-{uuid.uuid4().hex[:10]}"


def two_shards(storage: str, query: str) -> meta_pb2.PlacementMap:
    return meta_pb2.PlacementMap(storage_replicas=1, query_replicas=1, shards=[
        meta_pb2.ShardAssignment(shard=s, storage_nodes=[storage], query_nodes=[query]) for s in (0, 1)])


async def test_one_holder_at_a_time_and_tokens_grow(client: MetaClient) -> None:
    name = lease_name()
    a = await client.acquire_lease(name, "fm-a", 60_000)
    assert a.held and a.holder == "fm-a" and a.fencing_token > 0
    b = await client.acquire_lease(name, "fm-b", 60_000)
    assert not b.held and b.holder == "fm-a" and b.fencing_token == a.fencing_token
    # The holder acquiring again renews: same holding, same token.
    again = await client.acquire_lease(name, "fm-a", 60_000)
    assert again.held and again.fencing_token == a.fencing_token
    assert (await client.renew_lease(name, "fm-a", a.fencing_token)).held
    assert not (await client.renew_lease(name, "fm-b", a.fencing_token)).held

    released = await client.release_lease(name, "fm-a", a.fencing_token)
    assert released.holder == ""
    b = await client.acquire_lease(name, "fm-b", 60_000)
    assert b.held and b.fencing_token > a.fencing_token
    # The deposed holder's renewal fails and does not disturb the new one.
    assert not (await client.renew_lease(name, "fm-a", a.fencing_token)).held
    assert not (await client.release_lease(name, "fm-a", a.fencing_token)).held
    assert (await client.get_lease(name)).holder == "fm-b"

    with pytest.raises(InvalidRequest):
        await client.acquire_lease("has/slash", "fm-a", 60_000)
    with pytest.raises(InvalidRequest):
        await client.acquire_lease(name, "", 60_000)


async def test_an_unrenewed_lease_expires_and_the_next_holding_has_a_larger_token(client: MetaClient) -> None:
    name = lease_name()
    a = await client.acquire_lease(name, "fm-a", 1000)
    assert a.held
    # etcd rounds the TTL up to its minimum; wait for whatever was granted.
    deadline = time.monotonic() + a.ttl_ms / 1000 + 15
    while (await client.get_lease(name)).holder:
        assert time.monotonic() < deadline, "the lease never expired"
        await asyncio.sleep(0.1)
    b = await client.acquire_lease(name, "fm-b", 60_000)
    assert b.held and b.fencing_token > a.fencing_token
    assert not (await client.renew_lease(name, "fm-a", a.fencing_token)).held


async def test_placement_map_is_versioned_fenced_and_watched(client: MetaClient) -> None:
    name = lease_name()
    holder = await client.acquire_lease(name, "fm-a", 60_000)
    events = Events(client.watch(["placement"], snapshot_end=True))
    try:
        await events.wait_for(lambda e: e.WhichOneof("item") is None)  # end of the snapshot
        start = (await client.get_placement_map()).version
        first = await client.update_placement_map(two_shards("s1", "q1"), expected_version=start,
                                                  lease_name=name, fencing_token=holder.fencing_token)
        assert first.version == start + 1 and first.fencing_token == holder.fencing_token
        assert first.updated_unix_ms > 0
        seen = await events.wait_for(lambda e: e.type == PUT and e.placement.version == start + 1)
        assert [a.storage_nodes for a in seen.placement.shards] == [["s1"], ["s1"]]
        stored = await client.get_placement_map()
        assert stored.version == start + 1 and stored.shards == first.shards

        # Compare-and-swap: a change computed from an older version is refused, nothing changes.
        with pytest.raises(Conflict):
            await client.update_placement_map(two_shards("s2", "q2"), expected_version=start,
                                              lease_name=name, fencing_token=holder.fencing_token)
        # A map a node could not follow is refused.
        bad = two_shards("s1", "q1")
        bad.shards[1].shard = 0
        with pytest.raises(InvalidRequest, match="listed twice"):
            await client.update_placement_map(bad, expected_version=start + 1, lease_name=name,
                                              fencing_token=holder.fencing_token)
        # A deposed holder is fenced out even with the right version.
        await client.release_lease(name, "fm-a", holder.fencing_token)
        successor = await client.acquire_lease(name, "fm-b", 60_000)
        with pytest.raises(FencedOut):
            await client.update_placement_map(two_shards("s2", "q2"), expected_version=start + 1,
                                              lease_name=name, fencing_token=holder.fencing_token)
        assert (await client.get_placement_map()).version == start + 1
        second = await client.update_placement_map(two_shards("s2", "q2"), expected_version=start + 1,
                                                   lease_name=name, fencing_token=successor.fencing_token)
        assert second.version == start + 2 and second.updated_by == ""
        await events.wait_for(lambda e: e.type == PUT and e.placement.version == start + 2)
        # A new watcher's snapshot starts with the current map.
        fresh = Events(client.watch(["placement"]))
        try:
            snap = await fresh.wait_for(lambda e: e.revision == 0)
            assert snap.placement.version == start + 2
        finally:
            await fresh.close()
    finally:
        await events.close()


async def test_a_node_that_deregisters_is_gone_at_once(client: MetaClient) -> None:
    node_id = f"st-{uuid.uuid4().hex[:8]}"
    events = Events(client.watch(["nodes"]))
    try:
        lease = await client.register_node(node(node_id, "storage", (0,)), ttl_ms=60_000)
        await events.wait_for(lambda e: e.type == PUT and e.node.node_id == node_id)
        assert not await client.deregister_node(node_id, "not-my-lease")
        assert node_id in {n.node_id for n in await client.list_nodes()}
        assert await client.deregister_node(node_id, lease.lease_id)
        # Long before the 60 s lease could expire.
        gone = await asyncio.wait_for(
            events.wait_for(lambda e: e.type == DELETE and e.node.node_id == node_id), 10)
        assert gone.node.state == "down"
        assert node_id not in {n.node_id for n in await client.list_nodes()}
    finally:
        await events.close()
