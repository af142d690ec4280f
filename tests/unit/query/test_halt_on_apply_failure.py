"""A cache that cannot apply an entry halts the partition loudly; it never loops or skips it.

On main, warm-up retried an ``UnknownCollection`` forever (the processor never
became ready and never said why) and the tail logged and went on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from prometheus_client import REGISTRY

from tests.unit.query.fakes import (
    PARTITION,
    FakeJournal,
    create_payload,
    followers_for,
    warm,
    write_payload,
)
from tests.unit.query.test_tail_backpressure import StreamingJournal
from vecraft.services.query_processor.cache import ShardCache
from vecraft.services.query_processor.vector_search.searcher import VectorSearcher
from vecraft.shared.common.errors import Unavailable, VecraftError
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.rpc.v1 import query_pb2

pytestmark = pytest.mark.unit
DIM = 4


@pytest.fixture
async def executor() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


def _halts() -> float:
    return REGISTRY.get_sample_value("vecraft_replica_halts_total",
                                     {"partition": PARTITION, "cause": "apply_failed"}) or 0.0


def _search(level: L = L.EVENTUAL) -> query_pb2.QuerySearchRequest:
    vec = np.ones(DIM, np.float32).astype("<f4").tobytes()
    return query_pb2.QuerySearchRequest(collection="c", vector=vec, k=2, level=int(level))


def _journal_with_an_orphan_write(journal: FakeJournal) -> int:
    """create c, write c, write to a collection never created, write c: returns the orphan's offset."""
    schema, ddl = create_payload("c", DIM)
    journal.append(ddl)
    journal.append(write_payload(schema, ["a"], np.ones((1, DIM))))
    ghost, _ = create_payload("ghost", DIM)
    orphan = journal.append(write_payload(ghost, ["g"], np.ones((1, DIM)))).offset
    journal.append(write_payload(schema, ["b"], np.ones((1, DIM))))
    return orphan


async def test_warm_up_halts_the_partition_instead_of_retrying_forever(executor: ThreadPoolExecutor) -> None:
    journal = FakeJournal()
    orphan = _journal_with_an_orphan_write(journal)
    cache = ShardCache([0], [PARTITION], executor)
    halted: list[tuple[str, VecraftError]] = []
    cache.halts.on_halt = lambda p, e: halted.append((p, e))
    before = _halts()
    async with asyncio.timeout(5):
        await warm(journal, cache, retry_s=0.01)  # type: ignore[arg-type]
    assert cache.halts.halted(PARTITION) and [p for p, _e in halted] == [PARTITION]
    assert cache.applied(PARTITION)[0] == orphan - 1  # everything before it stays applied
    assert _halts() == before + 1
    searcher = VectorSearcher(cache, followers_for(journal, cache),  # type: ignore[arg-type]
                              sync_timeout_ms=1000, warm=lambda: True)
    for level in L:
        with pytest.raises(Unavailable, match=r"halted.*never saw created"):
            await searcher.search(_search(level))


async def test_the_tail_halts_and_parks_instead_of_looping(executor: ThreadPoolExecutor) -> None:
    journal = StreamingJournal()
    schema, ddl = create_payload("c", DIM)
    journal.append(ddl)
    cache = ShardCache([0], [PARTITION], executor)
    await warm(journal, cache)  # type: ignore[arg-type]
    ghost, _ = create_payload("ghost", DIM)
    journal.append(write_payload(ghost, ["g"], np.ones((1, DIM))))
    journal.append(write_payload(schema, ["b"], np.ones((1, DIM))))
    tail = followers_for(journal, cache)[PARTITION]
    running = asyncio.create_task(tail.run())
    try:
        async with asyncio.timeout(5):
            while not cache.halts.halted(PARTITION):
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.6)  # longer than a resubscribe pause
        assert not running.done()  # parked, not dead (which would kill the process)
        assert len(journal.subscriptions) == 1  # and not resubscribing in a loop
        assert cache.applied(PARTITION)[0] == 1
        searcher = VectorSearcher(cache, followers_for(journal, cache),  # type: ignore[arg-type]
                                  sync_timeout_ms=1000, warm=lambda: True)
        with pytest.raises(Unavailable, match="halted"):
            await searcher.search(_search(L.STRONG))
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
