"""A real child under the Supervisor whose background task dies is restarted.

This module is also the child: ``python -m tests.integration.cli.test_background_task_restart
--node-id N --data-dir D ...`` runs :class:`DyingService` through the real
``run_service``. On its first start (no marker file in its data directory) its
background task "follow:data-0" raises after a moment; later starts stay up.
With ``--hang-on-stop`` its drain never finishes, so only the supervisor's
liveness poll (``/healthz`` 503) gets it restarted.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import pytest

from tests.support.procs import free_port
from vecraft.local.supervisor import ChildState, RestartBackoff, Supervisor
from vecraft.local.topology import ClusterParams, ClusterPlan, ProcessSpec
from vecraft.shared.common.config import ServiceSettings, load_settings
from vecraft.shared.common.service import EXIT_BACKGROUND_TASK_FAILED, Service, run_service

pytestmark = pytest.mark.integration

MODULE = "tests.integration.cli.test_background_task_restart"
READY_TIMEOUT = 90.0  # two shared cores, other suites running: be generous


class DyingSettings(ServiceSettings):
    hang_on_stop: bool = False


class DyingService(Service):
    role = "dying"

    def __init__(self, settings: DyingSettings) -> None:
        super().__init__(settings)
        self.hang_on_stop = settings.hang_on_stop
        self.marker = settings.data_dir / "started-once"

    async def on_start(self) -> None:
        first = not self.marker.exists()
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.marker.touch()
        self.spawn(self._follow(die=first), "follow:data-0", forever=True)
        self.set_ready()

    async def _follow(self, *, die: bool) -> None:
        while True:
            await asyncio.sleep(0.5)
            if die:
                raise RuntimeError("the follower lost its journal for good")

    async def on_stop(self) -> None:
        if self.hang_on_stop and self.failure is not None:
            await asyncio.Event().wait()


def _plan(data_dir: Path, *extra: str) -> ClusterPlan:
    grpc_port, http_port = free_port(), free_port()
    child_dir = data_dir / "dying-0"
    spec = ProcessSpec(name="dying-0", role="dying", module=MODULE,
                       args=("--node-id", "dying-0", "--host", "127.0.0.1", "--grpc-port", str(grpc_port),
                             "--http-port", str(http_port), "--data-dir", str(child_dir), *extra),
                       host="127.0.0.1", grpc_port=grpc_port, http_port=http_port, data_dir=child_dir,
                       group=0)
    return ClusterPlan(data_dir=data_dir, params=ClusterParams(shards=1), processes=(spec,))


async def _until(predicate, timeout: float = READY_TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_a_dead_background_task_exits_the_child_and_the_supervisor_restarts_it(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    sup = Supervisor(plan, ready_timeout=READY_TIMEOUT, stop_grace=10,
                     backoff=RestartBackoff(initial=0.1, maximum=1.0, reset_after=60))
    await sup.start()
    try:
        child = sup.children["dying-0"]
        first_pid = child.pid
        await _until(lambda: child.restarts == 1 and child.state is ChildState.RUNNING)
        assert child.pid != first_pid
        assert child.last_exit == EXIT_BACKGROUND_TASK_FAILED
        log = plan.log_path("dying-0").read_text()
        assert "follow:data-0" in log and "the follower lost its journal for good" in log
        # The restarted child keeps running.
        await asyncio.sleep(1.5)
        assert child.restarts == 1 and child.state is ChildState.RUNNING
    finally:
        await sup.stop()


async def test_a_child_whose_drain_hangs_is_stopped_on_its_failed_liveness(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "--hang-on-stop")
    sup = Supervisor(plan, ready_timeout=READY_TIMEOUT, stop_grace=2,
                     backoff=RestartBackoff(initial=0.1, maximum=1.0, reset_after=60),
                     health_interval=0.2, unhealthy_grace=1.0)
    await sup.start()
    try:
        child = sup.children["dying-0"]
        # Well before the child's own forced exit (30 s): the supervisor stopped it.
        await _until(lambda: child.restarts == 1 and child.state is ChildState.RUNNING, timeout=25)
        # SIGTERM only asks for the drain that hangs; SIGKILL after stop_grace ended it.
        assert child.last_exit == -signal.SIGKILL
    finally:
        await sup.stop()


def main(argv: list[str] | None = None) -> None:
    run_service(DyingService(load_settings(DyingSettings, argv, section="dying")))


if __name__ == "__main__":
    main(sys.argv[1:])
