"""A background task that dies takes readiness, liveness and the process with it (Service.spawn)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.support.waits import until
from vecraft.shared.common.config import ServiceSettings
from vecraft.shared.common.service import BackgroundTaskFailed, Service, ServiceState

pytestmark = pytest.mark.unit

FAILURES = "vecraft_background_task_failures_total"


class Tiny(Service):
    """Ready at once; its background task "worker" does what ``body`` says once ``trigger`` is set."""

    role = "tiny"

    def __init__(self, body: str, *, forever: bool = False) -> None:
        super().__init__(ServiceSettings(host="127.0.0.1", grpc_port=0, http_port=0))
        self.body = body
        self.forever = forever
        self.trigger = asyncio.Event()
        self.stopping = asyncio.Event()  # on_stop entered: the HTTP server still answers
        self.release = asyncio.Event()  # lets on_stop finish

    async def on_start(self) -> None:
        self.spawn(self._worker(), "worker", forever=self.forever)
        self.set_ready()

    async def _worker(self) -> None:
        await self.trigger.wait()
        if self.body == "raise":
            raise RuntimeError("disk on fire")
        if self.body == "hang":
            await asyncio.Event().wait()
        # "return": the loop ends

    async def on_stop(self) -> None:
        self.stopping.set()
        await self.release.wait()


def _failures(task: str = "worker") -> float:
    return REGISTRY.get_sample_value(FAILURES, {"service": "tiny", "task": task}) or 0.0


async def _until(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    await until(predicate, timeout)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # installed by Service.run()
        loop.remove_signal_handler(sig)


async def _started(svc: Tiny) -> asyncio.Task[None]:
    runner = asyncio.create_task(svc.run())
    await _until(lambda: svc.state is ServiceState.READY or runner.done())
    assert not runner.done()
    return runner


async def test_a_task_that_raises_fails_readiness_liveness_and_run(
        http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    svc = Tiny("raise")
    runner = await _started(svc)
    base = f"http://{svc.http_address}"
    assert (await http.get(f"{base}/readyz")).status_code == 200
    assert (await http.get(f"{base}/healthz")).status_code == 200
    before = _failures()

    with caplog.at_level(logging.ERROR, logger="vecraft.shared.common.service"):
        svc.trigger.set()
        await asyncio.wait_for(svc.stopping.wait(), 20)  # the failure started a drain

    assert not svc.ready and svc.failure is not None and svc.failure.task == "worker"
    ready = await http.get(f"{base}/readyz")
    assert ready.status_code == 503 and ready.json()["failed_task"] == "worker"
    health = await http.get(f"{base}/healthz")
    assert health.status_code == 503
    assert health.json()["status"] == "failed" and health.json()["failed_task"] == "worker"
    assert _failures() == before + 1
    assert any("worker" in r.getMessage() and r.exc_info is not None for r in caplog.records)

    svc.release.set()
    with pytest.raises(BackgroundTaskFailed, match="worker") as info:
        await asyncio.wait_for(runner, 30)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert svc.state is ServiceState.STOPPED


async def test_a_forever_task_that_returns_is_a_failure(http: httpx.AsyncClient) -> None:
    svc = Tiny("return", forever=True)
    runner = await _started(svc)
    before = _failures()
    svc.trigger.set()
    svc.release.set()
    with pytest.raises(BackgroundTaskFailed, match="meant to run until shutdown"):
        await asyncio.wait_for(runner, 30)
    assert _failures() == before + 1


async def test_a_step_that_returns_and_a_cancelled_task_are_not_failures(http: httpx.AsyncClient) -> None:
    svc = Tiny("return")
    runner = await _started(svc)
    before = _failures()
    svc.trigger.set()
    await asyncio.sleep(0.2)
    assert svc.ready and svc.failure is None
    assert (await http.get(f"http://{svc.http_address}/healthz")).status_code == 200

    hanging = Tiny("hang", forever=True)
    hanging_runner = await _started(hanging)
    hanging.trigger.set()
    for s in (svc, hanging):
        s.release.set()
        await s.shutdown()  # cancels the forever task: an ordinary stop
    await asyncio.wait_for(runner, 30)
    await asyncio.wait_for(hanging_runner, 30)
    assert svc.failure is None and hanging.failure is None
    assert _failures() == before


async def test_the_http_server_ending_on_its_own_is_a_failure(http: httpx.AsyncClient) -> None:
    svc = Tiny("hang")
    runner = await _started(svc)
    before = _failures("http")
    assert svc._http_server is not None
    svc._http_server.should_exit = True  # as if uvicorn stopped by itself: the probes are gone
    svc.release.set()
    with pytest.raises(BackgroundTaskFailed, match="'http'"):
        await asyncio.wait_for(runner, 30)
    assert _failures("http") == before + 1
