"""A query node stopped on purpose (SIGTERM) leaves the meta manager's node registry at once, so the
gateway stops routing to it then, not when its lease runs out (real ``vecraft up --distributed``, a
60 s lease, the registry watched through the meta manager's Watch stream)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest

from tests.support.cluster import LocalCluster
from tests.support.waits import until
from vecraft.clients.meta import MetaClient
from vecraft.shared.rpc.v1 import meta_pb2

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LEASE_MS = 60_000


def test_a_stopped_query_node_leaves_the_registry_before_its_lease_ends(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "data", shards=1, env={"VECRAFT_NODE_TTL_MS": str(LEASE_MS)}).start()
    try:
        query = cluster.processes("query")[0]
        meta_address = cluster.process("meta")["grpc_address"]
        asyncio.run(_leaves_at_once(meta_address, query["name"], int(query["pid"])))
    finally:
        cluster.stop()


async def _leaves_at_once(meta_address: str, node_id: str, pid: int) -> None:
    meta = MetaClient(meta_address)
    events: list[meta_pb2.WatchEvent] = []

    async def follow() -> None:
        async for event in meta.watch(["nodes"]):
            events.append(event)

    follower = asyncio.create_task(follow())
    try:
        await until(lambda: any(e.type == meta_pb2.WatchEvent.PUT and e.node.node_id == node_id
                                for e in events), timeout=30)
        stopped = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        await until(lambda: any(e.type == meta_pb2.WatchEvent.DELETE and e.node.node_id == node_id
                                for e in events), timeout=20)
        assert time.monotonic() - stopped < LEASE_MS / 1000 / 3
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        await meta.close()
