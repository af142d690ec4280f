"""Storage-node test harness: a real journal, real storage nodes, a journal writer, a meta manager and
placement maps (fixtures + helpers)."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from tests.support.procs import ServiceProcess
from tests.unit.storage import payloads
from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2, meta_pb2, storage_pb2, storage_pb2_grpc

JOURNAL = "vecraft.services.journal_service"
STORAGE = "vecraft.services.storage_node"
META = "vecraft.services.meta_manager"
# Lag tests slow the push stream on purpose: keep the journal from refusing writes meanwhile.
JOURNAL_ARGS = ["--data-partitions", "1", "--backpressure-lag-ms", "600000",
                "--backpressure-lag-ops", "10000000", "--backpressure-lag-bytes", str(1 << 40)]


@pytest.fixture
def journal(start_service: Callable[..., ServiceProcess], tmp_path: Path) -> ServiceProcess:
    return start_service(JOURNAL, ["--data-dir", str(tmp_path / "journal"), *JOURNAL_ARGS],
                         ready_timeout=60)


@pytest.fixture
def start_node(start_service: Callable[..., ServiceProcess], journal: ServiceProcess,
               tmp_path: Path) -> Callable[..., ServiceProcess]:
    def _start(name: str = "node", *extra: str, wait_ready: bool = True, shards: str = "0") -> ServiceProcess:
        """A storage node hosting ``shards`` ("0,2") with its data dir ``tmp_path/name``."""
        return start_service(STORAGE, ["--data-dir", str(tmp_path / name), "--journal-address",
                                       journal.grpc_address, "--data-partitions", "1",
                                       "--shards", shards, *extra],
                             name=name, wait_ready=wait_ready, ready_timeout=120)
    return _start


class Writer:
    """Appends DDL and writes to the journal the way the gateway / meta manager do."""

    def __init__(self, address: str) -> None:
        self.client = JournalClient(address)

    async def append(self, payload: bytes, ack: int = journal_pb2.ACK_JOURNAL) -> journal_pb2.AppendResponse:
        return await self.client.append("data-0", payload, request_id=uuid.uuid4().hex, ack=ack)

    async def create(self, schema: collection_pb2.CollectionSchema) -> int:
        return (await self.append(payloads.ddl(schema))).offset

    async def write(self, schema: collection_pb2.CollectionSchema, ids: list[str], vectors: np.ndarray,
                    metadata: list[dict | None] | None = None, documents: list[str] | None = None,
                    ack: int = journal_pb2.ACK_JOURNAL) -> int:
        return (await self.append(payloads.write(schema, ids, vectors, metadata, documents), ack)).offset

    async def delete(self, schema: collection_pb2.CollectionSchema, ids: list[str]) -> int:
        return (await self.append(payloads.delete(schema, ids))).offset


@pytest.fixture
async def writer(journal: ServiceProcess) -> AsyncIterator[Writer]:
    w = Writer(journal.grpc_address)
    yield w
    await w.client.close()


def node_stub(node: ServiceProcess) -> storage_pb2_grpc.StorageNodeServiceStub:
    return storage_pb2_grpc.StorageNodeServiceStub(grpc_channel(node.grpc_address))


def search_request(vector: np.ndarray, k: int = 10, **kwargs: object) -> storage_pb2.ShardSearchRequest:
    return storage_pb2.ShardSearchRequest(collection="docs", vector=np.asarray(vector, "<f4").tobytes(),
                                          k=k, **kwargs)  # type: ignore[arg-type]


def http_get(node: ServiceProcess, path: str) -> tuple[int, str]:
    """Status and body of GET ``path`` on ``node``'s HTTP port (0 while it does not listen)."""
    try:
        with urllib.request.urlopen(f"http://{node.http_address}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except urllib.error.URLError:
        return 0, ""  # not listening yet


@pytest.fixture
def meta(start_service: Callable[..., ServiceProcess], journal: ServiceProcess,
         tmp_path: Path) -> ServiceProcess:
    """A meta manager on SQLite, for nodes that register and follow the placement map."""
    return start_service(META, ["--backend", "sqlite", "--data-dir", str(tmp_path / "meta"),
                                "--journal-address", journal.grpc_address, "--data-partitions", "1"],
                         name="meta", ready_timeout=60)


@pytest.fixture
async def meta_client(meta: ServiceProcess) -> AsyncIterator[MetaClient]:
    client = MetaClient(meta.grpc_address, timeout_s=5.0)
    yield client
    await client.close()


class Placer:
    """Writes placement maps the way the fail-over manager does (it holds the fenced lease)."""

    def __init__(self, meta: MetaClient) -> None:
        self.meta = meta

    async def place(self, shards: dict[int, list[str]]) -> int:
        lease = await self.meta.acquire_lease("failover-manager", "test", 60_000)
        assert lease.held
        current = await self.meta.get_placement_map()
        placement = meta_pb2.PlacementMap(storage_replicas=1, shards=[
            meta_pb2.ShardAssignment(shard=s, storage_nodes=nodes) for s, nodes in sorted(shards.items())])
        written = await self.meta.update_placement_map(placement, expected_version=current.version,
                                                       lease_name="failover-manager",
                                                       fencing_token=lease.fencing_token)
        return int(written.version)


async def registered(meta: MetaClient, node_id: str, shards: list[int],
                     timeout: float = 60.0) -> meta_pb2.NodeInfo:
    """``node_id``'s registry entry once it serves exactly ``shards`` and loads nothing (``timeout``
    only detects a hang)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = {n.node_id: n for n in await meta.list_nodes("storage")}.get(node_id)
        except Exception:  # noqa: BLE001 - the meta manager may be restarting; ask again
            found = None
        if found is not None and list(found.shards) == shards and not found.loading_shards:
            return found
        assert time.monotonic() < deadline, f"registry: {found}"
        await asyncio.sleep(0.05)
