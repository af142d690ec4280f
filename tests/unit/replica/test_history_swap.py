"""A journal whose history is replaced while a replica follows it, by one at least as long.

The check before every (re)subscribe does not see such a swap when the push
stream reconnects by itself. These tests cover what the follower checks on its
own paths: a pull re-reads the applied entry and halts on another HLC, every
run of entries applied must have HLCs rising above the applied one, and the
first head poll that answers after failed ones checks the history at once. On
main the pull applied the other history's entries on top of the old ones.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.unit.query.fakes import PARTITION, FakeJournal, create_payload, followers_for, warm, write_payload
from vecraft.services.query_processor.cache import ShardCache
from vecraft.shared.common.errors import HistoryMismatch, NotFound
from vecraft.shared.replica import PartitionHalted
from vecraft.shared.replica.follower import HeadWatch, PartitionFollower
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.unit
DIM = 4


@pytest.fixture
async def executor() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


def _row(i: int) -> np.ndarray:
    return np.eye(DIM, dtype=np.float32)[i % DIM:i % DIM + 1]


def _history(create: bytes, schema: object, prefix: str, writes: int, *, hlc_shift: int) -> FakeJournal:
    """A journal of ``create`` then ``writes`` one-record writes, its HLCs shifted by ``hlc_shift``."""
    j = FakeJournal()
    j.append(create)
    for i in range(writes):
        j.append(write_payload(schema, [f"{prefix}{i}"], _row(i)))  # type: ignore[arg-type]
    for e in j.entries[PARTITION]:
        e.hlc += hlc_shift
    return j


async def _cached(executor: ThreadPoolExecutor) -> tuple[FakeJournal, ShardCache, PartitionFollower,
                                                          Callable[[int], FakeJournal]]:
    """A cache warmed from an "old" history of 4 entries, and a maker of "new" ones."""
    schema, create = create_payload("c", DIM)
    journal = _history(create, schema, "old", 3, hlc_shift=0)
    cache = ShardCache([0], [PARTITION], executor)
    await warm(journal, cache)  # type: ignore[arg-type]
    follower = followers_for(journal, cache)[PARTITION]
    assert follower.applied_offset == 4

    def other(writes: int) -> FakeJournal:
        # The same collection (the same create entry), then other writes: HLCs well above the old ones.
        return _history(create, schema, "new", writes, hlc_shift=1 << 24)

    return journal, cache, follower, other


def _swap(journal: FakeJournal, other: FakeJournal) -> None:
    journal.entries = other.entries


async def _ids(cache: ShardCache) -> set[str]:
    try:
        hits = await cache.search([0], "default", "c", np.ones(DIM, np.float32), 50, None, None)
    except NotFound:
        return set()
    return set(hits[0].ids)


async def test_a_pull_from_a_longer_other_history_halts_instead_of_mixing(
        executor: ThreadPoolExecutor) -> None:
    journal, cache, follower, other = await _cached(executor)
    _swap(journal, other(6))  # head 7, past the 4 applied
    with pytest.raises(PartitionHalted, match="another history"):
        await follower.sync(7)
    assert cache.halts.halted(PARTITION) and follower.applied_offset == 4
    assert await _ids(cache) == {"old0", "old1", "old2"}  # nothing of the other history applied
    assert journal.pull_calls[-1][1] == 4  # the pull re-read the applied entry


async def test_a_pull_that_finds_fewer_entries_than_applied_halts(executor: ThreadPoolExecutor) -> None:
    journal, cache, follower, other = await _cached(executor)
    _swap(journal, other(1))  # head 2, below the 4 applied
    with pytest.raises(PartitionHalted):
        await follower.sync(None)
    assert cache.halts.halted(PARTITION) and follower.applied_offset == 4


class _Stream:
    """A push stream that delivers ``entries`` and then stays open."""

    def __init__(self, entries: Sequence[journal_pb2.JournalEntry]) -> None:
        self.entries = list(entries)
        self.head_offset = self.entries[-1].offset if self.entries else 0
        self.head_hlc = self.entries[-1].hlc if self.entries else 0

    async def _iterate(self) -> AsyncIterator[journal_pb2.JournalEntry]:
        for entry in self.entries:
            yield entry
        await asyncio.Event().wait()

    def __aiter__(self) -> AsyncIterator[journal_pb2.JournalEntry]:
        return self._iterate()

    def oldest_pending_hlc(self) -> int:
        return 0

    def skip_to(self, offset: int, hlc: int) -> None:
        pass

    async def close(self) -> None:
        pass


async def test_pushed_entries_whose_hlcs_fall_below_the_applied_one_halt(
        executor: ThreadPoolExecutor) -> None:
    journal, cache, follower, other = await _cached(executor)
    # The stream resumed on another history whose clock ran behind: offsets go on, HLCs do not.
    entries = other(6).entries[PARTITION][4:]
    for i, e in enumerate(entries):
        e.hlc = follower.applied()[1] - (1 << 30) + i
    journal.subscribe = lambda *_a, **_k: _Stream(entries)  # type: ignore[method-assign]
    runner = asyncio.create_task(follower.run())
    try:
        deadline = time.monotonic() + 30
        while not cache.halts.halted(PARTITION):
            assert time.monotonic() < deadline and not runner.done(), "the partition never halted"
            await asyncio.sleep(0.01)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    assert "history changed" in cache.halts.reasons()[PARTITION]
    assert follower.applied_offset == 4 and await _ids(cache) == {"old0", "old1", "old2"}


async def test_the_first_head_poll_after_an_outage_checks_the_history(executor: ThreadPoolExecutor) -> None:
    journal, cache, follower, other = await _cached(executor)
    watch = HeadWatch(journal, {PARTITION: follower})  # type: ignore[arg-type]
    await watch.poll_once()
    journal.down = True
    await watch.poll_once()  # the journal is away ...
    _swap(journal, other(6))
    journal.down = False
    await watch.poll_once()  # ... and came back with another history, longer than the applied one
    assert cache.halts.halted(PARTITION), "the journal came back with another history unnoticed"
    assert watch.polls < 10  # not the periodic check


class _RefusedStream(_Stream):
    """A push stream the journal refuses on resume: it holds another entry before the offset."""

    async def _iterate(self) -> AsyncIterator[journal_pb2.JournalEntry]:
        raise HistoryMismatch("data-0 offset 4 has HLC 1 here, the subscriber resumes after HLC 2")
        yield  # an async generator


async def test_a_stream_refused_on_resume_halts_before_applying_anything(
        executor: ThreadPoolExecutor) -> None:
    journal, cache, follower, _other = await _cached(executor)
    asked: list[int] = []

    def subscribe(*_a: object, after_hlc: int = 0, **_k: object) -> _Stream:
        asked.append(after_hlc)
        return _RefusedStream([])

    journal.subscribe = subscribe  # type: ignore[method-assign]
    runner = asyncio.create_task(follower.run())
    try:
        deadline = time.monotonic() + 30
        while not cache.halts.halted(PARTITION):
            assert time.monotonic() < deadline and not runner.done(), "the partition never halted"
            await asyncio.sleep(0.01)
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    # The follower told the journal the HLC it applied last, and halted as diverged on the refusal.
    assert asked == [follower.applied()[1]]
    assert "resumes after HLC" in cache.halts.reasons()[PARTITION]
    assert follower.applied_offset == 4 and await _ids(cache) == {"old0", "old1", "old2"}
