"""Two JetStream journal backends on the same streams: the one that does not write still serves the stream.

Instance A appends; instance B (opened before, so its index is empty) must
answer its head, pulls, request-id lookups and waiting subscribers from what
the stream holds, and its own appends must land after A's, gapless, with HLCs
above A's.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from vecraft.local.nats import NatsCluster
from vecraft.services.journal_service.wal import LogWrite, Position
from vecraft.services.journal_service.wal.jetstream import JetStreamJournalBackend
from vecraft.shared.hlc import HybridLogicalClock

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

PARTITIONS = ["data-0", "data-1"]


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path_factory.mktemp("nats"), size=1) as cluster:
        yield cluster


@pytest.fixture
async def pair(nats_server: NatsCluster) -> AsyncIterator[tuple[JetStreamJournalBackend,
                                                                JetStreamJournalBackend]]:
    """A and B on fresh streams; A's clock runs 5 s ahead, so B's own clock alone would stamp lower HLCs."""
    prefix = f"pair{uuid.uuid4().hex[:8]}"
    ahead = HybridLogicalClock()
    ahead.restore(ahead.now() + (5000 << 16))
    a = JetStreamJournalBackend(nats_server.urls, PARTITIONS, clock=ahead, replicas=1, stream_prefix=prefix)
    b = JetStreamJournalBackend(nats_server.urls, PARTITIONS, clock=HybridLogicalClock(), replicas=1,
                                stream_prefix=prefix)
    await a.open()
    await b.open()
    yield a, b
    await b.close()
    await a.close()


async def append_all(backend: JetStreamJournalBackend, partition: str, rids: list[str]) -> list[Position]:
    plog = backend.partition(partition)
    return [(await plog.append(LogWrite(rid, rid.encode(), (1,)))).position for rid in rids]


async def test_reads_of_the_other_instance_see_the_stream(
        pair: tuple[JetStreamJournalBackend, JetStreamJournalBackend]) -> None:
    a, b = pair
    written = await append_all(a, "data-0", [f"a{i}" for i in range(5)])
    pb = b.partition("data-0")

    # PullWAL past B's index: the read refreshes the index first.
    got = await pb.read(1, 5, max_entries=100, max_bytes=1 << 20)
    assert [(e.offset, e.hlc, e.request_id, e.payload) for e in got] == [
        (p.offset, p.hlc, f"a{i}", f"a{i}".encode()) for i, p in enumerate(written)]
    assert pb.head == (5, written[-1].hlc)
    assert pb.hlc_at(3) == written[2].hlc and pb.bytes_after(0) == a.partition("data-0").bytes_after(0)

    # A subscriber waiting on B is woken by A's write.
    more = await append_all(a, "data-0", ["a5"])
    assert await pb.wait_for(6, 0.01)
    assert pb.head == (6, more[-1].hlc)

    # Head: one stream-info call brings B to A's head.
    more = await append_all(a, "data-0", ["a6", "a7"])
    assert await pb.refresh() == (8, more[-1].hlc)
    assert (await pb.read(7, 8, max_entries=10, max_bytes=1 << 20))[1].request_id == "a7"

    # LookupRequest of an id B has not seen, on another partition: found after catching up.
    other = await append_all(a, "data-1", ["x0"])
    assert b.lookup("x0") is None
    assert await b.lookup_latest("x0") == other[0]
    assert await b.lookup_latest("never-written") is None


async def test_refreshes_racing_both_writers_keep_every_index_exact(
        pair: tuple[JetStreamJournalBackend, JetStreamJournalBackend]) -> None:
    """Readers' catch-ups index the writer's own batches before their acks arrive, and the other's."""
    a, b = pair
    done = asyncio.Event()
    acked: dict[str, Position] = {}

    async def write(backend: JetStreamJournalBackend, name: str) -> None:
        plog = backend.partition("data-0")
        for i in range(0, 60, 5):
            rids = [f"{name}{i + k}" for k in range(5)]
            got = await asyncio.gather(*(plog.append(LogWrite(r, r.encode())) for r in rids))
            acked.update((r, g.position) for r, g in zip(rids, got, strict=True))

    async def refresh_until_done(backend: JetStreamJournalBackend) -> int:
        calls = 0
        while not done.is_set():
            await backend.refresh()
            calls += 1
        return calls

    async def writers() -> None:
        await asyncio.gather(write(a, "a"), write(b, "b"))
        done.set()

    *_, calls_a, calls_b = await asyncio.gather(writers(), refresh_until_done(a), refresh_until_done(b))
    assert calls_a and calls_b
    for backend in (a, b):
        plog = backend.partition("data-0")
        assert await plog.refresh() == (120, max(p.hlc for p in acked.values()))
        entries = await plog.read(1, 120, max_entries=200, max_bytes=1 << 20)
        assert [e.offset for e in entries] == list(range(1, 121))
        assert all(x.hlc < y.hlc for x, y in itertools.pairwise(entries))
        assert [plog.hlc_at(e.offset) for e in entries] == [e.hlc for e in entries]
        assert {e.request_id: Position("data-0", e.offset, e.hlc) for e in entries} == acked
        assert all(backend.lookup(rid) == pos for rid, pos in acked.items())


async def test_appends_of_the_other_instance_follow_the_stream(
        pair: tuple[JetStreamJournalBackend, JetStreamJournalBackend]) -> None:
    a, b = pair
    by_a = await append_all(a, "data-0", [f"a{i}" for i in range(3)])
    # B has not read anything yet: its append is refused by the expected last sequence, catches up,
    # and is stamped after A's entries with an HLC above theirs.
    by_b = await append_all(b, "data-0", ["b0", "b1"])
    assert [p.offset for p in by_b] == [4, 5]
    assert by_a[-1].hlc < by_b[0].hlc < by_b[1].hlc
    # B refreshed and appends again after more of A's: still gapless and rising.
    by_a += await append_all(a, "data-0", ["a3"])
    assert await b.partition("data-0").refresh() == (6, by_a[-1].hlc)
    by_b += await append_all(b, "data-0", ["b2"])
    assert by_b[-1].offset == 7 and by_b[-1].hlc > by_a[-1].hlc
    # A retry of A's request id through B answers A's entry.
    again = await b.partition("data-0").append(LogWrite("a1", b"a1", (1,)))
    assert again.duplicate and again.position == by_a[1]
    # And A, which never saw B's entries, reads them.
    entries = await a.partition("data-0").read(1, 7, max_entries=100, max_bytes=1 << 20)
    assert [e.offset for e in entries] == list(range(1, 8))
    assert all(x.hlc < y.hlc for x, y in itertools.pairwise(entries))
    assert [e.request_id for e in entries] == ["a0", "a1", "a2", "b0", "b1", "a3", "b2"]


@pytest.mark.parametrize("ack", ["arrives", "is lost"])
async def test_a_refresh_that_indexes_a_batch_before_its_writer_hears_the_ack(
        pair: tuple[JetStreamJournalBackend, JetStreamJournalBackend], ack: str) -> None:
    """The writer answers its batch once, at its stored position, however the reader got there first."""
    a, _ = pair
    plog = a.partition("data-0")
    io = a._io
    assert io is not None
    publish = io.publish_batch
    raced: list[tuple[int, int]] = []

    async def publish_then_refresh(*args: Any, **kwargs: Any) -> int:
        last = await publish(*args, **kwargs)
        if not raced:  # once: the retry after a lost ack publishes for real
            raced.append(await plog.refresh())
            if ack == "is lost":
                raise TimeoutError("the ack of a stored batch did not come")
        return last

    io.publish_batch = publish_then_refresh  # type: ignore[method-assign]
    got = await asyncio.gather(*(plog.append(LogWrite(f"r{i}", b"r")) for i in range(4)))
    assert raced and raced[0][0] == 4
    assert sorted(g.position.offset for g in got) == [1, 2, 3, 4] and not any(g.duplicate for g in got)
    assert plog.head == raced[0]
    nxt = await plog.append(LogWrite("next", b"n"))
    assert nxt.position.offset == 5 and nxt.position.hlc > raced[0][1]
    entries = await plog.read(1, 5, max_entries=10, max_bytes=1 << 20)
    assert [e.request_id for e in entries] == [*(f"r{i}" for i in range(4)), "next"]
