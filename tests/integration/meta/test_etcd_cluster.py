"""Cluster mode: a 3-member etcd losing a member, and two meta managers sharing one etcd."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.procs import ServiceProcess
from vecraft.clients.meta import MetaClient
from vecraft.local.etcd import EtcdCluster
from vecraft.shared.common.errors import Conflict
from vecraft.shared.rpc.v1 import collection_pb2, meta_pb2

from .conftest import META
from .test_registry import Events

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


async def test_meta_manager_survives_losing_one_of_three_etcd_members(
        start_service: Callable[..., ServiceProcess], journal: ServiceProcess, tmp_path: Path) -> None:
    with EtcdCluster(tmp_path / "etcd3", size=3) as etcd:
        meta = start_service(META, ["--backend", "etcd", "--etcd-endpoints", ",".join(etcd.endpoints),
                                    "--journal-address", journal.grpc_address,
                                    "--data-dir", str(tmp_path / "m")])
        client = MetaClient(meta.grpc_address)
        try:
            before = await client.create_collection("before", 4)
            lease = await client.register_node(meta_pb2.NodeInfo(node_id="s0", role="storage", shards=[0]),
                                               60_000)
            events = Events(client.watch(["collections"]))
            # The client's channel picks the first endpoint: kill exactly that member.
            etcd.members[0].kill()

            after = await client.create_collection("after", 8)
            assert after.ddl_offset > before.ddl_offset
            assert (await client.get_collection("before")).collection_id == before.collection_id
            assert [c.name for c in await client.list_collections()] == ["after", "before"]
            assert await client.heartbeat("s0", lease.lease_id)
            assert (await client.alter_collection("before", ef_search=32)).hnsw.ef_search == 32
            await client.drop_collection("after")
            # The watch resumed on a surviving member without losing events.
            await events.wait_for(
                lambda e: e.type == meta_pb2.WatchEvent.DELETE and e.collection.name == "after")
            await events.wait_for(
                lambda e: e.collection.name == "before" and e.collection.hnsw.ef_search == 32)
            await events.close()
        finally:
            await client.close()
            meta.stop()


async def test_two_meta_managers_share_one_etcd(start_service: Callable[..., ServiceProcess],
                                                journal: ServiceProcess, etcd: EtcdCluster,
                                                tmp_path: Path) -> None:
    shared = ["--backend", "etcd", "--etcd-endpoints", ",".join(etcd.endpoints),
              "--etcd-prefix", f"/shared-{uuid.uuid4().hex[:8]}", "--journal-address", journal.grpc_address,
              "--ddl-follow-interval-ms", "200"]
    one = start_service(META, [*shared, "--data-dir", str(tmp_path / "m1")])
    two = start_service(META, [*shared, "--data-dir", str(tmp_path / "m2")])
    a, b = MetaClient(one.grpc_address), MetaClient(two.grpc_address)
    events = Events(b.watch(["collections"]))
    try:
        names = [f"shared{i}" for i in range(5)]
        outcomes = await asyncio.gather(
            *(c.create_collection(n, dim) for n in names for c, dim in ((a, 4), (b, 8))),
            return_exceptions=True)
        for i, name in enumerate(names):
            pair = outcomes[2 * i: 2 * i + 2]
            winners = [o for o in pair if isinstance(o, collection_pb2.CollectionSchema)]
            assert len(winners) == 1 and sum(isinstance(o, Conflict) for o in pair) == 1, pair
            for c in (a, b):
                assert (await c.get_collection(name)).collection_id == winners[0].collection_id
        # DDL through one manager reaches the other's watchers.
        created = await a.create_collection("via_one", 4)
        seen = await events.wait_for(lambda e: e.collection.name == "via_one")
        assert seen.collection.collection_id == created.collection_id
        offsets = sorted(s.ddl_offset for s in await b.list_collections())
        assert len(offsets) == len(set(offsets)) == 6
    finally:
        await events.close()
        await a.close()
        await b.close()
