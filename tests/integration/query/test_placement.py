"""A query processor follows the meta manager's placement map (real journal, meta manager and processor).

Started with ``--shard 0``, the processor loads shard 1 when a map gives it shards 0 and 1 (the records
written to shard 1 before are found at STRONG), registers ``shards`` [0, 1] once loaded, drops shard 0
when a map takes it away (a search naming it: 503 naming the shard), serves nothing when a map leaves
it out (and stays ready), loads shard 1 again when it comes back, and keeps serving while the meta
manager is down. Restarted with ``--shard 0`` while the map says [1], it serves the map's shards.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.query.conftest import QueryClient
from tests.support.procs import ServiceProcess
from tests.support.waits import until
from tests.unit.query.fakes import PARTITION, create_payload, write_payload
from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.common.grpc_errors import translate_rpc_error
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.model.routing import shard_of
from vecraft.shared.rpc.v1 import journal_pb2, meta_pb2, query_pb2

pytestmark = pytest.mark.integration

META = "vecraft.services.meta_manager"
NODE = "query-a"
DIM = 4
SHARDS = 2
#: A hang detector only: every wait below ends on the condition it checks.
WAIT_S = 60.0


@pytest.fixture
def meta(start_service: Callable[..., ServiceProcess], journal_proc: ServiceProcess,
         tmp_path: Path) -> ServiceProcess:
    return start_service(META, ["--backend", "sqlite", "--data-dir", str(tmp_path / "meta"),
                                "--journal-address", journal_proc.grpc_address, "--data-partitions", "1"],
                         name="meta", ready_timeout=60.0)


@pytest.fixture
async def meta_client(meta: ServiceProcess) -> AsyncIterator[MetaClient]:
    client = MetaClient(meta.grpc_address, timeout_s=5.0)
    yield client
    await client.close()


async def place(meta: MetaClient, query_shards: Sequence[int]) -> int:
    """Write the next map (as the fail-over manager does, under its fenced lease): NODE serves
    ``query_shards`` of the two; returns the version written."""
    lease = await meta.acquire_lease("failover-manager", "test", 60_000)
    current = await meta.get_placement_map()
    placement = meta_pb2.PlacementMap(query_replicas=1, shards=[
        meta_pb2.ShardAssignment(shard=s, query_nodes=[NODE] if s in query_shards else [])
        for s in range(SHARDS)])
    written = await meta.update_placement_map(placement, expected_version=current.version,
                                              lease_name="failover-manager",
                                              fencing_token=lease.fencing_token)
    return int(written.version)


async def registered(meta: MetaClient) -> meta_pb2.NodeInfo | None:
    return next((n for n in await meta.list_nodes("query") if n.node_id == NODE), None)


async def until_registered(meta: MetaClient, shards: list[int], proc: ServiceProcess) -> None:
    """Wait until the registry shows NODE serving exactly ``shards``, loading nothing."""
    deadline = time.monotonic() + WAIT_S
    while True:
        node = await registered(meta)
        if node is not None and list(node.shards) == shards and not node.loading_shards:
            return
        assert time.monotonic() < deadline, f"registry never showed shards {shards}: {node}\n{proc.tail(40)}"
        await asyncio.sleep(0.05)  # the registry is read over gRPC: poll it at a modest rate


def health(proc: ServiceProcess) -> dict[str, object]:
    body: dict[str, object] = httpx.get(f"http://{proc.http_address}/healthz", timeout=5).json()
    return body


async def search(client: QueryClient, shards: list[int], *, k: int = 100) -> query_pb2.QuerySearchResponse:
    req = query_pb2.QuerySearchRequest(collection="placed", tenant="default", k=k, shards=shards,
                                       vector=np.ones(DIM, "<f4").tobytes(), level=int(L.STRONG))
    with translate_rpc_error():
        return await client.stub.Search(req, timeout=30)


class Records:
    """A 2-shard collection written straight to the journal, as the gateway would."""

    def __init__(self, journal: JournalClient) -> None:
        self.journal = journal
        self.schema, self.ddl = create_payload("placed", DIM, "l2", shards=SHARDS)
        self.ids: list[str] = []

    async def create(self) -> None:
        await self.journal.append(PARTITION, self.ddl, request_id=uuid.uuid4().hex,
                                  ack=journal_pb2.ACK_JOURNAL)

    async def write(self, n: int) -> None:
        ids = [f"p{len(self.ids) + i}" for i in range(n)]
        rows = np.random.default_rng(len(self.ids)).standard_normal((n, DIM)).astype(np.float32)
        await self.journal.append(PARTITION, write_payload(self.schema, ids, rows),
                                  request_id=uuid.uuid4().hex, ack=journal_pb2.ACK_JOURNAL,
                                  shards=sorted({shard_of(i, SHARDS) for i in ids}))
        self.ids.extend(ids)

    def of(self, shards: Sequence[int]) -> set[str]:
        return {i for i in self.ids if shard_of(i, SHARDS) in shards}


async def test_the_processor_serves_what_the_map_assigns_it(
        start_query: Callable[..., ServiceProcess], meta: ServiceProcess, meta_client: MetaClient,
        journal: JournalClient, connect: Callable[[ServiceProcess], QueryClient]) -> None:
    records = Records(journal)
    await records.create()
    await records.write(30)
    qp = start_query("--shard", "0", "--meta-address", meta.grpc_address, "--node-id", NODE)
    client = connect(qp)
    await until_registered(meta_client, [0], qp)  # no map yet: the flag
    assert {r.id for r in (await search(client, [0])).results} == records.of([0])

    # (a) shards 0 and 1: shard 1 is loaded from the journal, then served with shard 0.
    await records.write(30)
    await place(meta_client, [0, 1])
    await until_registered(meta_client, [0, 1], qp)
    resp = await search(client, [0, 1])
    assert {r.id for r in resp.results} == records.of([0, 1]) and list(resp.shards) == [0, 1]
    assert {shard_of(r.id, SHARDS) for r in resp.results} == {0, 1}
    assert health(qp)["shards"] == [0, 1] and health(qp)["loading_shards"] == []

    # (b) shard 0 taken away: a search naming it is 503 naming it; shard 1 answers, new writes too.
    version = await place(meta_client, [1])
    await until_registered(meta_client, [1], qp)
    with pytest.raises(Unavailable, match=r"shard 0 is not served .*serves \[1\]"):
        await search(client, [0, 1])
    await records.write(10)
    assert {r.id for r in (await search(client, [1])).results} == records.of([1])
    body = health(qp)
    assert body["placement_version"] == version and body["partitions"][PARTITION]["applied_offset"] > 0  # type: ignore[index]

    # A map that leaves the node out: it serves nothing and stays ready; then shard 1 again.
    await place(meta_client, [])
    await until_registered(meta_client, [], qp)
    assert httpx.get(f"http://{qp.http_address}/readyz", timeout=5).status_code == 200
    with pytest.raises(Unavailable, match="no shard is served"):
        await search(client, [])
    await records.write(10)
    await place(meta_client, [1])
    await until_registered(meta_client, [1], qp)
    assert {r.id for r in (await search(client, [1])).results} == records.of([1])

    # (c) the meta manager stops: the processor keeps serving what it has, strong reads included.
    meta.stop()
    await until(lambda: health(qp)["placement_watch"] is False, WAIT_S)
    await records.write(10)
    assert {r.id for r in (await search(client, [1])).results} == records.of([1])
    assert health(qp)["shards"] == [1]
    assert httpx.get(f"http://{qp.http_address}/readyz", timeout=5).status_code == 200

    # Restarted (meta manager back) with --shard 0 while the map says [1]: the map wins from the start.
    meta.start()
    qp.stop()
    qp.start()
    client = connect(qp)
    assert health(qp)["shards"] == [1]
    assert {r.id for r in (await search(client, [1])).results} == records.of([1])
    await until_registered(meta_client, [1], qp)
