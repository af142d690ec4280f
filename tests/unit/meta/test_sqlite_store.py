"""SqliteMetaStore in-process: the watermark compare-and-swap, leases and events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from vecraft.services.meta_manager.store import DdlRecord, EventType, MetaStore, StoreEvent, open_store
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2, meta_pb2

pytestmark = pytest.mark.unit

Kind = journal_pb2.CollectionDDL


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MetaStore]:
    s = open_store("sqlite", data_dir=tmp_path, etcd_endpoints=[], etcd_prefix="/x")
    await s.start()
    yield s
    await s.stop()


def record(offset: int, kind: int, name: str, cid: str, applied: bool = True) -> DdlRecord:
    schema = collection_pb2.CollectionSchema(tenant="t", name=name, dim=4, collection_id=cid,
                                             ddl_offset=offset)
    return DdlRecord(request_id=f"r{offset}", offset=offset, hlc=offset, kind=kind, tenant="t", name=name,
                     applied=applied, schema=schema if applied else None)


async def test_commit_ddl_is_a_compare_and_swap_on_the_watermark(store: MetaStore) -> None:
    with store.subscribe() as sub:
        assert await store.ddl_watermark() == 0
        assert await store.commit_ddl(0, 1, record(1, Kind.CREATE, "a", "id1"))
        assert not await store.commit_ddl(0, 2, record(2, Kind.CREATE, "b", "id2"))
        assert await store.get_collection("t", "b") is None
        assert await store.commit_ddl(1, 2, None)  # a system entry without DDL
        assert await store.commit_ddl(2, 3, record(3, Kind.CREATE, "a", "id3", applied=False))
        assert (await store.get_collection("t", "a")).collection_id == "id1"  # type: ignore[union-attr]
        assert await store.commit_ddl(3, 4, record(4, Kind.DROP, "a", "id1"))
        assert await store.get_collection("t", "a") is None
        assert await store.ddl_watermark() == 4
        lost = await store.get_ddl_record("r3")
        assert lost is not None and not lost.applied
        sub.close()
        events: list[StoreEvent] = [e async for e in sub]
    assert [(e.type, e.collection.name) for e in events if e.collection] == [
        (EventType.PUT, "a"), (EventType.DELETE, "a")]
    assert events[0].revision < events[1].revision


async def test_leases_expire_and_survive_a_reopen(store: MetaStore, tmp_path: Path) -> None:
    node = meta_pb2.NodeInfo(node_id="n1", role="storage", shards=[0])
    with store.subscribe() as sub:
        lease, ttl = await store.register_node(node, 300)
        assert ttl == 300 and await store.heartbeat("n1", lease)
        assert [n.state for n in await store.list_nodes("storage")] == ["up"]
        deleted = await asyncio.wait_for(anext(e async for e in sub if e.type is EventType.DELETE), 10)
    assert deleted.node is not None and deleted.node.state == "down"
    assert await store.list_nodes() == [] and not await store.heartbeat("n1", lease)

    long_lease, _ = await store.register_node(node, 60_000)
    await store.stop()
    reopened = open_store("sqlite", data_dir=tmp_path, etcd_endpoints=[], etcd_prefix="/x")
    await reopened.start()
    try:
        assert await reopened.heartbeat("n1", long_lease)
    finally:
        await reopened.stop()


async def test_a_restarted_manager_gives_every_lease_one_ttl_of_grace(store: MetaStore,
                                                                      tmp_path: Path) -> None:
    node = meta_pb2.NodeInfo(node_id="n1", role="storage", shards=[0])
    lease, _ = await store.register_node(node, 500)
    await store.stop()
    # Down for longer than the TTL: the node could not renew through it.
    await asyncio.sleep(0.8)
    reopened = open_store("sqlite", data_dir=tmp_path, etcd_endpoints=[], etcd_prefix="/x")
    await reopened.start()
    try:
        with reopened.subscribe() as sub:
            # Still registered, and a heartbeat now keeps it.
            assert [n.node_id for n in await reopened.list_nodes()] == ["n1"]
            assert await reopened.heartbeat("n1", lease)
            # Without heartbeats it still expires, one TTL later.
            deleted = await asyncio.wait_for(anext(e async for e in sub if e.type is EventType.DELETE), 10)
        assert deleted.node is not None and deleted.node.node_id == "n1"
    finally:
        await reopened.stop()


def test_open_store_checks_the_backend(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="etcd-endpoints"):
        open_store("etcd", data_dir=tmp_path, etcd_endpoints=[], etcd_prefix="/x")
    with pytest.raises(InvalidRequest, match="unknown meta backend"):
        open_store("zookeeper", data_dir=tmp_path, etcd_endpoints=[],  # type: ignore[arg-type]
                   etcd_prefix="/x")
