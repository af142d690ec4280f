"""The supervisor with real child processes: start order, skip, restart after kill -9, stop."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.cli.fake_cluster import FAKE_MODULE
from tests.support.procs import free_port
from vecraft.local import topology
from vecraft.local.supervisor import (
    ChildState,
    ClusterBusy,
    RestartBackoff,
    StartupError,
    Supervisor,
    read_status,
)

pytestmark = pytest.mark.integration

READY_TIMEOUT = 90.0  # two shared cores, other suites running: be generous


def _plan(data_dir: Path, *, missing: tuple[str, ...] = ()) -> topology.ClusterPlan:
    modules = {role: FAKE_MODULE for role in topology.ROLE_MODULES}
    modules.update({role: "tests.integration.cli.no_such_service" for role in missing})
    # The stand-in is a process of its own: the distributed layout.
    return topology.prepare_plan(data_dir, {"shards": 1, "http_port": free_port(),
                                            "grpc_port": free_port(), "distributed": True}, modules=modules)


async def _until(predicate, timeout: float = READY_TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def test_start_skip_restart_and_stop(tmp_path: Path) -> None:
    plan = _plan(tmp_path, missing=("gateway",))
    sup = Supervisor(plan, ready_timeout=READY_TIMEOUT, stop_grace=10,
                     backoff=RestartBackoff(initial=0.1, maximum=1.0, reset_after=60))
    await sup.start()
    try:
        assert sup.children["gateway"].state is ChildState.SKIPPED
        running = sup.running()
        assert [c.spec.name for c in running] == ["journal", "meta", "storage-0", "query-0", "failover",
                                                  "compactor"]
        assert all(c.state is ChildState.RUNNING for c in running)
        # Start order: each group's process started after the previous group was ready.
        starts = [psutil.Process(c.pid).create_time() for c in running]
        assert starts == sorted(starts)
        async with httpx.AsyncClient() as client:
            body = (await client.get(f"http://{plan.get('storage-0').http_address}/healthz")).json()
        assert body["node_id"] == "storage-0" and body["shards"] == [0] and body["replica"] == 0

        status = read_status(tmp_path)
        assert status["supervisor"]["state"] == "running"
        assert status["processes"]["query-0"]["pid"] == sup.children["query-0"].pid
        assert status["processes"]["gateway"]["state"] == "skipped"
        assert "storage-0" in (tmp_path / "logs" / "storage-0.log").read_text()

        # A second supervisor on the same directory is refused and leaves the status alone.
        with pytest.raises(ClusterBusy, match="another vecraft supervisor"):
            await Supervisor(plan).start()
        assert read_status(tmp_path)["supervisor"]["pid"] == os.getpid()

        victim = sup.children["storage-0"]
        old_pid = victim.pid
        assert old_pid is not None
        os.kill(old_pid, signal.SIGKILL)
        await _until(lambda: victim.pid != old_pid and victim.state is ChildState.RUNNING)
        assert victim.restarts == 1 and victim.last_exit == -signal.SIGKILL
        assert read_status(tmp_path)["processes"]["storage-0"]["pid"] == victim.pid
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"http://{victim.spec.http_address}/readyz")).status_code == 200
    finally:
        pids = [c.pid for c in sup.running()]
        await sup.stop()
    assert all(not psutil.pid_exists(p) or psutil.Process(p).status() == psutil.STATUS_ZOMBIE
               for p in pids if p)
    final = read_status(tmp_path)
    assert final["supervisor"]["state"] == "stopped"
    assert {e["state"] for n, e in final["processes"].items() if n != "gateway"} == {"stopped"}
    await sup.stop()  # idempotent


async def test_startup_failure_reports_the_log_tail_and_stops_the_rest(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    sup = Supervisor(plan, env={**os.environ, "FAKE_SERVICE_CRASH": "meta"}, ready_timeout=READY_TIMEOUT)
    with pytest.raises(StartupError) as info:
        await sup.start()
    message = str(info.value)
    assert "meta exited with code 3 before it was ready" in message
    assert "fake crash of meta: cannot open the data directory" in message
    assert str(tmp_path / "logs" / "meta.log") in message
    journal = sup.children["journal"]
    assert journal.state is ChildState.RUNNING
    # Later groups were never started.
    assert sup.children["storage-0"].pid is None
    await sup.stop()
    assert journal.proc is not None and journal.proc.returncode is not None


async def test_busy_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    plan = _plan(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", plan.get("gateway").http_port))
        sock.listen()
        sup = Supervisor(plan)
        with pytest.raises(StartupError, match=f"HTTP port {plan.get('gateway').http_port} of gateway"):
            await sup.start()
        await sup.stop()
    assert all(c.pid is None for c in sup.children.values())


async def test_run_stops_on_request_and_kills_on_a_second_one(tmp_path: Path) -> None:
    plan = _plan(tmp_path, missing=("query", "gateway"))
    sup = Supervisor(plan, env={**os.environ, "FAKE_SERVICE_STUBBORN": "journal"},
                     ready_timeout=READY_TIMEOUT, stop_grace=600)
    ready: list[Supervisor] = []
    run = asyncio.create_task(sup.run(on_ready=ready.append))
    await _until(lambda: bool(ready))
    journal = sup.children["journal"]
    sup.request_stop()
    # Stopped in reverse order: the storage node goes first, then meta; journal ignores SIGTERM.
    await _until(lambda: journal.state is ChildState.STOPPING)
    assert sup.children["storage-0"].state is ChildState.STOPPED
    assert sup.children["storage-0"].last_exit == 0
    sup.request_stop()  # the second request does not wait for the 600 s grace
    assert await asyncio.wait_for(run, READY_TIMEOUT) == 0
    assert journal.last_exit == -signal.SIGKILL
    assert read_status(tmp_path)["supervisor"]["state"] == "stopped"


def test_backoff_doubles_and_caps() -> None:
    b = RestartBackoff(initial=0.5, maximum=4.0)
    assert [b.delay(n) for n in range(6)] == [0.5, 0.5, 1.0, 2.0, 4.0, 4.0]
