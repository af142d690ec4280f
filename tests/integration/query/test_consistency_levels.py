"""The four consistency levels against a real journal and a real query processor whose push
stream lags 1000 ms behind the journal (``--apply-delay-ms 1000``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import numpy as np
import orjson
import pytest

from tests.integration.query.conftest import Collection, QueryClient, Writer
from vecraft.shared.model.consistency import ConsistencyLevel as L

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

DIM = 8
DELAY_S = 1.0
DELAY = ["--apply-delay-ms", str(int(DELAY_S * 1000))]
#: Generous deadline of a wait on a condition (the machine is shared).
WAIT_S = 60.0


def vec(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(DIM).astype(np.float32)


def seq_filter(seq: int) -> str:
    # A one-record filter: the exact-scan planner answers it, so "found" never depends on recall.
    return orjson.dumps({"seq": seq}).decode()


class BackgroundWriter:
    """Appends one record every ``interval_s``; remembers when each write was acknowledged."""

    def __init__(self, writer: Writer, coll: Collection, *, start_seq: int, interval_s: float = 0.01) -> None:
        self.writer, self.coll, self.seq, self.interval_s = writer, coll, start_seq, interval_s
        self.acked: list[tuple[float, int, int]] = []  # (monotonic ack time, seq, offset)
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.seq += 1
            resp = await self.writer.write(self.coll, [f"bg{self.seq}"], vec(self.seq)[None, :],
                                           [orjson.dumps({"seq": self.seq}).decode()])
            self.acked.append((time.monotonic(), self.seq, resp.offset))
            await asyncio.sleep(self.interval_s)

    def acked_before(self, t: float) -> int:
        """Highest offset acknowledged before monotonic time ``t`` (0 if none)."""
        return max((off for at, _, off in self.acked if at < t), default=0)

    async def __aenter__(self) -> BackgroundWriter:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


async def until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached in {WAIT_S:g}s"
        await asyncio.sleep(0.02)


async def seeded(writer: Writer, name: str) -> Collection:
    coll = await writer.create(name, DIM)
    await writer.write(coll, [f"s{i}" for i in range(20)], np.stack([vec(10_000 + i) for i in range(20)]),
                       [orjson.dumps({"seq": -1 - i}).decode() for i in range(20)])
    return coll


async def test_eventual_is_stale_then_converges(start_query, writer, connect) -> None:
    qp = start_query(*DELAY)
    client: QueryClient = connect(qp)
    coll = await seeded(writer, "ev")
    await client.search("ev", vec(0), level=L.STRONG)  # cache knows the collection
    # The tail holds an entry back until its commit time (after the write was sent) + the delay,
    # so a read that ends sooner than the delay after the write was sent cannot have it. A machine
    # too busy to fit a write and a read into that window tries again with the next write.
    for seq in range(1, 21):
        sent = time.monotonic()
        ack = await writer.write(coll, [f"new{seq}"], vec(seq)[None, :],
                                 [orjson.dumps({"seq": seq}).decode()])
        resp = await client.search("ev", vec(seq), k=5, level=L.EVENTUAL, filter_json=seq_filter(seq))
        if time.monotonic() - sent < DELAY_S * 0.9:
            break
        log.info("write + eventual read took %.2fs, longer than the apply delay; again",
                 time.monotonic() - sent)
    else:
        pytest.fail(f"no write and eventual read fitted into the {DELAY_S:g}s apply delay in 20 tries")
    info = resp.consistency_info
    assert [r.id for r in resp.results] == []
    assert info.level_requested == info.level_achieved == L.EVENTUAL
    assert info.staleness_ms > 0
    assert info.cache_hit and not info.sync_performed
    assert info.index_version_used < ack.offset

    deadline = time.monotonic() + WAIT_S
    while True:
        resp = await client.search("ev", vec(seq), k=5, level=L.EVENTUAL, filter_json=seq_filter(seq))
        if resp.results:
            break
        assert time.monotonic() < deadline, "eventual read never converged"
        await asyncio.sleep(0.1)
    log.info("eventual converged after %.2fs (apply delay %.1fs)", time.monotonic() - sent, DELAY_S)
    assert resp.results[0].id == f"new{seq}"
    assert resp.consistency_info.index_version_used >= ack.offset
    assert not resp.consistency_info.sync_performed


async def test_strong_sees_every_acknowledged_write(start_query, writer, connect) -> None:
    qp = start_query(*DELAY)
    client: QueryClient = connect(qp)
    coll = await seeded(writer, "st")
    latencies = []
    async with BackgroundWriter(writer, coll, start_seq=100_000) as bg:
        for trial in range(60):
            sent = time.monotonic()
            ack = await writer.write(coll, [f"t{trial}"], vec(trial)[None, :],
                                     [orjson.dumps({"seq": trial}).decode()])
            begun = time.monotonic()
            required = max(ack.offset, bg.acked_before(begun))
            resp = await client.search("st", vec(trial), k=3, level=L.STRONG, filter_json=seq_filter(trial))
            latencies.append(time.monotonic() - begun)
            info = resp.consistency_info
            assert [r.id for r in resp.results] == [f"t{trial}"], f"trial {trial} missed its write"
            assert info.index_version_used >= required
            assert info.level_achieved == L.STRONG and info.cache_hit
            if time.monotonic() - sent < DELAY_S * 0.9:
                # The write was sent less than the delay ago, so the delayed tail cannot have
                # applied it (it holds an entry until its commit time + the delay): a pull did.
                assert info.sync_performed
    log.info("strong p50 %.1f ms, max %.1f ms over %d trials with a concurrent writer",
             1000 * float(np.median(latencies)), 1000 * max(latencies), len(latencies))


async def test_read_your_writes(start_query, writer, connect) -> None:
    qp = start_query(*DELAY)
    client: QueryClient = connect(qp)
    coll = await seeded(writer, "ryw")
    for i in range(10):
        ack = await writer.write(coll, [f"mine{i}"], vec(i)[None, :], [orjson.dumps({"seq": i}).decode()])
        resp = await client.search("ryw", vec(i), k=3, level=L.READ_YOUR_WRITES, min_offset=ack.offset,
                                   filter_json=seq_filter(i))
        assert [r.id for r in resp.results] == [f"mine{i}"]
        info = resp.consistency_info
        assert info.level_achieved == L.READ_YOUR_WRITES
        assert info.index_version_used >= ack.offset and info.sync_performed
    # An offset the cache has reached needs no sync.
    resp = await client.search("ryw", vec(0), level=L.READ_YOUR_WRITES, min_offset=1)
    assert not resp.consistency_info.sync_performed


async def test_bounded_staleness(start_query, writer, connect) -> None:
    qp = start_query(*DELAY)
    client: QueryClient = connect(qp)
    coll = await seeded(writer, "bd")
    await client.search("bd", vec(0), level=L.STRONG)
    synced = 0
    async with BackgroundWriter(writer, coll, start_seq=0, interval_s=0.02) as bg:
        # Reads below owe every write acknowledged > 200 ms before them: have some first.
        await until(lambda: len(bg.acked) >= 10 and bg.acked[0][0] < time.monotonic() - 0.3,
                    "ten acknowledged background writes")
        for _ in range(40):
            begun = time.monotonic()
            required = bg.acked_before(begun - 0.2)
            resp = await client.search("bd", vec(0), level=L.BOUNDED_STALENESS, max_staleness_ms=200)
            info = resp.consistency_info
            assert info.level_achieved == L.BOUNDED_STALENESS
            assert info.max_allowed_staleness_ms == 200
            assert info.staleness_ms <= 200
            assert info.index_version_used >= required, "missed a write acknowledged > 200 ms earlier"
            synced += info.sync_performed
            await asyncio.sleep(0.03)
        # A bound far wider than the 1 s lag is met by the cache as it is.
        begun = time.monotonic()
        required = bg.acked_before(begun - 20.0)
        resp = await client.search("bd", vec(0), level=L.BOUNDED_STALENESS, max_staleness_ms=20_000)
        info = resp.consistency_info
        assert not info.sync_performed and info.staleness_ms <= 20_000
        assert info.index_version_used >= required
    # The cache lags 1 s, so a 200 ms bound needed pulls.
    assert synced > 0
    # 0 means the default bound of 1000 ms.
    resp = await client.search("bd", vec(0), level=L.BOUNDED_STALENESS)
    assert resp.consistency_info.max_allowed_staleness_ms == 1000
    assert resp.consistency_info.staleness_ms <= 1000
