"""The four consistency levels end to end, through a real ``vecraft up`` cluster (3 shards) whose
push path lags 3 s behind the journal (``--apply-delay-ms 3000``).

Every write is made with ``ack=journal``: it is answered as soon as it is durable, so the query
processors' caches really lag behind it. Each write is recorded with its acknowledgement time and
journal offset (:class:`~tests.support.e2e.Ledger`), and a background writer keeps appending other
records while the trials run. Every search answer's headers are checked against its
``consistency_info``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.support.cluster import LocalCluster
from tests.support.e2e import Ack, Ledger, checked_info, vec, write

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
log = logging.getLogger(__name__)

#: Push-path lag. Far above a write + search round trip even on a loaded machine: the eventual
#: control below must see fresh writes missing, which a 500 ms lag did not guarantee.
APPLY_DELAY_MS = 3000
DIM = 8
COLL = "e2e"
#: Concurrent trial workers (each writes, then searches) next to the background writer.
WORKERS = 4
#: Deadline of every HTTP call: far above any answer, only there so a hang fails the test.
HTTP_TIMEOUT_S = 30.0

_seeds = itertools.count(1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("e2e-consistency") / "data"
    running = LocalCluster(data_dir, shards=3, apply_delay_ms=APPLY_DELAY_MS).start()
    try:
        r = httpx.post(f"{running.endpoint}/v1/collections", json={"name": COLL, "dim": DIM, "metric": "l2"},
                       timeout=HTTP_TIMEOUT_S)
        assert r.status_code == 201, r.text
        # An eventual read never syncs, so a processor that has not applied the DDL yet answers it
        # NotFound: a strong search (every shard) first brings each one to the journal head, so no
        # test depends on another having run before it.
        r = httpx.post(f"{running.endpoint}/v1/vectors/search", timeout=HTTP_TIMEOUT_S, json={
            "collection": COLL, "vector": vec(0, DIM), "k": 1, "consistency_level": "strong"})
        assert r.status_code == 200, r.text
        yield running
    finally:
        assert running.stop() == 0, running.tail()


@pytest.fixture
async def client(cluster: LocalCluster) -> AsyncIterator[httpx.AsyncClient]:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns failures
    limits = httpx.Limits(max_connections=WORKERS + 4)
    async with httpx.AsyncClient(base_url=cluster.endpoint, timeout=HTTP_TIMEOUT_S, limits=limits) as c:
        yield c


@contextlib.asynccontextmanager
async def background_writer(client: httpx.AsyncClient, ledger: Ledger, prefix: str,
                            interval_s: float = 0.005) -> AsyncIterator[None]:
    """Append ``prefix-N`` records (ack=journal) into ``ledger`` until the block ends."""

    async def run() -> None:
        for n in itertools.count():
            await write(client, ledger, COLL, f"{prefix}-{n}", vec(next(_seeds), DIM))
            await asyncio.sleep(interval_s)

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def search(client: httpx.AsyncClient, level: str, ids: list[str], vector: list[float], *,
                 headers: dict[str, str] | None = None, **extra: Any) -> tuple[set[str], dict[str, Any]]:
    """Search with a filter that leaves exactly ``ids`` as candidates (an exact scan), k = len(ids).

    Returns the ids found and the header-checked ``consistency_info``.
    """
    body = {"collection": COLL, "vector": vector, "k": len(ids), "consistency_level": level,
            "filters": {"tag": {"$in": ids}}, **extra}
    resp = await client.post("/v1/vectors/search", json=body, headers=headers)
    info = checked_info(resp)
    return {hit["id"] for hit in resp.json()["results"]}, info


async def test_strong_sees_every_write_acknowledged_before_the_search(client: httpx.AsyncClient) -> None:
    """STRONG: in 100% of 240 trials (4 concurrent writer/searchers + a background writer) the
    search finds the trial's own write and the latest background write acknowledged before it
    began, reports an index version >= every offset acknowledged before it began, and achieves
    strong. Searches that ended before the slowed push could deliver their write were answered
    from a cache that a pull brought forward (this search's own, or a concurrent one's: single
    flight), so some of them report ``sync_performed``."""
    ledger = Ledger()
    trials_per_worker = 60
    fast = synced = 0

    async def worker(w: int) -> None:
        nonlocal fast, synced
        for t in range(trials_per_worker):
            record_id = f"strong-{w}-{t}"
            vector = vec(next(_seeds), DIM)
            own, _ = await write(client, ledger, COLL, record_id, vector)
            began = time.monotonic()
            before = ledger.acked_before(began)
            latest_bg = next((a for a in reversed(before) if a.id.startswith("bg-strong")), None)
            wanted = [record_id] + ([latest_bg.id] if latest_bg else [])
            found, info = await search(client, "strong", wanted, vector)
            ended = time.monotonic()
            assert found == set(wanted), f"{record_id}: strong search missed {set(wanted) - found}"
            assert info["level_requested"] == info["level_achieved"] == "strong"
            assert info["index_version"] >= max(own.offset, ledger.max_offset_before(began)), info
            assert info["max_allowed_staleness_ms"] == 0
            if ended - own.sent_at < 0.9 * APPLY_DELAY_MS / 1000:
                fast += 1
                synced += info["sync_performed"]

    async with background_writer(client, ledger, "bg-strong"):
        await asyncio.gather(*(worker(w) for w in range(WORKERS)))
    trials = WORKERS * trials_per_worker
    bg = sum(a.id.startswith("bg-") for a in ledger.acks)
    log.info("strong: %d/%d trials passed; %d answered before the push could deliver, %d of them "
             "synced themselves; %d background writes", trials, trials, fast, synced, bg)
    assert bg > 0
    # Only a pull can explain an answer that beat the push; with none, the lag was not real.
    assert fast == 0 or synced > 0


async def test_a_session_sees_its_own_writes(client: httpx.AsyncClient) -> None:
    """READ_YOUR_WRITES: 4 sessions x 50 trials, with a background writer; after each write the
    session's search (carrying its token) finds every record the session has written so far and
    reports an index version >= the session's latest offset."""
    ledger = Ledger()
    trials_per_session = 50

    async def session(s: int) -> None:
        token: str | None = None
        mine: list[Ack] = []
        for t in range(trials_per_session):
            vector = vec(next(_seeds), DIM)
            ack, answer = await write(client, ledger, COLL, f"ryw-{s}-{t}", vector, session_token=token)
            token = answer["session_token"]
            mine.append(ack)
            found, info = await search(client, "read_your_writes", [a.id for a in mine], vector,
                                       headers={"X-Session-Token": token})
            own = {a.id for a in mine}
            assert found == own, f"session {s} trial {t} missed {own - found}"
            assert info["level_requested"] == info["level_achieved"] == "read_your_writes"
            assert info["index_version"] >= ack.offset, info

    async with background_writer(client, ledger, "bg-ryw"):
        await asyncio.gather(*(session(s) for s in range(WORKERS)))


@pytest.mark.parametrize("bound_ms", [200, 5000])
async def test_bounded_sees_writes_older_than_its_bound(client: httpx.AsyncClient, bound_ms: int) -> None:
    """BOUNDED(ms): in every one of 120 trials, while a background writer appends, the search finds
    the latest 20 writes acknowledged more than ``ms`` before it began, reports an index version >=
    every such offset and ``staleness_ms <= ms``. With ms=200 < lag, answers need syncs; with
    ms=5000 > lag the cache alone may serve them (counts are logged)."""
    ledger = Ledger()
    synced = checked = beat_push = 0

    async def worker() -> None:
        nonlocal synced, checked, beat_push
        for _ in range(30):
            began = time.monotonic()
            due = ledger.acked_before(began - bound_ms / 1000)
            if not due:
                await asyncio.sleep(0.05)
                continue
            wanted = [a.id for a in due[-20:]]
            found, info = await search(client, "bounded", wanted, vec(next(_seeds), DIM),
                                       max_staleness_ms=bound_ms)
            assert found == set(wanted), f"bounded({bound_ms}) missed {set(wanted) - found}"
            assert info["level_requested"] == info["level_achieved"] == "bounded"
            assert info["max_allowed_staleness_ms"] == bound_ms
            assert info["staleness_ms"] <= bound_ms, info
            assert info["index_version"] >= max(a.offset for a in due), info
            synced += info["sync_performed"]
            checked += 1
            # Trials that required a write the slowed push could not have delivered yet.
            beat_push += time.monotonic() - due[-1].sent_at < APPLY_DELAY_MS / 1000
            await asyncio.sleep(0.02)

    async with background_writer(client, ledger, f"bg-bounded{bound_ms}"):
        # Let writes older than the bound accumulate, so every trial has something to check.
        while not ledger.acked_before(time.monotonic() - bound_ms / 1000 - 0.1):
            await asyncio.sleep(0.05)
        await asyncio.gather(*(worker() for _ in range(WORKERS)))
    log.info("bounded(%d ms): %d trials checked, %d required a write the push had not delivered, "
             "%d met the bound by syncing", bound_ms, checked, beat_push, synced)
    assert checked == WORKERS * 30


async def test_eventual_misses_fresh_writes_then_converges(client: httpx.AsyncClient) -> None:
    """EVENTUAL is the control that shows the checks above are not vacuous: right after their
    acknowledgement some fresh writes are missing (reported with ``staleness_ms > 0`` and no sync),
    and after the apply delay every one of them becomes visible without a sync."""
    acks: list[Ack] = []
    missing = 0
    for n in range(40):
        vector = vec(next(_seeds), DIM)
        ack, _ = await write(client, None, COLL, f"eventual-{n}", vector)
        acks.append(ack)
        found, info = await search(client, "eventual", [ack.id], vector)
        assert info["level_requested"] == info["level_achieved"] == "eventual"
        assert not info["sync_performed"] and info["max_allowed_staleness_ms"] is None
        if not found:
            missing += 1
            assert info["staleness_ms"] > 0 and info["index_version"] < ack.offset, info
    log.info("eventual: %d of %d writes missing right after their ack", missing, len(acks))
    assert missing > 0, "the push path does not lag: the consistency checks of this module prove nothing"

    await asyncio.sleep(APPLY_DELAY_MS / 1000)
    deadline = time.monotonic() + 30
    ids = [a.id for a in acks]
    while True:
        found, info = await search(client, "eventual", ids, vec(0, DIM))
        assert not info["sync_performed"]
        if found == set(ids):
            break
        assert time.monotonic() < deadline, f"eventual never converged; still missing {set(ids) - found}"
        await asyncio.sleep(0.1)
    assert info["index_version"] >= max(a.offset for a in acks)
