"""The open-loop scheduler: fixed arrival times, latency from the due time, no hidden queueing."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from vecraft.bench._loadgen import CLIENT_OVERLOAD, Reply, run_open_loop

pytestmark = pytest.mark.unit


async def test_sends_on_schedule_and_counts_every_request() -> None:
    async def send(i: int) -> Reply:
        await asyncio.sleep(0.005)
        return Reply(ok=True, status=200, info={"i": i})

    result = await run_open_loop(send, rate=200, duration_s=0.5)
    assert len(result.outcomes) == 100
    assert [o.index for o in result.outcomes] == list(range(100))
    assert [o.reply.info["i"] for o in result.outcomes] == list(range(100))
    dues = np.array([o.due for o in result.outcomes])
    assert np.allclose(np.diff(dues), 1 / 200)
    sent = np.array([o.sent for o in result.outcomes])
    # Requests leave close to their due time (event-loop jitter only).
    assert np.median(sent - dues) < 0.01
    assert all(o.latency_ms >= 5.0 for o in result.outcomes)
    assert result.errors == {}
    assert 150 < result.achieved_qps <= 205


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
    lat = sorted(o.latency_ms for o in result.outcomes)
    assert lat[-1] > 300  # the 40th request waits behind ~39 others: ~0.4 s
    # Relative bounds only: on a loaded machine every absolute number grows.
    assert lat[0] < lat[-1] / 3
    # The last request left close to its due time, so its latency is mostly queueing, not sending late.
    last = result.outcomes[-1]
    assert (last.sent - last.due) * 1000 < last.latency_ms / 2


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
