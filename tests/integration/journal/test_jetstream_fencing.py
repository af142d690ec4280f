"""The stream itself refuses a deposed owner (fenced JetStream backends on one real nats-server).

No leases here: each backend is granted a holding directly, with a lease that
(by its own clock) has not run out — a process paused past its lease that
resumes believing it still owns the partition. What must stop it is the log:
the newer owner's epoch marker, published against the stream's last sequence.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from vecraft.local.nats import NatsCluster
from vecraft.services.journal_service.wal import LogWrite
from vecraft.services.journal_service.wal.jetstream import Holding, JetStreamJournalBackend
from vecraft.shared.common.errors import FencedOut, NotOwner
from vecraft.shared.hlc import HybridLogicalClock

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

PARTITIONS = ["data-0"]
FOREVER = 3600.0


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path_factory.mktemp("nats"), size=1) as cluster:
        yield cluster


@pytest.fixture
async def backends(nats_server: NatsCluster) -> AsyncIterator[list[JetStreamJournalBackend]]:
    """Three fenced backends on fresh streams; the first one's clock runs 5 s ahead."""
    prefix = f"fence{uuid.uuid4().hex[:8]}"
    ahead = HybridLogicalClock()
    ahead.restore(ahead.now() + (5000 << 16))
    out = [JetStreamJournalBackend(nats_server.urls, PARTITIONS, clock=clock, replicas=1,
                                   stream_prefix=prefix, fenced=True)
           for clock in (ahead, HybridLogicalClock(), HybridLogicalClock())]
    for backend in out:
        await backend.open()
    yield out
    for backend in out:
        await backend.close()


def until() -> float:
    return time.monotonic() + FOREVER


async def test_a_deposed_owner_cannot_extend_the_stream(backends: list[JetStreamJournalBackend]) -> None:
    a, b, _ = (backend.partition("data-0") for backend in backends)
    deposed: list[str] = []
    a.on_deposed = deposed.append

    # Not owning: a fenced log refuses to write at all.
    with pytest.raises(NotOwner):
        await a.append(LogWrite("early", b"x"))

    marker_a = await a.take_over(Holding(1, "a"), until())
    assert marker_a.offset == 1
    first = [(await a.append(LogWrite(f"a{i}", b"x"))).position for i in range(3)]

    # B takes over (A's index never hears of it) and writes.
    marker_b = await b.take_over(Holding(2, "b"), until())
    assert marker_b.offset == 5 and marker_b.hlc > first[-1].hlc  # B's HLC starts above A's (5 s ahead)
    mine = (await b.append(LogWrite("b0", b"y"))).position
    # A retried id is answered by B with its original position.
    again = await b.append(LogWrite("a1", b"retry"))
    assert again.duplicate and again.position == first[1]

    # A still believes it owns data-0: its publish expects a sequence before B's marker (refused by
    # JetStream), its catch-up then finds the newer marker, and it refuses, writing nothing.
    with pytest.raises(NotOwner):
        await a.append(LogWrite("a-stale", b"x"))
    assert deposed == ["data-0"] and a.holding is None and not a.writable
    # Taking it over again under the old epoch is refused too.
    with pytest.raises(FencedOut):
        await a.take_over(Holding(1, "a"), until())

    head = await b.refresh()
    assert head == (mine.offset, mine.hlc)
    entries = await b.read(1, head[0], max_entries=100, max_bytes=1 << 20)
    assert [e.request_id for e in entries] == ["", "a0", "a1", "a2", "", "b0"]
    assert [len(e.payload) for e in entries if not e.request_id] == [0, 0]  # the two markers
    assert b.last_marker == Holding(2, "b")


async def test_a_marker_of_a_stale_token_is_refused(backends: list[JetStreamJournalBackend]) -> None:
    a, b, c = (backend.partition("data-0") for backend in backends)
    await a.take_over(Holding(5, "a"), until())
    await a.append(LogWrite("a0", b"x"))
    # A lease store whose tokens went backwards (or a holding older than the stream's newest).
    with pytest.raises(FencedOut):
        await b.take_over(Holding(3, "b"), until())
    assert (await b.refresh())[0] == 2  # nothing written
    # A newer token takes over; the same holding again is a no-op (its marker is the newest).
    marker = await c.take_over(Holding(6, "c"), until())
    assert await c.take_over(Holding(6, "c"), until()) == marker


async def test_ownership_that_ran_out_stops_writes(backends: list[JetStreamJournalBackend]) -> None:
    a = backends[0].partition("data-0")
    await a.take_over(Holding(1, "a"), until())
    await a.append(LogWrite("a0", b"x"))
    a.extend(Holding(1, "a"), time.monotonic() - 1)  # the lease ran out on this process's clock
    assert not a.writable
    with pytest.raises(NotOwner):
        await a.append(LogWrite("a1", b"x"))
    a.extend(Holding(1, "a"), until())  # renewed in time after all
    assert (await a.append(LogWrite("a1", b"x"))).position.offset == 3
    a.revoke()
    with pytest.raises(NotOwner):
        await a.append(LogWrite("a2", b"x"))
