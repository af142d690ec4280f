"""The JournalBackend / PartitionLog contract, run against every backend: local files and JetStream.

Each test gets a fresh journal: a new directory (local) or a new stream prefix
on one shared single-server JetStream (jetstream, replicas=1). ``make``
called again builds a second backend over the same data, as a restarted
process would.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from vecraft.local.nats import NatsCluster
from vecraft.services.journal_service.wal import JournalBackend, LogWrite
from vecraft.services.journal_service.wal.local import LocalJournalBackend
from vecraft.services.journal_service.wal.request_ids import RequestIdRetention
from vecraft.shared.common.errors import ClockSkew, NotFound, Trimmed
from vecraft.shared.hlc import HybridLogicalClock, pack, physical_ms, wall_clock_ms
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.integration

PARTS = ["data-0", "txn", "system"]
Factory = Callable[..., JournalBackend]


@pytest.fixture(scope="module")
def nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    cluster = NatsCluster(tmp_path_factory.mktemp("nats"), size=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["local", pytest.param("jetstream", marks=pytest.mark.cluster)])
def make(request: pytest.FixtureRequest, tmp_path: Path) -> Factory:
    """``make(clock=None, **options)``: a new backend over this test's journal (same data on every
    call); ``options`` are the constructor options both backends take (request-id retention, wall clock),
    plus ``segment_bytes`` which only the local backend uses."""
    prefix = f"t{uuid.uuid4().hex[:12]}"

    def _make(clock: HybridLogicalClock | None = None, **options: Any) -> JournalBackend:
        clock = clock or HybridLogicalClock(max_clock_offset_ms=500)
        segment_bytes = options.pop("segment_bytes", None)  # local files only: how finely a trim can cut
        if request.param == "local":
            if segment_bytes:
                options["segment_bytes"] = segment_bytes
            return LocalJournalBackend(tmp_path / "wal", PARTS, clock=clock, **options)
        from vecraft.services.journal_service.wal.jetstream import JetStreamJournalBackend

        cluster: NatsCluster = request.getfixturevalue("nats")
        return JetStreamJournalBackend(cluster.urls, PARTS, clock=clock, replicas=1, stream_prefix=prefix,
                                       **options)

    return _make


async def opened(make: Factory, clock: HybridLogicalClock | None = None, **options: Any) -> JournalBackend:
    backend = make(clock, **options)
    await backend.open()
    return backend


async def read_all(b: JournalBackend, name: str = "data-0") -> list[journal_pb2.JournalEntry]:
    plog = b.partition(name)
    head = plog.head[0]
    out: list[journal_pb2.JournalEntry] = []
    while len(out) < head:
        out += await plog.read(len(out) + 1, head, max_entries=700, max_bytes=1 << 20)
    return out


async def test_concurrent_appends_are_gapless_ordered_and_readable(make: Factory) -> None:
    b = await opened(make)
    plog = b.partition("data-0")
    results = await asyncio.gather(*[plog.append(LogWrite(f"r{i}", f"p{i}".encode(), (i % 3, 7)))
                                     for i in range(300)])
    assert sorted(r.position.offset for r in results) == list(range(1, 301))
    assert not any(r.duplicate for r in results)
    entries = await read_all(b)
    assert [e.offset for e in entries] == list(range(1, 301))
    assert all(a.hlc < c.hlc for a, c in itertools.pairwise(entries))
    by_offset = {r.position.offset: (i, r.position.hlc) for i, r in enumerate(results)}
    for e in entries:
        i, hlc = by_offset[e.offset]
        want = (f"r{i}", f"p{i}".encode(), [i % 3, 7], hlc)
        assert (e.request_id, e.payload, list(e.shards), e.hlc) == want
    assert plog.head == (300, entries[-1].hlc)
    assert plog.hlc_at(5) == entries[4].hlc and plog.hlc_at(0) == 0 and plog.hlc_at(301) == 0
    assert plog.bytes_after(300) == 0 < plog.bytes_after(299) < plog.bytes_after(0)
    await b.close()


async def test_reads_return_a_bounded_prefix_and_wait_for_sees_new_entries(make: Factory) -> None:
    b = await opened(make)
    plog = b.partition("txn")
    for i in range(20):
        await plog.append(LogWrite("", bytes([i]) * 100))
    page = await plog.read(3, 20, max_entries=5, max_bytes=1 << 20)
    assert [e.offset for e in page] == [3, 4, 5, 6, 7]
    one = await plog.read(3, 20, max_entries=100, max_bytes=1)
    assert [e.offset for e in one] == [3]
    assert [e.payload for e in await plog.read(20, 20, max_entries=1, max_bytes=0)] == [bytes([19]) * 100]
    assert not await plog.wait_for(21, 0.05)
    waiter = asyncio.ensure_future(plog.wait_for(21, 30))
    await plog.append(LogWrite("", b"late"))
    assert await waiter
    await b.close()


async def test_request_ids_are_idempotent_across_partitions_races_and_restarts(make: Factory) -> None:
    b = await opened(make)
    first, racing = await asyncio.gather(b.partition("data-0").append(LogWrite("same", b"a")),
                                         b.partition("data-0").append(LogWrite("same", b"a")))
    assert first.position == racing.position and {first.duplicate, racing.duplicate} == {False, True}
    again = await b.partition("txn").append(LogWrite("same", b"other"))
    assert again.duplicate and again.position == first.position
    odd = await b.partition("system").append(LogWrite("ünïcode id\nwith a newline", b"x"))
    await b.close()
    b2 = await opened(make)
    after = await b2.partition("data-0").append(LogWrite("same", b"a"))
    assert after.duplicate and after.position == first.position
    assert b2.partition("data-0").head[0] == 1 and b2.partition("txn").head[0] == 0
    assert b2.lookup("same") == first.position
    assert b2.lookup("ünïcode id\nwith a newline") == odd.position
    assert (await b2.partition("system").read(1, 1, max_entries=1, max_bytes=0))[0].request_id == \
        "ünïcode id\nwith a newline"
    assert b2.lookup("never") is None
    await b2.close()


async def test_hlc_is_above_client_hlc_and_far_ahead_clients_are_refused(make: Factory) -> None:
    b = await opened(make)
    plog = b.partition("system")
    ahead = pack(wall_clock_ms() + 200, 5)
    got = await plog.append(LogWrite("h1", b"x", (), ahead))
    assert got.position.hlc > ahead
    with pytest.raises(ClockSkew):
        await plog.append(LogWrite("h2", b"x", (), pack(wall_clock_ms() + 60_000, 0)))
    assert plog.head[0] == 1  # the refused write took no offset
    assert (await plog.append(LogWrite("h2", b"x"))).position.offset == 2
    await b.close()


async def test_restart_keeps_every_entry_and_the_hlc_floor(make: Factory) -> None:
    # Entries written by a clock 10 s ahead; the restarted journal's clock (no persisted state)
    # must still stamp above them.
    fast = HybridLogicalClock(wall_clock=lambda: wall_clock_ms() + 10_000)
    b = await opened(make, fast)
    plog = b.partition("data-0")
    for i in range(50):
        await plog.append(LogWrite(f"r{i}", bytes(range(256)) * 4, (i % 2,)))
    before = await read_all(b)
    await b.close()
    b2 = await opened(make, HybridLogicalClock())
    assert [(e.offset, e.hlc, e.payload, list(e.shards), e.request_id) for e in await read_all(b2)] == \
        [(e.offset, e.hlc, e.payload, list(e.shards), e.request_id) for e in before]
    nxt = await b2.partition("data-0").append(LogWrite("next", b"n"))
    assert nxt.position.offset == 51 and nxt.position.hlc > before[-1].hlc
    assert physical_ms(nxt.position.hlc) >= physical_ms(before[-1].hlc)
    await b2.close()


async def test_unknown_partition_names_the_known_ones(make: Factory) -> None:
    b = await opened(make)
    with pytest.raises(NotFound, match="data-0, txn, system"):
        b.partition("data-9")
    assert b.partitions() == PARTS
    await b.close()
    await b.close()  # idempotent



async def test_the_idempotency_window_bounds_request_ids_and_is_rebuilt_on_start(make: Factory) -> None:
    """Ids are forgotten oldest first past the count or the age (the wall clock is injected and the
    HLC follows it); a restart rebuilds only the ids inside the window, the newest across partitions."""
    t0 = 1_750_000_000_000
    now = [t0]

    def reopen() -> Awaitable[JournalBackend]:
        clock = HybridLogicalClock(max_clock_offset_ms=500, wall_clock=lambda: now[0])
        return opened(make, clock, request_id_retention=RequestIdRetention(count=3, seconds=60),
                      wall_clock=lambda: now[0])

    b = await reopen()
    written = {}
    for rid, partition, at_s in [("ancient", "txn", 0), ("s-1", "system", 70), ("d-2", "data-0", 71),
                                 ("s-3", "system", 72), ("d-4", "data-0", 73)]:
        now[0] = t0 + at_s * 1000
        written[rid] = (await b.partition(partition).append(LogWrite(rid, rid.encode()))).position
    # At most 3 ids: the oldest are forgotten first; the newest are still duplicates.
    assert [rid for rid in written if b.lookup(rid) is not None] == ["d-2", "s-3", "d-4"]
    again = await b.partition("data-0").append(LogWrite("d-4", b"d-4"))
    assert again.duplicate and again.position == written["d-4"]
    await b.close()

    # Restarted 75 s after "ancient": rebuilt from the entries inside 60 s, newest 3 across partitions.
    now[0] = t0 + 75_000
    b2 = await reopen()
    assert [rid for rid in written if b2.lookup(rid) is not None] == ["d-2", "s-3", "d-4"]
    assert (await b2.partition("system").append(LogWrite("s-3", b"s-3"))).position == written["s-3"]
    fresh = await b2.partition("system").append(LogWrite("s-1", b"s-1"))  # forgotten: a new write
    assert not fresh.duplicate and fresh.position.offset == 3
    # 60 s after an entry was written its id is forgotten: d-2 (71 s) is, s-3 (72 s) not yet.
    now[0] = t0 + 131_001
    assert b2.lookup("d-2") is None and b2.lookup("s-3") == written["s-3"]
    await b2.close()

    # Restarted after the whole window: nothing older than it is remembered.
    now[0] = t0 + 200_000
    b3 = await reopen()
    assert all(b3.lookup(rid) is None for rid in written)
    await b3.close()


async def test_trim_removes_a_prefix_that_stays_removed_and_keeps_the_rest(make: Factory) -> None:
    b = await opened(make, segment_bytes=2048)
    plog = b.partition("data-0")
    for i in range(200):
        await plog.append(LogWrite(f"t{i}", b"x" * 40))
    before = await read_all(b)
    head = plog.head
    done = await plog.trim(150)
    first = done.first_offset
    # Whole files (local) or exactly (JetStream): never past what was asked, and something went.
    assert 100 < first <= 150 and plog.first_offset == first
    assert done.entries == first - 1 and done.bytes > 0
    assert plog.head == head
    kept = await plog.read(first, head[0], max_entries=1000, max_bytes=1 << 20)
    def shape(entries: list[journal_pb2.JournalEntry]) -> list[tuple[int, int, bytes]]:
        return [(e.offset, e.hlc, e.payload) for e in entries]

    assert shape(kept) == shape(before[first - 1:])
    with pytest.raises(Trimmed, match="trimmed"):
        await plog.read(first - 1, head[0], max_entries=10, max_bytes=1 << 20)
    assert plog.hlc_at(first - 1) == 0 and plog.hlc_at(first) == before[first - 1].hlc
    assert plog.bytes_after(first - 1) == plog.bytes_after(0) > plog.bytes_after(first) > 0
    # A trim below the first offset changes nothing; one past the head keeps the head entry.
    assert (await plog.trim(first - 5)).entries == 0
    await b.close()

    again = await opened(make, segment_bytes=2048)
    plog = again.partition("data-0")
    assert plog.first_offset == first and plog.head == head
    appended = await plog.append(LogWrite("after-trim", b"y"))
    assert appended.position.offset == head[0] + 1
    last = await plog.trim(10_000)
    assert plog.first_offset == last.first_offset <= head[0] + 1
    assert (await plog.read(plog.head[0], plog.head[0], max_entries=1, max_bytes=1 << 20))[0].payload == b"y"
    await again.close()
