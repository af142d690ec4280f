"""A target beyond the journal head is refused for its own request only (issue 11, part 3)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.unit.query.fakes import (
    PARTITION,
    FakeJournal,
    create_payload,
    followers_for,
    warm,
    write_payload,
)
from vecraft.services.query_processor.cache import ShardCache
from vecraft.services.query_processor.vector_search.searcher import VectorSearcher
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.rpc.v1 import query_pb2

pytestmark = pytest.mark.unit
DIM = 4


@pytest.fixture
async def executor() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


def _request(level: L, min_offset: int) -> query_pb2.QuerySearchRequest:
    vec = np.ones(DIM, np.float32)
    return query_pb2.QuerySearchRequest(collection="c", vector=vec.astype("<f4").tobytes(), k=3,
                                        level=int(level), min_offset=min_offset)


async def test_one_bad_target_never_fails_the_requests_sharing_its_pull(executor: ThreadPoolExecutor) -> None:
    journal = FakeJournal()
    schema, ddl = create_payload("c", DIM)
    journal.append(ddl)
    cache = ShardCache([0], [PARTITION], executor)
    await warm(journal, cache)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    head = 0
    for i in range(5):
        head = journal.append(write_payload(schema, [f"r{i}"], rng.standard_normal((1, DIM)))).offset
    syncer = followers_for(journal, cache)  # type: ignore[arg-type]
    searcher = VectorSearcher(cache, syncer, sync_timeout_ms=3000, warm=lambda: True)
    journal.gate.clear()  # hold the pulls so every request is waiting at once
    bad = asyncio.create_task(searcher.search(_request(L.READ_YOUR_WRITES, head + 1000)))
    good = [asyncio.create_task(searcher.search(_request(level, head)))
            for level in (L.READ_YOUR_WRITES, L.EVENTUAL, L.BOUNDED_STALENESS, L.STRONG) for _ in range(3)]
    await asyncio.sleep(0.05)
    journal.gate.set()
    with pytest.raises(InvalidRequest, match=rf"min_required_offset {head + 1000} is beyond the head {head} "
                                             rf"of {PARTITION}"):
        await bad
    for resp in await asyncio.gather(*good):
        assert resp.consistency_info.index_version_used >= head
        assert len(resp.results) == 3


async def test_a_bad_target_alone_is_refused_without_pulling(executor: ThreadPoolExecutor) -> None:
    journal = FakeJournal()
    _schema, ddl = create_payload("c", DIM)
    journal.append(ddl)
    cache = ShardCache([0], [PARTITION], executor)
    await warm(journal, cache)  # type: ignore[arg-type]
    journal.pull_calls.clear()
    with pytest.raises(InvalidRequest) as err:
        await followers_for(journal, cache)[PARTITION].sync(50)  # type: ignore[arg-type]
    assert err.value.details["head"] == 1
    assert journal.pull_calls == []
