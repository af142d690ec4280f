"""The push tail's queue is bounded (entries and bytes); a slow applier pushes back, nothing is dropped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.unit.query.fakes import (
    PARTITION,
    FakeJournal,
    create_payload,
    warm,
    write_payload,
)
from vecraft.services.query_processor.cache import ShardCache, cache_followers
from vecraft.shared.replica.queue import EntryQueue
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.unit
DIM = 4
N = 600


class FastSubscription:
    """Yields every entry after ``from_offset`` as fast as it is read; counts what it yielded."""

    def __init__(self, entries: Sequence[journal_pb2.JournalEntry], from_offset: int) -> None:
        self.entries = [e for e in entries if e.offset >= from_offset]
        self.head_offset = entries[-1].offset
        self.head_hlc = entries[-1].hlc
        self.yielded = 0

    async def _iterate(self) -> AsyncIterator[journal_pb2.JournalEntry]:
        for entry in self.entries:
            self.yielded += 1
            yield entry
            await asyncio.sleep(0)
        await asyncio.Event().wait()  # a live stream: no end

    def __aiter__(self) -> AsyncIterator[journal_pb2.JournalEntry]:
        return self._iterate()

    def oldest_pending_hlc(self) -> int:
        return 0

    def skip_to(self, offset: int, hlc: int) -> None:
        pass

    async def close(self) -> None:
        pass


class StreamingJournal(FakeJournal):
    def __init__(self) -> None:
        super().__init__()
        self.subscriptions: list[FastSubscription] = []

    def subscribe(self, partition: str, from_offset: int, **_: object) -> FastSubscription:  # type: ignore[override]
        sub = FastSubscription(self.entries[partition], from_offset)
        self.subscriptions.append(sub)
        return sub


async def test_a_slow_applier_keeps_the_queue_bounded_and_applies_everything_in_order() -> None:
    journal = StreamingJournal()
    schema, ddl = create_payload("c", DIM)
    journal.append(ddl)
    pool = ThreadPoolExecutor(max_workers=1)
    cache = ShardCache([0], [PARTITION], pool)
    await warm(journal, cache)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    for i in range(N):
        journal.append(write_payload(schema, [f"r{i}"], rng.standard_normal((1, DIM))))
    entry_bytes = len(journal.entries[PARTITION][-1].payload)

    applied_order: list[int] = []
    real_apply = cache.apply

    async def slow_apply(partition: str, entries: Sequence[journal_pb2.JournalEntry], *,
                         path: str = "push") -> int:
        applied_order.extend(e.offset for e in entries if e.offset > cache.applied(partition)[0])
        await asyncio.sleep(0.002)  # slower than the stream
        return await real_apply(partition, entries, path=path)

    cache.apply = slow_apply  # type: ignore[method-assign]
    max_entries, max_bytes = 32, entry_bytes * 20  # the byte bound is the tighter one
    tail = cache_followers(journal, cache, replica_id="q",  # type: ignore[arg-type]
                           queue_entries=max_entries, queue_bytes=max_bytes)[PARTITION]
    running = asyncio.create_task(tail.run())
    lead = 0
    try:
        async with asyncio.timeout(30):
            while cache.applied(PARTITION)[0] < N + 1:
                sub = journal.subscriptions[-1] if journal.subscriptions else None
                if sub is not None:
                    # The reader stops reading while the queue is full: what was read but not
                    # applied stays within the bound (plus the batch being applied).
                    lead = max(lead, sub.yielded - (cache.applied(PARTITION)[0] - 1))
                assert len(tail.queue) <= max_entries and tail.queue.bytes <= max_bytes
                await asyncio.sleep(0.001)
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        pool.shutdown(wait=True)
    assert tail.queue.peak_entries <= 20 and tail.queue.peak_bytes <= max_bytes
    assert lead <= 2 * 20 + 1
    assert applied_order == list(range(2, N + 2))  # every entry, once, in order
    assert len(journal.subscriptions) == 1


async def test_an_oversized_entry_is_admitted_alone_never_dropped() -> None:
    queue = EntryQueue(max_entries=4, max_bytes=10)
    big = journal_pb2.JournalEntry(offset=1, payload=b"x" * 100)
    small = journal_pb2.JournalEntry(offset=2, payload=b"y")
    await queue.put(big)
    blocked = asyncio.create_task(queue.put(small))
    await asyncio.sleep(0.01)
    assert not blocked.done() and len(queue) == 1
    assert await queue.take(10) == [big]
    await blocked
    assert await queue.take(10) == [small]
