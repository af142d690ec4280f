"""A real journal and real query processors, and journal entries built from the proto messages."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.procs import ServiceProcess
from tests.unit.query.fakes import PARTITION, create_payload, write_payload
from vecraft.clients.journal import JournalClient
from vecraft.shared.common.grpc_errors import translate_rpc_error
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.rpc.convert import level_to_proto
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2, query_pb2, query_pb2_grpc

JOURNAL = "vecraft.services.journal_service"
QUERY = "vecraft.services.query_processor"


@dataclass
class Collection:
    schema: collection_pb2.CollectionSchema

    @property
    def name(self) -> str:
        return self.schema.name


class Writer:
    """Appends DDL and writes to the journal with ack=journal (readers face a lagging cache)."""

    def __init__(self, journal: JournalClient) -> None:
        self.journal = journal

    async def create(self, name: str, dim: int, metric: str = "cosine") -> Collection:
        schema, payload = create_payload(name, dim, metric)
        await self.journal.append(PARTITION, payload, request_id=uuid.uuid4().hex,
                                  ack=journal_pb2.ACK_JOURNAL)
        return Collection(schema)

    async def write(self, coll: Collection, ids: Sequence[str], vectors: np.ndarray,
                    metadata: Sequence[str] | None = None) -> journal_pb2.AppendResponse:
        return await self.journal.append(PARTITION, write_payload(coll.schema, ids, vectors, metadata),
                                         request_id=uuid.uuid4().hex, shards=[0], ack=journal_pb2.ACK_JOURNAL)


class QueryClient:
    """QueryProcessorService over real gRPC; errors come back as VecraftErrors."""

    def __init__(self, address: str) -> None:
        self.channel = grpc_channel(address)
        self.stub = query_pb2_grpc.QueryProcessorServiceStub(self.channel)

    async def search(self, coll: str, vector: np.ndarray | Sequence[float], *, k: int = 10,
                     level: ConsistencyLevel = ConsistencyLevel.EVENTUAL, max_staleness_ms: int = 0,
                     min_offset: int = 0, filter_json: str = "",
                     timeout_ms: int = 0) -> query_pb2.QuerySearchResponse:
        req = query_pb2.QuerySearchRequest(
            collection=coll, tenant="default", vector=np.asarray(vector, dtype="<f4").tobytes(), k=k,
            filter_json=filter_json, level=level_to_proto(level), max_staleness_ms=max_staleness_ms,
            min_offset=min_offset, timeout_ms=timeout_ms)
        with translate_rpc_error():
            return await self.stub.Search(req, timeout=30)

    async def close(self) -> None:
        await self.channel.close()


def metric_value(http_address: str, name: str, labels: dict[str, str] | None = None) -> float:
    """Sum of a metric's samples in /metrics whose labels include ``labels``."""
    text = httpx.get(f"http://{http_address}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if not m:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(found.get(k) == v for k, v in (labels or {}).items()):
            total += float(m.group(2))
    return total


@pytest.fixture
def journal_proc(start_service: Callable[..., ServiceProcess], tmp_path: Path) -> ServiceProcess:
    return start_service(JOURNAL, ["--data-dir", str(tmp_path / "journal"), "--data-partitions", "1",
                                   "--fsync", "--heartbeat-ms", "100"], ready_timeout=60.0)


@pytest.fixture
def start_query(start_service: Callable[..., ServiceProcess], journal_proc: ServiceProcess,
                tmp_path: Path) -> Callable[..., ServiceProcess]:
    def _start(*extra: str, wait_ready: bool = True) -> ServiceProcess:
        shard = [] if "--shard" in extra else ["--shard", "0"]
        return start_service(QUERY, [*shard, "--journal-address", journal_proc.grpc_address,
                                     "--data-partitions", "1", "--data-dir", str(tmp_path / "query"), *extra],
                             wait_ready=wait_ready, ready_timeout=60.0)
    return _start


@pytest.fixture
async def journal(journal_proc: ServiceProcess) -> AsyncIterator[JournalClient]:
    client = JournalClient(journal_proc.grpc_address)
    yield client
    await client.close()


@pytest.fixture
def writer(journal: JournalClient) -> Writer:
    return Writer(journal)


@pytest.fixture
async def connect() -> AsyncIterator[Callable[[ServiceProcess], QueryClient]]:
    """``connect(proc)``: a QueryClient to a query processor, closed at teardown."""
    clients: list[QueryClient] = []

    def _connect(proc: ServiceProcess) -> QueryClient:
        clients.append(QueryClient(proc.grpc_address))
        return clients[-1]

    yield _connect
    for client in clients:
        await client.close()
