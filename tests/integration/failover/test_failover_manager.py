"""The fail-over manager as a real process against a real meta manager (SQLite backend).

Storage and query nodes are registrations made by the test (a node is alive while
the test heartbeats its lease), so every step of the manager is driven exactly:
bootstrap from what nodes declare, mark-down when a lease goes, re-placement
after the grace period, one active manager of two, and a take-over after kill -9.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from tests.support.procs import ServiceProcess
from vecraft.clients.meta import MetaClient
from vecraft.shared.rpc.v1 import meta_pb2

pytestmark = [pytest.mark.integration]

META = "vecraft.services.meta_manager"
JOURNAL = "vecraft.services.journal_service"
FAILOVER = "vecraft.services.failover_manager"


@pytest.fixture
def meta(start_service: Callable[..., ServiceProcess], tmp_path: Path) -> ServiceProcess:
    journal = start_service(JOURNAL, ["--data-dir", str(tmp_path / "journal")])
    return start_service(META, ["--backend", "sqlite", "--data-dir", str(tmp_path / "meta"),
                                "--journal-address", journal.grpc_address])


@pytest.fixture
async def client(meta: ServiceProcess) -> AsyncIterator[MetaClient]:
    c = MetaClient(meta.grpc_address)
    yield c
    await c.close()


class Nodes:
    """Registrations the test keeps alive (one heartbeat task per node) or lets die."""

    def __init__(self, client: MetaClient) -> None:
        self._client = client
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def up(self, node_id: str, role: str, shards: tuple[int, ...]) -> None:
        info = meta_pb2.NodeInfo(node_id=node_id, role=role, address=f"127.0.0.1:{1000 + len(self._tasks)}",
                                 shards=shards)
        self._tasks[node_id] = asyncio.create_task(self._client.keep_registered(lambda: info, 1000))

    async def leave(self, node_id: str) -> None:
        task = self._tasks.pop(node_id)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def close(self) -> None:
        for node_id in list(self._tasks):
            await self.leave(node_id)


@pytest.fixture
async def nodes(client: MetaClient) -> AsyncIterator[Nodes]:
    n = Nodes(client)
    yield n
    await n.close()


async def wait_map(client: MetaClient, pred: Callable[[meta_pb2.PlacementMap], bool],
                   timeout: float = 30.0) -> meta_pb2.PlacementMap:
    deadline = time.monotonic() + timeout
    while True:
        current = await client.get_placement_map()
        if pred(current):
            return current
        assert time.monotonic() < deadline, f"placement map never matched; last: {current}"
        await asyncio.sleep(0.05)


def storage_of(m: meta_pb2.PlacementMap) -> dict[int, list[str]]:
    return {a.shard: list(a.storage_nodes) for a in m.shards}


def health(proc: ServiceProcess) -> dict[str, object]:
    body = httpx.get(f"http://{proc.http_address}/healthz", timeout=5).json()
    assert isinstance(body, dict)
    return body


def failover_args(meta: ServiceProcess, grace_ms: int) -> list[str]:
    return ["--meta-address", meta.grpc_address, "--grace-ms", str(grace_ms), "--bootstrap-settle-ms", "300",
            "--lease-ttl-ms", "1000", "--tick-ms", "50"]


async def test_bootstrap_mark_down_and_replace_after_the_grace_period(
        start_service: Callable[..., ServiceProcess], meta: ServiceProcess, client: MetaClient,
        nodes: Nodes) -> None:
    for node_id, shards in (("s0", (0, 1)), ("s1", (1, 2)), ("s2", (0, 2))):
        nodes.up(node_id, "storage", shards)
    nodes.up("q0", "query", (0, 1, 2))
    # Not waited for synchronously: this test's event loop must keep heartbeating the nodes.
    start_service(FAILOVER, failover_args(meta, grace_ms=2000), wait_ready=False)

    first = await wait_map(client, lambda m: m.version > 0)
    assert storage_of(first) == {0: ["s0", "s2"], 1: ["s0", "s1"], 2: ["s1", "s2"]}
    assert first.storage_replicas == 2 and first.history[-1].action == "bootstrap"

    await nodes.leave("s2")  # deregisters: gone from the registry at once
    left = time.monotonic()
    marked = await wait_map(client, lambda m: "s2" in m.down_nodes)
    marked_after = time.monotonic() - left
    # Not moved yet: the grace period runs.
    assert storage_of(marked) == storage_of(first)
    moved = await wait_map(client, lambda m: all("s2" not in nodes for nodes in storage_of(m).values()))
    moved_after = time.monotonic() - left
    assert marked_after < 2.0 <= moved_after
    assert storage_of(moved) == {0: ["s0", "s1"], 1: ["s0", "s1"], 2: ["s1", "s0"]}
    assert {(a.action, a.node_id) for a in moved.history} >= {("re-place", "s0"), ("re-place", "s1"),
                                                               ("remove", "s2")}


async def test_one_active_manager_and_a_takeover_after_kill_9(
        start_service: Callable[..., ServiceProcess], meta: ServiceProcess, client: MetaClient,
        nodes: Nodes) -> None:
    nodes.up("s0", "storage", (0,))
    nodes.up("s1", "storage", (0,))
    nodes.up("q0", "query", (0,))
    a = start_service(FAILOVER, failover_args(meta, grace_ms=500), wait_ready=False)
    b = start_service(FAILOVER, failover_args(meta, grace_ms=500), wait_ready=False)
    first = await wait_map(client, lambda m: m.version > 0)
    # Both report ready once the map exists (waited for in threads: the loop keeps the nodes' leases).
    await asyncio.gather(asyncio.to_thread(a.wait_ready), asyncio.to_thread(b.wait_ready))
    active = [p for p in (a, b) if health(p)["active"]]
    assert len(active) == 1, "exactly one fail-over manager acts"
    standby = b if active[0] is a else a
    assert first.fencing_token == health(active[0])["fencing_token"]

    active[0].kill()  # kill -9: the lease is not released, it must expire
    killed = time.monotonic()
    deadline = killed + 15
    while not health(standby)["active"]:
        assert time.monotonic() < deadline, "the standby never took over"
        await asyncio.sleep(0.05)
    took_over = time.monotonic() - killed
    assert health(standby)["fencing_token"] > first.fencing_token
    # The new manager acts: a node that leaves is marked down and replaced by one that joins.
    nodes.up("s9", "storage", ())
    await nodes.leave("s1")
    moved = await wait_map(client, lambda m: storage_of(m) == {0: ["s0", "s9"]})
    assert moved.fencing_token == health(standby)["fencing_token"]
    print(f"take-over after kill -9 of the active fail-over manager: {took_over:.2f} s")


async def test_a_higher_replica_count_given_later_is_restored_on_nodes_without_the_shard(
        start_service: Callable[..., ServiceProcess], meta: ServiceProcess, client: MetaClient,
        nodes: Nodes) -> None:
    nodes.up("s0", "storage", (0, 1))
    nodes.up("s1", "storage", ())
    nodes.up("q0", "query", (0, 1))
    first = start_service(FAILOVER, failover_args(meta, grace_ms=1000), wait_ready=False)
    boot = await wait_map(client, lambda m: m.version > 0)
    assert storage_of(boot) == {0: ["s0"], 1: ["s0"]} and boot.storage_replicas == 1
    first.stop()
    # Restarted with --storage-replicas 2 (vecraft up --replicas 2 on the same data).
    start_service(FAILOVER, [*failover_args(meta, grace_ms=1000), "--storage-replicas", "2"],
                  wait_ready=False)
    more = await wait_map(client, lambda m: m.storage_replicas == 2 and storage_of(m) == {0: ["s0", "s1"],
                                                                                          1: ["s0", "s1"]})
    assert "set-replicas" in [a.action for a in more.history]
