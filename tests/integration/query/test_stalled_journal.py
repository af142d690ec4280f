"""A journal that stops answering (SIGSTOP: connections stay open, nothing replies).

A query processor's strong and bounded reads then fail with 504 within their
``timeout_ms`` and the processor stays up, answering eventual reads from its
cache; once the journal answers again, so do they. A processor that starts
while the journal is stopped waits, not ready, instead of dying: on main its
warm-up gave up on the first head read that missed its deadline, which killed
the process.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest

from tests.integration.query.conftest import QueryClient, Writer
from tests.support.procs import ServiceProcess
from vecraft.shared.common.errors import DeadlineExceeded, Unavailable
from vecraft.shared.model.consistency import ConsistencyLevel as L

pytestmark = pytest.mark.integration
DIM = 4
#: Generous: the reads below have budgets of half a second; a hang would take minutes.
BOUND_S = 30.0


@pytest.fixture
def stop_journal(journal_proc: ServiceProcess) -> Iterator[Callable[[], None]]:
    """``stop_journal()`` SIGSTOPs the journal; it is always continued at teardown."""
    stopped: list[bool] = []

    def _stop() -> None:
        os.kill(journal_proc.pid, signal.SIGSTOP)
        stopped.append(True)

    yield _stop
    if stopped:
        os.kill(journal_proc.pid, signal.SIGCONT)


def _status(proc: ServiceProcess, probe: str) -> int:
    try:
        return httpx.get(f"http://{proc.http_address}/{probe}", timeout=5).status_code
    except httpx.HTTPError:
        return 0


def _wait(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


async def test_strong_and_bounded_reads_fail_within_their_budget_and_the_processor_stays_up(
        start_query: Callable[..., ServiceProcess], journal_proc: ServiceProcess, writer: Writer,
        connect: Callable[[ServiceProcess], QueryClient], stop_journal: Callable[[], None]) -> None:
    coll = await writer.create("stall", DIM)
    first = await writer.write(coll, ["a"], np.eye(DIM, dtype=np.float32)[:1])
    query = start_query()
    client = connect(query)
    resp = await client.search("stall", np.eye(DIM)[0], level=L.STRONG)
    assert [r.id for r in resp.results] == ["a"]

    stop_journal()
    for level, kw in ((L.STRONG, {}), (L.STRONG, {"min_offset": first.offset + 1}),
                      (L.BOUNDED_STALENESS, {"max_staleness_ms": 1})):
        began = time.monotonic()
        # A strong read past the applied offset cannot be met while nothing answers (504), or the
        # journal's refusal is reported as such (503): never an answer, never a hang.
        with pytest.raises((DeadlineExceeded, Unavailable)):
            await client.search("stall", np.eye(DIM)[0], level=level, timeout_ms=500, **kw)
        assert time.monotonic() - began < BOUND_S
    assert query.alive() and _status(query, "healthz") == 200
    resp = await client.search("stall", np.eye(DIM)[0], level=L.EVENTUAL, timeout_ms=500)
    assert [r.id for r in resp.results] == ["a"] and resp.consistency_info.staleness_ms > 0

    os.kill(journal_proc.pid, signal.SIGCONT)
    second = await writer.write(coll, ["b"], np.eye(DIM, dtype=np.float32)[1:2])
    resp = await client.search("stall", np.eye(DIM)[1], level=L.STRONG, timeout_ms=int(BOUND_S * 1000))
    assert resp.results[0].id == "b" and resp.consistency_info.index_version_used >= second.offset
    assert query.alive()


async def test_a_processor_started_against_a_stopped_journal_waits_not_ready_then_serves(
        start_query: Callable[..., ServiceProcess], journal_proc: ServiceProcess, writer: Writer,
        connect: Callable[[ServiceProcess], QueryClient], stop_journal: Callable[[], None]) -> None:
    coll = await writer.create("late", DIM)
    await writer.write(coll, ["a"], np.eye(DIM, dtype=np.float32)[:1])
    stop_journal()
    query = start_query(wait_ready=False)
    # Its warm-up's head read misses its deadline, and it retries instead of dying.
    _wait(lambda: not query.alive()
          or "warm-up of data-0 retries" in query.log_path.read_text(errors="replace"))
    assert query.alive(), query.tail()
    assert _status(query, "readyz") == 503
    os.kill(journal_proc.pid, signal.SIGCONT)
    query.wait_ready(BOUND_S * 2)
    resp = await connect(query).search("late", np.eye(DIM)[0], level=L.STRONG)
    assert [r.id for r in resp.results] == ["a"]
