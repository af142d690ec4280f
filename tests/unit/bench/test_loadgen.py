"""The open-loop scheduler: fixed arrival times, latency from the due time, no hidden queueing."""

from __future__ import annotations

import asyncio
import itertools

import numpy as np
import pytest

from vecraft.bench._loadgen import CLIENT_OVERLOAD, Reply, run_open_loop

pytestmark = pytest.mark.unit


async def test_sends_on_schedule_and_counts_every_request() -> None:
    # Each answer takes 10 schedule intervals: a client that waited for answers would send 10x slower.
    async def send(i: int) -> Reply:
        await asyncio.sleep(0.05)
        return Reply(ok=True, status=200, info={"i": i})

    result = await run_open_loop(send, rate=200, duration_s=0.5)
    assert len(result.outcomes) == 100
    assert [o.index for o in result.outcomes] == list(range(100))
    assert [o.reply.info["i"] for o in result.outcomes] == list(range(100))
    dues = np.array([o.due for o in result.outcomes])
    assert np.allclose(np.diff(dues), 1 / 200)
    # No request leaves before its due time (how late it leaves is event-loop jitter: a benchmark's
    # business, not a unit test's on a shared machine).
    assert all(o.sent >= o.due - 1e-3 for o in result.outcomes)
    # Open loop: requests leave while earlier answers are still outstanding.
    assert any(later.sent < earlier.done for earlier, later in itertools.pairwise(result.outcomes))
    # Latency counts from the due time, so it includes the whole answer (wide margin below 50 ms).
    assert all(o.latency_ms >= 40.0 for o in result.outcomes)
    assert result.errors == {}
    # The last answer comes no sooner than the last due time plus one answer's time.
    assert result.wall_s >= dues[-1] + 0.04
    assert result.achieved_qps == pytest.approx(100 / result.wall_s) and result.achieved_qps <= 200


async def test_queueing_behind_a_slow_server_is_counted_from_the_due_time() -> None:
    # The "server" handles one request at a time in 20 ms (capacity 50/s) but
    # requests arrive at 100/s: a closed-loop client would report ~20 ms; the
    # open-loop latency grows with the queue.
    lock = asyncio.Lock()

    async def send(i: int) -> Reply:
        async with lock:
            await asyncio.sleep(0.02)
        return Reply(ok=True)

    result = await run_open_loop(send, rate=100, duration_s=0.4)
    assert len(result.outcomes) == 40
    # Request k is due at 10k ms and answered after the k + 1 services before it ended (>= 20 ms
    # each, one at a time): its latency from the due time is at least 20 + 10k ms, however fast or
    # slow the machine (1 ms slack for timer rounding). A closed loop would report ~20 ms for all.
    for k, o in enumerate(result.outcomes):
        assert o.latency_ms >= 20 + 10 * k - 1, (k, o.latency_ms)
    assert result.outcomes[-1].latency_ms > 400  # the 40th waits behind 39 others
    # Requests did not wait for earlier answers to leave (open loop).
    assert any(later.sent < earlier.done for earlier, later in itertools.pairwise(result.outcomes))


async def test_failures_are_counted_by_name() -> None:
    async def send(i: int) -> Reply:
        if i % 4 == 0:
            raise ConnectionError("boom")
        if i % 4 == 1:
            return Reply(ok=False, status=429, error="http-429")
        return Reply(ok=True)

    result = await run_open_loop(send, rate=400, duration_s=0.1)
    assert result.errors == {"ConnectionError": 10, "http-429": 10}
    assert len(result.ok) == 20


async def test_requests_beyond_max_in_flight_are_errors_not_skipped() -> None:
    release = asyncio.Event()

    async def send(i: int) -> Reply:
        await release.wait()
        return Reply(ok=True)

    async def unblock() -> None:
        await asyncio.sleep(0.15)
        release.set()

    blocker = asyncio.create_task(unblock())
    result = await run_open_loop(send, rate=100, duration_s=0.1, max_in_flight=4)
    await blocker
    assert len(result.outcomes) == 10
    assert result.errors == {CLIENT_OVERLOAD: 6}


async def test_rejects_a_non_positive_rate() -> None:
    async def send(i: int) -> Reply:
        return Reply(ok=True)

    with pytest.raises(ValueError):
        await run_open_loop(send, rate=0, duration_s=1)
