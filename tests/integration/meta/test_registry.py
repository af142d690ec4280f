"""Placement, tenants, node leases, watch streams and HLC coordination, on both backends."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.integration.meta.watching import Events, node
from tests.support.procs import ServiceProcess
from vecraft.clients.meta import MetaClient
from vecraft.shared.common.errors import Conflict, InvalidRequest, NotFound
from vecraft.shared.hlc import pack
from vecraft.shared.model.routing import tenant_partition
from vecraft.shared.rpc.v1 import meta_pb2

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

PUT, DELETE = meta_pb2.WatchEvent.PUT, meta_pb2.WatchEvent.DELETE


@pytest.fixture
async def client(shared_meta: ServiceProcess) -> AsyncIterator[MetaClient]:
    """A client of this module's shared meta manager (one per backend)."""
    c = MetaClient(shared_meta.grpc_address)
    yield c
    await c.close()


@pytest.fixture
def tenant() -> str:
    """A tenant of this test alone: tests share one meta manager."""
    return f"t{uuid.uuid4().hex[:10]}"


async def test_placement_maps_shards_to_registered_nodes(client: MetaClient, tenant: str) -> None:
    await client.create_collection("docs", 4, shards=2, tenant=tenant)
    ids = {k: f"{tenant}-{k}" for k in ("s0r0", "s0r1", "s1r0", "q0", "q01", "gw", "j")}
    for n in (node(ids["s0r0"], "storage", (0,)), node(ids["s0r1"], "storage", (0,)),
              node(ids["s1r0"], "storage", (1,)), node(ids["q0"], "query", (0,)),
              node(ids["q01"], "query", (0, 1)), node(ids["gw"], "gateway"),
              node(ids["j"], "journal", partitions=("data-0", "data-1", "data-2", "data-3", "system"))):
        await client.register_node(n, 60_000)
    placement = await client.get_placement("docs", tenant=tenant)
    assert placement.collection.name == "docs" and placement.partition == tenant_partition(tenant, 4)
    by_shard = {s.shard: s for s in placement.shards}
    assert sorted(by_shard) == [0, 1]

    def mine(nodes: object) -> list[str]:
        return sorted(n.node_id.removeprefix(f"{tenant}-") for n in nodes  # type: ignore[attr-defined]
                      if n.node_id.startswith(tenant))

    assert mine(by_shard[0].storage_replicas) == ["s0r0", "s0r1"]
    assert mine(by_shard[1].storage_replicas) == ["s1r0"]
    assert mine(by_shard[0].query_processors) == ["q0", "q01"]
    assert mine(by_shard[1].query_processors) == ["q01"]
    assert placement.partition_owner.node_id == ids["j"]
    assert mine(await client.list_nodes("storage")) == ["s0r0", "s0r1", "s1r0"]
    with pytest.raises(NotFound):
        await client.get_placement("missing", tenant=tenant)


async def test_tenant_partition_hash_override_and_refused_move(client: MetaClient, tenant: str) -> None:
    default = await client.get_tenant_partition(tenant)
    assert (default.partition, default.explicit) == (tenant_partition(tenant, 4), False)
    pinned = await client.set_tenant_partition(tenant, "data-3")
    assert (pinned.partition, pinned.explicit) == ("data-3", True)
    created = await client.create_collection("docs", 4, tenant=tenant)
    assert created.partition == "data-3"
    assert (await client.set_tenant_partition(tenant, "data-3")).partition == "data-3"
    with pytest.raises(Conflict, match="drop them"):
        await client.set_tenant_partition(tenant, "data-1")
    for bad in ("data-4", "system", "txn", "nope"):
        with pytest.raises(InvalidRequest):
            await client.set_tenant_partition(f"{tenant}x", bad)
    with pytest.raises(InvalidRequest):
        await client.set_tenant_partition("bad tenant", "data-0")
    await client.drop_collection("docs", tenant=tenant)
    assert (await client.set_tenant_partition(tenant, "data-1")).partition == "data-1"


async def test_lease_expiry_and_watch_events(client: MetaClient, tenant: str) -> None:
    await client.create_collection("before", 4, tenant=tenant)
    events = Events(client.watch())
    st = f"{tenant}-st"
    try:
        # Snapshot first: the existing collection and this meta manager's own node.
        await events.wait_for(lambda e: e.revision == 0 and e.collection.tenant == tenant)
        await events.wait_for(lambda e: e.revision == 0 and e.node.role == "meta")

        # A TTL ten heartbeat periods long: a heartbeat delayed by a busy machine does not lose it.
        lease = await client.register_node(node(st, "storage", (0,)), ttl_ms=3000)
        assert lease.lease_id and lease.ttl_ms >= 3000
        put = await events.wait_for(lambda e: e.type == PUT and e.node.node_id == st)
        assert put.revision > 0 and put.node.state == "up"
        # Heartbeats keep it alive past its TTL.
        kept_until = time.monotonic() + lease.ttl_ms / 1000 * 1.5
        while time.monotonic() < kept_until:
            last_beat = time.monotonic()  # sent no later than the lease was renewed
            assert await client.heartbeat(st, lease.lease_id)
            await asyncio.sleep(0.3)
        assert st in {n.node_id for n in await client.list_nodes()}
        assert not await client.heartbeat(st, "not-my-lease")
        # Then silence: the lease expires, watchers see DELETE with state "down" -- not before
        # (half) the TTL has passed since the last heartbeat renewed it.
        gone = await events.wait_for(lambda e: e.type == DELETE and e.node.node_id == st,
                                     timeout=lease.ttl_ms / 1000 + 30)
        assert gone.node.state == "down" and gone.revision > put.revision
        assert events.arrived[events.seen.index(gone)] - last_beat >= lease.ttl_ms / 1000 * 0.5
        assert st not in {n.node_id for n in await client.list_nodes()}
        assert not await client.heartbeat(st, lease.lease_id)

        created = await client.create_collection("after", 4, tenant=tenant)
        put_c = await events.wait_for(lambda e: e.type == PUT and e.collection.collection_id
                                      == created.collection_id)
        await client.drop_collection("after", tenant=tenant)
        dropped = await events.wait_for(lambda e: e.type == DELETE and e.collection.collection_id
                                        == created.collection_id)
        assert dropped.revision > put_c.revision
    finally:
        await events.close()


async def test_watch_topics_filter_and_bad_topic(client: MetaClient, tenant: str) -> None:
    events = Events(client.watch(["collections"]))
    try:
        await client.register_node(node(f"{tenant}-quiet", "query", (0,)), 60_000)
        await client.create_collection("c1", 4, tenant=tenant)
        await events.wait_for(lambda e: e.collection.tenant == tenant and e.collection.name == "c1")
        assert all(e.WhichOneof("item") == "collection" for e in events.seen)
    finally:
        await events.close()
    with pytest.raises(InvalidRequest, match="unknown watch topic"):
        async for _ in client.watch(["everything"]):
            pass


async def test_register_validation(client: MetaClient, tenant: str) -> None:
    with pytest.raises(InvalidRequest):
        await client.register_node(meta_pb2.NodeInfo(node_id="", role="storage"))
    with pytest.raises(InvalidRequest):
        await client.register_node(meta_pb2.NodeInfo(node_id="n", role=""))
    with pytest.raises(InvalidRequest):
        await client.register_node(meta_pb2.NodeInfo(node_id="n", role="storage"), ttl_ms=10)
    # Re-registering replaces the old lease.
    n = f"{tenant}-n"
    first = await client.register_node(node(n, "query", (0,)), 60_000)
    second = await client.register_node(node(n, "query", (1,)), 60_000)
    assert not await client.heartbeat(n, first.lease_id)
    assert await client.heartbeat(n, second.lease_id)
    [stored] = [x for x in await client.list_nodes("query") if x.node_id == n]
    assert list(stored.shards) == [1]


async def test_hlc_drift_flags_and_metric(client: MetaClient, shared_meta: ServiceProcess,
                                          tenant: str) -> None:
    now = time.time_ns() // 1_000_000
    good, fast, slow = (f"{tenant}-{k}" for k in ("good", "fast", "slow"))
    ok = await client.report_hlc(good, pack(now, 3))
    assert not ok.flagged and abs(ok.drift_ms) < 250 and ok.cluster_hlc >= pack(now, 3)
    ahead = await client.report_hlc(fast, pack(now + 5_000, 0))
    assert ahead.flagged and ahead.drift_ms > 4_000
    # A flagged clock does not drag the cluster high-water mark into the future.
    assert ahead.cluster_hlc < pack(now + 4_000, 0)
    behind = await client.report_hlc(slow, pack(now - 5_000, 0))
    assert behind.flagged and behind.drift_ms < -4_000
    with pytest.raises(InvalidRequest):
        await client.report_hlc("", 1)
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"http://{shared_meta.http_address}/metrics")).text
        health = (await http.get(f"http://{shared_meta.http_address}/healthz")).json()
    assert f'vecraft_meta_hlc_drift_ms{{node="{fast}"}}' in metrics
    assert f'vecraft_meta_hlc_flagged_nodes{{node="{fast}"}} 1.0' in metrics
    assert health["role"] == "meta" and health["backend"] in ("sqlite", "etcd")
    assert {fast, slow} <= set(health["flagged_clocks"]) and good not in health["flagged_clocks"]
