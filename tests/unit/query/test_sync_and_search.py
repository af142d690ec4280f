"""Single-flight pull-before-read and the search path, over an in-memory journal."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import orjson
import pytest

from tests.unit.query.fakes import (
    PARTITION,
    FakeJournal,
    create_payload,
    followers_for,
    sync_to,
    warm,
    write_payload,
)
from vecraft.services.query_processor.cache import ShardCache
from vecraft.services.query_processor.vector_search.request import parse_query
from vecraft.services.query_processor.vector_search.searcher import VectorSearcher
from vecraft.shared.common.errors import DeadlineExceeded, InvalidRequest, NotFound, Unavailable
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.rpc.v1 import journal_pb2, query_pb2

pytestmark = pytest.mark.unit
DIM = 6
T = TypeVar("T")


@pytest.fixture
async def executor() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
def journal() -> FakeJournal:
    j = FakeJournal()
    schema, ddl = create_payload("c", DIM)
    j.append(ddl)
    j.append(write_payload(schema, ["a", "b"], np.eye(DIM, dtype=np.float32)[:2]))
    j.schema = schema  # type: ignore[attr-defined]
    return j


@pytest.fixture
async def cache(journal: FakeJournal, executor: ThreadPoolExecutor) -> ShardCache:
    c = ShardCache([0], [PARTITION], executor)
    await warm(journal, c)  # type: ignore[arg-type]
    journal.pull_calls.clear()
    return c


async def until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def add(journal: FakeJournal, rid: str, row: int) -> int:
    vec = np.zeros((1, DIM), np.float32)
    vec[0, row] = 1
    meta = orjson.dumps({"rid": rid}).decode()
    schema = journal.schema  # type: ignore[attr-defined]
    return journal.append(write_payload(schema, [rid], vec, [meta])).offset


def request(level: L, row: int = 0, **kw: object) -> query_pb2.QuerySearchRequest:
    vec = np.zeros(DIM, np.float32)
    vec[row] = 1
    return query_pb2.QuerySearchRequest(collection="c", vector=vec.astype("<f4").tobytes(), k=3,
                                        level=int(level), **kw)  # type: ignore[arg-type]


async def test_concurrent_syncs_coalesce_into_one_pull(journal: FakeJournal, cache: ShardCache) -> None:
    syncer = followers_for(journal, cache)  # type: ignore[arg-type]
    target = max(add(journal, f"n{i}", 2) for i in range(5))
    journal.gate.clear()
    waiters = [asyncio.create_task(sync_to(syncer, target)) for _ in range(10)]
    await until(lambda: len(syncer[PARTITION]._wanted) == 10)  # all ten wait on the pull
    journal.gate.set()
    assert await asyncio.gather(*waiters) == [True] * 10
    assert len(journal.pull_calls) == 1
    assert cache.applied(PARTITION)[0] == target
    assert await sync_to(syncer, target) is False


async def test_a_higher_target_starts_the_next_pull_for_every_waiter(journal: FakeJournal,
                                                                     cache: ShardCache) -> None:
    syncer = followers_for(journal, cache)  # type: ignore[arg-type]
    first = add(journal, "x", 2)
    journal.gate.clear()
    low = asyncio.create_task(sync_to(syncer, first))
    await until(lambda: len(journal.pull_calls) == 1)  # the pull to `first` is in flight
    second = add(journal, "y", 3)
    third = add(journal, "z", 3)
    high = [asyncio.create_task(sync_to(syncer, t)) for t in (second, third, second)]
    await until(lambda: len(syncer[PARTITION]._wanted) == 4)
    journal.gate.set()
    await asyncio.gather(low, *high)
    # One pull to `first`, then one pull to the highest target any waiter needed.
    assert [c[2] for c in journal.pull_calls] == [first, third]


async def test_a_waiter_that_gives_up_does_not_cancel_the_shared_pull(journal: FakeJournal,
                                                                      cache: ShardCache) -> None:
    syncer = followers_for(journal, cache)  # type: ignore[arg-type]
    target = add(journal, "slow", 2)
    journal.gate.clear()
    patient = asyncio.create_task(sync_to(syncer, target))
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            await sync_to(syncer, target)
    journal.gate.set()
    assert await patient is True
    assert len(journal.pull_calls) == 1


@pytest.mark.timeout(10)
async def test_a_finished_pull_still_registered_starts_the_next_one(journal: FakeJournal,
                                                                    cache: ShardCache) -> None:
    """Regression: a request arriving after a pull finished but before the pull's done callback
    unregistered it awaited the finished task again and again (that never yields), freezing the
    event loop; found by the end-to-end strong-read trials (tests/integration/e2e)."""
    syncer = followers_for(journal, cache)  # type: ignore[arg-type]
    first = add(journal, "p", 2)
    flight = syncer[PARTITION]._start(first, None)
    await asyncio.wait({flight[1]})
    syncer[PARTITION]._flight = flight  # the window: finished, done callback not run yet
    second = add(journal, "q", 3)
    assert await sync_to(syncer, second) is True
    assert cache.applied(PARTITION)[0] == second


async def test_journal_failure_reaches_every_waiter(journal: FakeJournal, cache: ShardCache) -> None:
    syncer = followers_for(journal, cache)  # type: ignore[arg-type]
    target = add(journal, "lost", 2)
    journal.down = True
    results = await asyncio.gather(*(sync_to(syncer, target) for _ in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, Unavailable) for r in results)
    journal.down = False
    assert await sync_to(syncer, target) is True


def searcher(journal: FakeJournal, cache: ShardCache, *, sync_timeout_ms: int = 30_000) -> VectorSearcher:
    syncer = followers_for(journal, cache)  # type: ignore[arg-type]
    return VectorSearcher(cache, syncer, sync_timeout_ms=sync_timeout_ms, warm=lambda: True)


async def test_each_level_on_a_lagging_cache(journal: FakeJournal, cache: ShardCache) -> None:
    s = searcher(journal, cache)
    old = add(journal, "old", 2)
    new = add(journal, "new", 3)
    await asyncio.sleep(0.2)
    resp = await s.search(request(L.EVENTUAL, 3))
    assert "new" not in [r.id for r in resp.results]
    # "old" was committed over 200 ms ago and is missing.
    assert resp.consistency_info.staleness_ms >= 200 and not resp.consistency_info.sync_performed
    resp = await s.search(request(L.READ_YOUR_WRITES, 2, min_offset=old))
    assert resp.consistency_info.index_version_used == old and resp.consistency_info.sync_performed
    resp = await s.search(request(L.BOUNDED_STALENESS, 3, max_staleness_ms=100))
    assert resp.results[0].id == "new" and resp.consistency_info.index_version_used == new
    assert resp.consistency_info.staleness_ms <= 100 and resp.consistency_info.max_allowed_staleness_ms == 100
    newest = add(journal, "newest", 4)
    resp = await s.search(request(L.STRONG, 4))
    info = resp.consistency_info
    assert resp.results[0].id == "newest" and info.index_version_used == newest
    assert info.level_requested == info.level_achieved == L.STRONG and info.cache_hit and info.sync_performed


async def test_unmet_level_is_an_error_never_a_downgrade(journal: FakeJournal, cache: ShardCache) -> None:
    s = searcher(journal, cache)
    add(journal, "late", 2)
    journal.gate.clear()
    with pytest.raises(DeadlineExceeded, match="strong"):
        await s.search(request(L.STRONG, timeout_ms=100))
    with pytest.raises(DeadlineExceeded):
        await s.search(request(L.READ_YOUR_WRITES, min_offset=3), time_remaining_s=0.05)
    journal.gate.set()
    journal.down = True
    with pytest.raises(Unavailable):
        await s.search(request(L.STRONG))


async def test_collection_created_after_the_cache_is_found_by_strong_reads(journal: FakeJournal,
                                                                          cache: ShardCache) -> None:
    s = searcher(journal, cache)
    schema, ddl = create_payload("fresh", DIM)
    journal.append(ddl)
    journal.append(write_payload(schema, ["f"], np.ones((1, DIM), np.float32)))
    vector = np.ones(DIM, "<f4").tobytes()
    with pytest.raises(NotFound):
        await s.search(query_pb2.QuerySearchRequest(collection="fresh", vector=vector, k=1))
    resp = await s.search(query_pb2.QuerySearchRequest(collection="fresh", vector=vector, k=1,
                                                       level=int(L.STRONG)))
    assert [r.id for r in resp.results] == ["f"] and resp.consistency_info.sync_performed


async def test_cold_cache_without_storage_nodes_is_unavailable(journal: FakeJournal,
                                                               cache: ShardCache) -> None:
    syncer = followers_for(journal, cache)  # type: ignore[arg-type]
    s = VectorSearcher(cache, syncer, sync_timeout_ms=1000, warm=lambda: False)
    with pytest.raises(Unavailable, match="warming"):
        await s.search(request(L.EVENTUAL))


@pytest.mark.parametrize(("field", "value", "match"), [
    ("k", 0, "k must be"), ("k", 5000, "k must be"), ("vector", b"", "non-empty"),
    ("vector", b"\x00" * 5, "float32"), ("filter_json", "[1,", "not valid JSON"),
    ("filter_json", '{"a": {"$bogus": 1}}', "bogus"), ("ef_search", 10**6, "ef_search"),
    ("level", 7, "consistency level"), ("timeout_ms", -1, "timeout_ms"),
])
def test_malformed_requests_are_refused(field: str, value: object, match: str) -> None:
    req = request(L.EVENTUAL)
    setattr(req, field, value)
    with pytest.raises(InvalidRequest, match=match):
        parse_query(req, [0])


def test_a_shard_not_served_is_unavailable_naming_it() -> None:
    """503, not 400: the shard may be served here soon (loading) or elsewhere (moved): ask another."""
    req = request(L.EVENTUAL)
    req.shards.extend([0, 3])
    with pytest.raises(Unavailable, match=r"shard 3 is not served .*serves \[0\], loading \[3\]") as err:
        parse_query(req, [0], [3])
    assert err.value.details == {"shards": [3], "served_shards": [0], "loading_shards": [3]}
    with pytest.raises(Unavailable, match="no shard is served"):
        parse_query(request(L.EVENTUAL), [])
    req.max_staleness_ms = -1  # malformed input is refused first, whatever the shards
    with pytest.raises(InvalidRequest, match="max_staleness_ms"):
        parse_query(req, [0])


def test_infinite_vector_is_refused() -> None:
    req = request(L.EVENTUAL)
    req.vector = np.array([np.inf] + [0.0] * (DIM - 1), "<f4").tobytes()
    with pytest.raises(InvalidRequest, match="NaN or infinite"):
        parse_query(req, [0])


class CountingPool(ThreadPoolExecutor):
    """A pool that counts the calls handed to it."""

    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


async def test_a_search_uses_the_pool_only_while_an_apply_runs(journal: FakeJournal) -> None:
    pool = CountingPool()
    entered, release = threading.Event(), threading.Event()
    try:
        cache = ShardCache([0], [PARTITION], pool)
        await warm(journal, cache)  # type: ignore[arg-type]
        query = np.eye(DIM, dtype=np.float32)[0]
        before = pool.submitted
        hits = await cache.search([0], "default", "c", query, 1, None, None)
        assert hits[0].ids == ["a"] and pool.submitted == before  # answered on the event loop
        # While an apply runs (it may hold the index's write lock), searches go to the pool.
        state = cache.states[0]
        apply_many = state.apply_many

        def slow_apply(entries: Sequence[journal_pb2.JournalEntry]) -> None:
            entered.set()
            release.wait(60)
            apply_many(entries)

        state.apply_many = slow_apply  # type: ignore[method-assign]
        offset = add(journal, "x", 0)
        applying = asyncio.create_task(cache.apply(PARTITION, await journal.pull(PARTITION, offset)))
        await until(entered.is_set)  # the apply runs in the pool
        before = pool.submitted
        hits = await cache.search([0], "default", "c", query, 1, None, None)
        assert hits[0].ids == ["a"] and pool.submitted == before + 1
        release.set()
        await applying
        hits = await cache.search([0], "default", "c", query, 2, None, None)
        assert sorted(hits[0].ids) == ["a", "x"] and pool.submitted == before + 1
    finally:
        release.set()
        pool.shutdown(wait=True)
