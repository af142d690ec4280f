"""``min_required_offset`` binds at every consistency level (docs/http-api.md).

The query processor's decision, its cache path, its warm-up fallback to the
storage nodes, and the gateway all carry the offset whatever the level.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.unit.gateway.fakes import FakeDownstream
from tests.unit.query.fakes import (
    PARTITION,
    FakeJournal,
    NodeRegistry,
    create_payload,
    followers_for,
    storage_node,
    warm,
    write_payload,
)
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.services.query_processor.cache import ShardCache
from vecraft.services.query_processor.vector_search.consistency import (
    SyncDecision,
    decide,
    is_met,
    requirement,
)
from vecraft.services.query_processor.vector_search.fallback import StorageFallback
from vecraft.services.query_processor.vector_search.request import parse_query
from vecraft.services.query_processor.vector_search.searcher import VectorSearcher
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.rpc.v1 import query_pb2, storage_pb2

pytestmark = pytest.mark.unit
DIM = 4


@pytest.mark.parametrize("level", [L.EVENTUAL, L.BOUNDED_STALENESS, L.READ_YOUR_WRITES, L.STRONG])
def test_the_decision_honours_min_offset_at_every_level(level: L) -> None:
    req = requirement(level, max_staleness_ms=10**6, min_offset=9)
    assert decide(req, applied=8, staleness_ms=0) == SyncDecision(True, 9)
    assert not is_met(req, applied=8, staleness_ms=0)
    assert is_met(req, applied=9, staleness_ms=0)


def test_bounded_with_min_offset_needs_both() -> None:
    req = requirement(L.BOUNDED_STALENESS, max_staleness_ms=100, min_offset=5)
    assert decide(req, applied=5, staleness_ms=101) == SyncDecision(True, None)
    assert not is_met(req, applied=5, staleness_ms=101)
    assert not is_met(req, applied=4, staleness_ms=0)


@pytest.fixture
async def executor() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


def _vec(row: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[row] = 1
    return v


def _request(level: L, min_offset: int, **kw: object) -> query_pb2.QuerySearchRequest:
    return query_pb2.QuerySearchRequest(collection="c", vector=_vec(1).astype("<f4").tobytes(), k=3,
                                        level=int(level), min_offset=min_offset, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("level", [L.EVENTUAL, L.BOUNDED_STALENESS])
async def test_a_cache_read_with_min_offset_sees_the_write(level: L, executor: ThreadPoolExecutor) -> None:
    journal = FakeJournal()
    schema, ddl = create_payload("c", DIM)
    journal.append(ddl)
    journal.append(write_payload(schema, ["a"], _vec(0)[None, :]))
    cache = ShardCache([0], [PARTITION], executor)
    await warm(journal, cache)  # type: ignore[arg-type]
    # A fresh head report: the bounded bound alone would be met from the cache.
    await followers_for(journal, cache)[PARTITION].journal_head()  # type: ignore[arg-type]
    written = journal.append(write_payload(schema, ["b"], _vec(1)[None, :])).offset
    searcher = VectorSearcher(cache, followers_for(journal, cache),  # type: ignore[arg-type]
                              sync_timeout_ms=2000, warm=lambda: True)
    resp = await searcher.search(_request(level, written, max_staleness_ms=60_000))
    assert resp.results[0].id == "b"
    info = resp.consistency_info
    assert info.sync_performed and info.index_version_used >= written


class _RecordingStub:
    def __init__(self) -> None:
        self.requests: list[storage_pb2.ShardSearchRequest] = []

    async def Search(self, request: storage_pb2.ShardSearchRequest,  # noqa: N802 - gRPC name
                     timeout: float) -> storage_pb2.ShardSearchResponse:
        self.requests.append(storage_pb2.ShardSearchRequest.FromString(request.SerializeToString()))
        return storage_pb2.ShardSearchResponse(partition=PARTITION, index_version=request.min_offset, shard=0)


@pytest.mark.parametrize("level", [L.EVENTUAL, L.BOUNDED_STALENESS, L.READ_YOUR_WRITES, L.STRONG])
async def test_the_warm_up_fallback_passes_min_offset_at_every_level(level: L) -> None:
    fallback = StorageFallback(NodeRegistry([storage_node("s", [0])]))
    stub = _RecordingStub()
    fallback._stubs = {"s": stub}  # type: ignore[dict-item]  # gRPC stand-in
    q = parse_query(_request(level, 17, max_staleness_ms=60_000), [0])
    answer = await fallback.search(q, 1.0)
    assert stub.requests[0].min_offset == 17
    assert answer.index_version == 17


@pytest.mark.parametrize("level", ["eventual", "bounded", "read_your_writes", "strong"])
def test_the_gateway_passes_min_required_offset_at_every_level(level: str) -> None:
    fake = FakeDownstream()
    app = create_app(Gateway(fake, SchemaCache(fake)), max_body_bytes=1 << 20)
    with TestClient(app, raise_server_exceptions=False) as client:
        for i in range(3):
            assert client.post("/v1/vectors", json={"vector": [1, 2, 3, i], "id": f"x{i}"}).status_code < 300
        body = {"vector": [1, 2, 3, 4], "k": 2, "consistency_level": level, "min_required_offset": 2}
        r = client.post("/v1/vectors/search", json=body)
        assert r.status_code == 200, r.text
        assert fake.search_requests[-1].min_offset >= 2
