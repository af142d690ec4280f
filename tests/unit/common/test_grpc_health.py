"""grpc.health.v1.Health of the Service shell follows its /readyz condition, in process.

A real ``grpc.aio`` server started by the shell (with its error interceptor) and a
real channel; the readiness is driven by the test: the shell's own transitions
(set_ready, a failed background task, shutdown) and a condition a subclass adds
to ``ready`` without telling the shell (as the journal does with its failed
partitions). The processes of every service kind are in
tests/integration/common/test_grpc_health_reflection.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.waits import until
from vecraft.shared.common.config import ServiceSettings
from vecraft.shared.common.grpc_health import (
    HEALTH_SERVICE_NAME,
    REFLECTION_SERVICE_NAME,
    WATCH_POLL_S,
    ReadinessHealth,
)
from vecraft.shared.common.service import Service

pytestmark = pytest.mark.unit

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


async def _echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


class Probe(Service):
    """Two services of its own; ready when the shell says so and ``partition_ok`` holds."""

    role = "probe"

    def __init__(self, settings: ServiceSettings, poll_s: float) -> None:
        super().__init__(settings)
        self.partition_ok = True
        self.health = ReadinessHealth(lambda: self.ready, poll_s=poll_s)

    def register(self, server: grpc.aio.Server) -> None:
        for name in ("vecraft.test.Alpha", "vecraft.test.Beta"):
            server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
                name, {"Echo": grpc.unary_unary_rpc_method_handler(_echo)}),))

    async def on_start(self) -> None:
        pass  # the test decides when it is ready

    @property
    def ready(self) -> bool:
        return super().ready and self.partition_ok


@pytest.fixture(params=[3600.0], ids=["no-poll"])
async def probe(request: pytest.FixtureRequest) -> AsyncIterator[Probe]:
    """By default a watch never polls: what it sees, the shell's events told it."""
    svc = Probe(ServiceSettings(host="127.0.0.1", grpc_port=0, http_port=0), poll_s=request.param)
    await svc.start()
    try:
        yield svc
    finally:
        await svc.shutdown(grace=1.0)


@pytest.fixture
async def health(probe: Probe) -> AsyncIterator[health_pb2_grpc.HealthStub]:
    async with grpc.aio.insecure_channel(probe.grpc_address) as channel:
        yield health_pb2_grpc.HealthStub(channel)


async def _check(stub: health_pb2_grpc.HealthStub, service: str = "") -> int:
    return int((await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)).status)


async def _readyz(svc: Service) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://{svc.http_address}/readyz")).status_code


def test_the_names_come_from_what_register_added(probe: Probe) -> None:
    assert probe.grpc_service_names == sorted([
        "vecraft.test.Alpha", "vecraft.test.Beta", HEALTH_SERVICE_NAME, REFLECTION_SERVICE_NAME])
    assert probe.health.service_names == {"", "vecraft.test.Alpha", "vecraft.test.Beta"}


async def test_check_answers_what_readyz_answers(probe: Probe, health: health_pb2_grpc.HealthStub) -> None:
    names = ["", "vecraft.test.Alpha", "vecraft.test.Beta"]
    assert [await _check(health, n) for n in names] == [NOT_SERVING] * 3
    assert await _readyz(probe) == 503
    probe.set_ready()
    assert [await _check(health, n) for n in names] == [SERVING] * 3
    assert await _readyz(probe) == 200
    # A condition the subclass adds to ready, without telling the shell: Check sees it at once.
    probe.partition_ok = False
    assert [await _check(health, n) for n in names] == [NOT_SERVING] * 3
    assert await _readyz(probe) == 503
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _check(health, "vecraft.test.Gamma")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_shells_transitions_reach_a_watch_without_polling(
        probe: Probe, health: health_pb2_grpc.HealthStub) -> None:
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert (await watch.read()).status == NOT_SERVING
    probe.set_ready()
    assert (await watch.read()).status == SERVING
    probe.set_ready(False)
    assert (await watch.read()).status == NOT_SERVING
    watch.cancel()


@pytest.mark.parametrize("probe", [WATCH_POLL_S], ids=["poll"], indirect=True)
async def test_watch_follows_readiness(probe: Probe, health: health_pb2_grpc.HealthStub) -> None:
    watch = health.Watch(health_pb2.HealthCheckRequest(service="vecraft.test.Alpha"), timeout=30)
    assert (await watch.read()).status == NOT_SERVING
    probe.set_ready()
    assert (await watch.read()).status == SERVING
    probe.partition_ok = False  # not announced: the watch notices by polling
    started = time.monotonic()
    assert (await watch.read()).status == NOT_SERVING
    assert time.monotonic() - started < WATCH_POLL_S + 2.0
    probe.partition_ok = True
    assert (await watch.read()).status == SERVING
    watch.cancel()


async def test_watch_of_an_unknown_name_says_service_unknown(health: health_pb2_grpc.HealthStub) -> None:
    watch = health.Watch(health_pb2.HealthCheckRequest(service="vecraft.test.Gamma"), timeout=30)
    assert (await watch.read()).status == SERVICE_UNKNOWN
    watch.cancel()


async def test_a_failed_background_task_is_not_serving(probe: Probe,
                                                       health: health_pb2_grpc.HealthStub) -> None:
    probe.set_ready()
    watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=30)
    assert (await watch.read()).status == SERVING

    async def dies() -> None:
        raise RuntimeError("boom")

    probe.spawn(dies(), "dies")
    assert (await watch.read()).status == NOT_SERVING
    await probe.wait_failed()


async def test_drain_sends_not_serving_and_ends_every_watch(probe: Probe,
                                                            health: health_pb2_grpc.HealthStub) -> None:
    probe.set_ready()
    watches = [health.Watch(health_pb2.HealthCheckRequest(service=name), timeout=30)
               for name in ("", "vecraft.test.Beta")]
    for watch in watches:
        assert (await watch.read()).status == SERVING
    started = time.monotonic()
    stopping = asyncio.create_task(probe.shutdown(grace=10.0))
    for watch in watches:
        assert (await watch.read()).status == NOT_SERVING
        assert await watch.read() is grpc.aio.EOF
        assert await watch.code() == grpc.StatusCode.OK
    await stopping
    # The open watches ended on their own: the graceful stop did not wait its 10 s for them.
    assert time.monotonic() - started < 5.0
    await until(lambda: probe.state.value == "stopped", timeout=5)
