"""The served shard set changes at runtime: a loaded shard joins the cache with no gap, a dropped one goes.

One cache (one ShardState per shard) is fed by one follower per partition; a
shard the placement map adds is built by a separate loader cache from the
journal, and joins once it has applied as far as the cache has applied or is
applying (``ShardCache.behind``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.support.waits import until
from tests.unit.query.fakes import PARTITION, FakeJournal, create_payload, write_payload
from vecraft.services.query_processor.cache import ShardCache, cache_followers, warm_up
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.model.routing import shard_of
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

pytestmark = pytest.mark.unit
DIM = 4


@pytest.fixture
async def pool() -> AsyncIterator[ThreadPoolExecutor]:
    executor = ThreadPoolExecutor(max_workers=2)
    yield executor
    executor.shutdown(wait=True)


class Log:
    """A 2-shard collection in a fake journal, written ``batch`` ids at a time."""

    def __init__(self) -> None:
        self.journal = FakeJournal()
        schema, ddl = create_payload("c", DIM, "l2", shards=2)
        self.schema: collection_pb2.CollectionSchema = schema
        self.journal.append(ddl)
        self.ids: list[str] = []

    def write(self, n: int) -> int:
        ids = [f"r{len(self.ids) + i}" for i in range(n)]
        self.ids.extend(ids)
        rows = np.random.default_rng(len(self.ids)).standard_normal((n, DIM)).astype(np.float32)
        return self.journal.append(write_payload(self.schema, ids, rows)).offset

    def of_shard(self, shard: int) -> set[str]:
        return {i for i in self.ids if shard_of(i, 2) == shard}


async def found(cache: ShardCache, shard: int) -> set[str]:
    hits = await cache.search([shard], "default", "c", np.zeros(DIM, np.float32), 1000, None, None)
    return set(hits[0].ids)


async def test_a_loaded_shard_joins_ahead_of_the_cache_and_follows_it(pool: ThreadPoolExecutor) -> None:
    log = Log()
    log.write(20)
    cache = ShardCache([0], [PARTITION], pool)
    followers = cache_followers(log.journal, cache, replica_id="q")  # type: ignore[arg-type]
    await warm_up(followers)
    log.write(20)  # the cache lags: its tail has not brought these yet

    loader = ShardCache([1], [PARTITION], pool, publish_metrics=False)
    await warm_up(cache_followers(log.journal, loader, replica_id="l", observe=False))  # type: ignore[arg-type]
    assert loader.applied(PARTITION)[0] > cache.applied(PARTITION)[0]
    assert cache.behind(loader) == {}  # ahead of the cache: it may join now
    cache.replace_shards(loader.states)
    assert cache.shards == [0, 1]

    # The cache catches up: shard 0 gets the 20 it missed, shard 1 skips what it has.
    head = log.write(10)
    await followers[PARTITION].sync(head)
    assert await found(cache, 0) == log.of_shard(0)
    assert await found(cache, 1) == log.of_shard(1)


async def test_a_lagging_loader_is_behind_what_the_cache_applied_or_is_applying(
        pool: ThreadPoolExecutor) -> None:
    log = Log()
    log.write(10)
    loader = ShardCache([1], [PARTITION], pool, publish_metrics=False)
    loader_followers = cache_followers(log.journal, loader, replica_id="l", observe=False)  # type: ignore[arg-type]
    await warm_up(loader_followers)
    cache = ShardCache([0], [PARTITION], pool)
    await warm_up(cache_followers(log.journal, cache, replica_id="q"))  # type: ignore[arg-type]
    applied = log.write(10)
    await cache.apply(PARTITION, await log.journal.pull(PARTITION, 1, applied))
    assert cache.behind(loader) == {PARTITION: applied}

    # An apply in the pool right now counts too: its entries would never reach a state joining now.
    entered, release = threading.Event(), threading.Event()
    state = cache.states[0]
    apply_many = state.apply_many

    def slow(entries: Sequence[journal_pb2.JournalEntry]) -> None:
        entered.set()
        release.wait(60)
        apply_many(entries)

    state.apply_many = slow  # type: ignore[method-assign]
    in_flight = log.write(5)
    applying = asyncio.create_task(cache.apply(PARTITION, await log.journal.pull(PARTITION, applied + 1)))
    try:
        await until(entered.is_set)
        assert cache.applied(PARTITION)[0] == applied
        assert cache.behind(loader) == {PARTITION: in_flight}
        await loader_followers[PARTITION].sync(in_flight)
        assert cache.behind(loader) == {}
        cache.replace_shards(loader.states)
    finally:
        release.set()
        await applying
    head = log.write(5)
    await cache.apply(PARTITION, await log.journal.pull(PARTITION, in_flight + 1, head))
    assert await found(cache, 1) == log.of_shard(1)


async def test_a_dropped_shard_is_refused_and_an_empty_cache_serves_nothing(pool: ThreadPoolExecutor) -> None:
    log = Log()
    log.write(10)
    cache = ShardCache([0, 1], [PARTITION], pool)
    await warm_up(cache_followers(log.journal, cache, replica_id="q"))  # type: ignore[arg-type]
    cache.replace_shards({}, [0])
    assert cache.shards == [1] and list(cache.states) == [1]
    with pytest.raises(Unavailable, match=r"shards \[0\] are no longer served .*serves \[1\]"):
        await found(cache, 0)
    assert await found(cache, 1) == log.of_shard(1)
    assert cache.schema("default", "c").shards == 2

    empty = ShardCache([], [PARTITION], pool)
    assert empty.shards == [] and cache_followers(log.journal, empty, replica_id="e")  # type: ignore[arg-type]
    with pytest.raises(Unavailable, match="serves no shard"):
        empty.schema("default", "c")
    await empty.apply(PARTITION, await log.journal.pull(PARTITION, 1))  # applies to no state: fine
    assert empty.applied(PARTITION)[0] == log.journal.head(PARTITION)[0]
