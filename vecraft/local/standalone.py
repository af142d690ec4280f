"""Standalone mode: every service of a local cluster in one process, `vecraft up`'s default.

As Milvus runs all its roles in one process in its standalone deployment,
``vecraft up`` (without ``--distributed`` or ``--cluster``) supervises one child,
``python -m vecraft.local.standalone --services FILE``, that builds the same
services the distributed layout runs as separate processes (the journal, the
meta manager, storage nodes, query processors, the fail-over manager, the
snapshot service, the gateway: their flags, ports and data directories are
the plan's, listed in ``FILE``) and starts them in one event loop, group by
group, each group ready before the next.

Each service keeps its gRPC and HTTP ports on loopback (probes, ``vecraft
status``, the streams the services follow), so both layouts share every line
of service code and a data directory can switch between them. What the
process saves: one interpreter instead of one per service (memory), and the
gateway's search calls the query processor directly
(:mod:`vecraft.shared.common.in_process`) instead of through gRPC.

Crash safety is the journal's: a write is acknowledged once durable in it, so
kill -9 of this process loses nothing acknowledged (tests/integration/
standalone). A background task of any service that fails shuts the whole
process down with :data:`~vecraft.shared.common.service.EXIT_BACKGROUND_TASK_FAILED`;
the supervisor then restarts it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import uvloop

from vecraft.local.standalone_services import ServiceEntry, read_services
from vecraft.shared.common import in_process
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.service import (
    EXIT_BACKGROUND_TASK_FAILED,
    FORCED_EXIT_AFTER_S,
    BackgroundTaskFailed,
    Service,
)

log = logging.getLogger(__name__)

#: How often start-up looks at the services of a group for readiness.
READY_POLL_S = 0.05


def build_service(entry: ServiceEntry) -> Service:
    """The service of ``entry``, built by its module's ``build`` from its flags; not started."""
    service: Service = importlib.import_module(f"{entry.module}.main").build(list(entry.args))
    return service


def _installed(entry: ServiceEntry) -> bool:
    """The service's module is in this build (as the supervisor skips a missing one, so does this)."""
    try:
        found = importlib.util.find_spec(f"{entry.module}.main") is not None
    except ModuleNotFoundError:
        found = False
    if not found:
        log.warning("skipping %s: module %s is not installed", entry.name, entry.module)
    return found


class StartupFailed(RuntimeError):
    """A service of the standalone process could not start or become ready."""


class Standalone:
    """The services of one process: started in group order, stopped in reverse."""

    def __init__(self, entries: Sequence[ServiceEntry], *, ready_timeout_s: float) -> None:
        self.entries = sorted(entries, key=lambda e: e.group)
        self.ready_timeout_s = ready_timeout_s
        #: Started services, in start order.
        self.services: list[tuple[ServiceEntry, Service]] = []

    async def start(self) -> None:
        """Start every service, each group ready before the next.

        Raises:
            StartupFailed: a service failed to start, failed while starting, or was not ready in time.
        """
        installed = [e for e in self.entries if _installed(e)]
        if not installed:
            raise StartupFailed("none of the services to run is installed in this build")
        for group in sorted({e.group for e in installed}):
            members = [e for e in installed if e.group == group]
            for entry in members:
                try:
                    service = build_service(entry)
                except Exception as exc:  # bad flags: say which service, as its own process would
                    raise StartupFailed(f"{entry.name} cannot be built: {exc}") from exc
                self.services.append((entry, service))
                try:
                    await service.start()
                except Exception as exc:
                    raise StartupFailed(f"{entry.name} did not start: {exc}") from exc
                in_process.register(service.grpc_address, service)
            await asyncio.gather(*(self._wait_ready(e, s) for e, s in self.services if e in members))
            for entry in members:
                log.info("%s ready", entry.name)

    async def _wait_ready(self, entry: ServiceEntry, service: Service) -> None:
        deadline = asyncio.get_running_loop().time() + self.ready_timeout_s
        while not service.ready:
            if service.failure is not None:
                raise StartupFailed(f"{entry.name} failed while starting: {service.failure}")
            if asyncio.get_running_loop().time() > deadline:
                raise StartupFailed(f"{entry.name} was not ready after {self.ready_timeout_s:g} s")
            await asyncio.sleep(READY_POLL_S)

    async def stop(self) -> None:
        """Shut every started service down, the last started first."""
        for entry, service in reversed(self.services):
            in_process.unregister(service.grpc_address)
            try:
                await service.shutdown()
            except Exception:  # one service's failed drain must not keep the others running
                log.exception("%s did not shut down cleanly", entry.name)
        self.services.clear()

    async def wait_failed(self) -> BackgroundTaskFailed:
        """The first background-task failure of any service."""
        waits = [asyncio.ensure_future(s.wait_failed()) for _, s in self.services]
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            return next(iter(done)).result()
        finally:
            for w in waits:
                w.cancel()


async def run(entries: Sequence[ServiceEntry], *, ready_timeout_s: float) -> int:
    """Start the services, serve until SIGTERM/SIGINT or a service's failure, stop. Returns the exit code."""
    standalone = Standalone(entries, ready_timeout_s=ready_timeout_s)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    starting = asyncio.ensure_future(standalone.start())
    stopping = asyncio.ensure_future(stop.wait())
    code = 0
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return 0
        try:
            starting.result()
        except StartupFailed as exc:
            log.error("start-up failed: %s", exc)
            return 1
        log.info("every service is ready", extra={"services": [e.name for e, _ in standalone.services]})
        failed = asyncio.ensure_future(standalone.wait_failed())
        await asyncio.wait({failed, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if failed.done():
            log.error("%s; stopping every service", failed.result())
            # A drain that hangs must not keep a dead process up.
            _exit_soon(EXIT_BACKGROUND_TASK_FAILED, FORCED_EXIT_AFTER_S)
            code = EXIT_BACKGROUND_TASK_FAILED
        failed.cancel()
        return code
    finally:
        stopping.cancel()
        await standalone.stop()


def _exit_soon(code: int, delay_s: float) -> None:
    """End the process with ``code`` after ``delay_s``, from a thread: the loop may be what hangs."""
    timer = threading.Timer(delay_s, os._exit, args=(code,))
    timer.daemon = True
    timer.start()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Every Vecraft service of a local cluster in one process "
                                                 "(run by `vecraft up`).")
    parser.add_argument("--services", type=Path, required=True, help="JSON list of the services to run")
    parser.add_argument("--ready-timeout", type=float, default=120.0,
                        help="seconds each start group gets to become ready")
    parser.add_argument("--log-level", default="info")
    ns = parser.parse_args(argv)
    setup_logging("vecraft", ns.log_level)
    sys.exit(uvloop.run(run(read_services(ns.services), ready_timeout_s=ns.ready_timeout)))


if __name__ == "__main__":
    main()
