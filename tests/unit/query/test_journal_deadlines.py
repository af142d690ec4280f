"""Every journal call a search makes ends within the search's budget.

A query processor over the real journal client and an in-process gRPC journal
that can stop answering (a journal that accepts calls and never replies: a
stalled disk, a SIGSTOPped process). The client is given per-verb deadlines of
two minutes, so only the request's budget can end a call early. On main the
shared pull of a strong read kept waiting for the verb's deadline long after
the request had failed, holding the partition's lock and its single flight.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
import pytest

from tests.support.waits import until
from tests.unit.query.fakes import PARTITION, FakeJournal, create_payload, followers_for, warm, write_payload
from vecraft.clients.journal import JournalClient, JournalTimeouts
from vecraft.services.query_processor.cache import ShardCache
from vecraft.services.query_processor.vector_search.searcher import VectorSearcher
from vecraft.shared.common.errors import DeadlineExceeded
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.replica.follower import PartitionFollower
from vecraft.shared.rpc.v1 import journal_pb2, journal_pb2_grpc, query_pb2

pytestmark = pytest.mark.unit
DIM = 4
#: Per-verb deadlines far beyond any bound below: a call that ends early ended on the request's budget.
PATIENT = JournalTimeouts(get_offset_s=120.0, pull_s=120.0)
#: Generous bound for "ended long before the verb's deadline" on a busy machine.
BOUND_S = 30.0


class StallingJournal(journal_pb2_grpc.JournalServiceServicer):
    """GetOffset and PullWAL over a list of entries; either can be made to never answer."""

    def __init__(self) -> None:
        self.fake = FakeJournal()  # builds the entries
        self.stall_heads = False
        self.stall_pulls = False
        self.release = asyncio.Event()
        self.pending = 0  # calls waiting in a stall right now

    async def _stall(self) -> None:
        self.pending += 1
        try:
            await self.release.wait()  # cancelled when the caller's deadline passes
        finally:
            self.pending -= 1

    async def GetOffset(self, request: journal_pb2.GetOffsetRequest,  # noqa: N802 - gRPC method
                        context: Any) -> journal_pb2.GetOffsetResponse:
        if self.stall_heads:
            await self._stall()
        return journal_pb2.GetOffsetResponse(offsets=[
            journal_pb2.PartitionOffset(partition=p, offset=self.fake.head(p)[0], hlc=self.fake.head(p)[1])
            for p in request.partitions or [PARTITION]])

    async def PullWAL(self, request: journal_pb2.PullWALRequest,  # noqa: N802 - gRPC method
                      context: Any) -> journal_pb2.PullWALResponse:
        if self.stall_pulls:
            await self._stall()
        log = self.fake.entries.get(request.partition, [])
        last = request.to_offset or len(log)
        head, head_hlc = self.fake.head(request.partition)
        return journal_pb2.PullWALResponse(
            entries=[e for e in log if request.from_offset <= e.offset <= last],
            latest_offset=head, latest_hlc=head_hlc)


@pytest.fixture
async def journal() -> AsyncIterator[tuple[StallingJournal, JournalClient]]:
    servicer = StallingJournal()
    server = grpc.aio.server()
    journal_pb2_grpc.add_JournalServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")  # the kernel picks a free port
    await server.start()
    client = JournalClient(f"127.0.0.1:{port}", timeouts=PATIENT)
    yield servicer, client
    servicer.release.set()
    await client.close()
    await server.stop(grace=None)


@pytest.fixture
async def executor() -> AsyncIterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=2)
    yield pool
    pool.shutdown(wait=True)


def _vector(row: int) -> np.ndarray:
    return np.eye(DIM, dtype=np.float32)[row:row + 1]


async def _searcher(servicer: StallingJournal, client: JournalClient,
                    executor: ThreadPoolExecutor) -> tuple[VectorSearcher, PartitionFollower]:
    schema, ddl = create_payload("c", DIM)
    servicer.fake.append(ddl)
    servicer.fake.append(write_payload(schema, ["a"], _vector(0)))
    servicer.fake.schema = schema  # type: ignore[attr-defined]
    cache = ShardCache([0], [PARTITION], executor)
    await warm(client, cache)
    followers = followers_for(client, cache)
    return VectorSearcher(cache, followers, sync_timeout_ms=60_000, warm=lambda: True), followers[PARTITION]


def _request(level: L, row: int = 0, **kw: Any) -> query_pb2.QuerySearchRequest:
    return query_pb2.QuerySearchRequest(collection="c", vector=np.eye(DIM, dtype="<f4")[row].tobytes(), k=3,
                                        level=int(level), **kw)


async def _until(predicate: Callable[[], bool], timeout: float = BOUND_S) -> None:
    await until(predicate, timeout)


async def test_a_strong_read_whose_pull_stalls_fails_and_leaves_no_call_behind(
        journal: tuple[StallingJournal, JournalClient], executor: ThreadPoolExecutor) -> None:
    servicer, client = journal
    searcher, follower = await _searcher(servicer, client, executor)
    head = servicer.fake.append(write_payload(servicer.fake.schema, ["b"], _vector(1))).offset  # type: ignore[attr-defined]
    servicer.stall_pulls = True
    began = time.monotonic()
    with pytest.raises(DeadlineExceeded, match="consistency level strong could not be met within 300 ms"):
        # The gateway's strong read: the head it read travels as min_offset.
        await searcher.search(_request(L.STRONG, min_offset=head, timeout_ms=300))
    assert time.monotonic() - began < BOUND_S
    # The shared pull the request started ends with the request's budget, not the verb's 2 minutes.
    await _until(lambda: servicer.pending == 0 and follower._flight is None)
    # Nothing was applied half-way, and once the journal answers again the same read succeeds.
    assert follower.applied_offset == head - 1
    servicer.stall_pulls = False
    resp = await searcher.search(_request(L.STRONG, 1, min_offset=head, timeout_ms=30_000))
    assert resp.results[0].id == "b" and resp.consistency_info.index_version_used == head


async def test_a_journal_that_answers_nothing_fails_strong_and_bounded_reads_in_time(
        journal: tuple[StallingJournal, JournalClient], executor: ThreadPoolExecutor) -> None:
    servicer, client = journal
    searcher, _ = await _searcher(servicer, client, executor)
    servicer.stall_heads = servicer.stall_pulls = True
    for req in (_request(L.STRONG, timeout_ms=300),
                _request(L.BOUNDED_STALENESS, max_staleness_ms=1, timeout_ms=300)):
        with pytest.raises(DeadlineExceeded, match="could not be met within 300 ms"):
            await searcher.search(req)
    await _until(lambda: servicer.pending == 0)
    # An eventual read needs no journal call: it answers from the cache as it is.
    resp = await searcher.search(_request(L.EVENTUAL, timeout_ms=300))
    assert resp.results[0].id == "a"


async def test_a_shared_pull_runs_to_the_latest_deadline_of_its_waiters(
        journal: tuple[StallingJournal, JournalClient], executor: ThreadPoolExecutor) -> None:
    servicer, client = journal
    _, follower = await _searcher(servicer, client, executor)
    head = servicer.fake.append(write_payload(servicer.fake.schema, ["b"], _vector(1))).offset  # type: ignore[attr-defined]
    servicer.stall_pulls = True
    hasty = asyncio.create_task(follower.sync(head, timeout_s=0.3))
    await _until(lambda: servicer.pending == 1)  # the hasty request's pull is in flight
    patient = asyncio.create_task(follower.sync(head, timeout_s=BOUND_S * 2))
    with pytest.raises(DeadlineExceeded):
        await hasty
    # The pull that ran to the hasty deadline failed; the patient waiter started the next one.
    await _until(lambda: servicer.pending == 1 and not patient.done())
    servicer.release.set()
    outcome = await asyncio.wait_for(patient, BOUND_S)
    assert outcome.applied_offset == head and outcome.pulled


async def test_every_journal_call_of_a_search_carries_its_budget(executor: ThreadPoolExecutor) -> None:
    fake = FakeJournal()
    schema, ddl = create_payload("c", DIM)
    fake.append(ddl)
    cache = ShardCache([0], [PARTITION], executor)
    await warm(fake, cache)
    searcher = VectorSearcher(cache, followers_for(fake, cache), sync_timeout_ms=60_000, warm=lambda: True)
    head = fake.append(write_payload(schema, ["a"], _vector(0))).offset
    fake.timeouts.clear()
    await searcher.search(_request(L.STRONG, timeout_ms=2000))
    await searcher.search(_request(L.BOUNDED_STALENESS, max_staleness_ms=1, timeout_ms=2000))
    await searcher.search(_request(L.READ_YOUR_WRITES, min_offset=head, timeout_ms=2000))
    assert fake.timeouts and all(t is not None and 0 < t <= 2.0 for t in fake.timeouts), fake.timeouts
