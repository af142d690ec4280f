"""Start and stop a local cluster (``vecraft up``) for a benchmark.

Each benchmark cluster is one ``python -m vecraft up`` child in its own process
group. Restarting on the same data directory resumes the loaded data, which is
how the consistency benchmark changes ``--apply-delay-ms`` between lags without
loading again. Stop = SIGTERM to the supervisor (it stops its children in
order); if it has not exited within the grace period, its process group is
killed so no service outlives the benchmark.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import psutil

from vecraft.bench._http import BenchHttp
from vecraft.local.supervisor import read_status
from vecraft.local.topology import ClusterParams, process_names

#: Resident memory of one service process of a loaded small-scale cluster (measured ~180 MB),
#: rounded up; used to refuse clusters that would not fit next to everything else.
PROCESS_RSS_MB = 250
#: Clusters started and not yet stopped, so an interrupted benchmark can stop them.
_RUNNING: set[subprocess.Popen[bytes]] = set()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def stop_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt, so a terminated benchmark still stops its clusters."""
    signal.signal(signal.SIGTERM, _interrupt)


def stop_leftovers(grace_s: float = 30.0) -> None:
    """Stop every cluster this process started and has not stopped (after Ctrl-C or a crash)."""
    for proc in list(_RUNNING):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        _RUNNING.discard(proc)


def memory_shortfall(shards: int, replicas: int = 1) -> str:
    """Why a cluster of ``shards`` would not fit in the available memory; "" when it fits.

    A local cluster runs journal + meta + gateway + the storage and query nodes of
    ``vecraft up``'s default shape (2 storage nodes, or ``replicas`` if more, and one
    query node, each hosting several shards) as Python processes. Starting one that
    does not fit would push the machine into swap or the OOM killer, taking down
    other work, so it is refused with the estimate instead.
    """
    default = ClusterParams()
    params = ClusterParams(shards=shards, replicas=replicas,
                           storage_nodes=max(default.storage_nodes, replicas))
    processes = len(process_names(params))
    need_mb = processes * PROCESS_RSS_MB
    avail_mb = psutil.virtual_memory().available // 2**20
    if need_mb > 0.6 * avail_mb:
        return (f"{processes} service processes x ~{PROCESS_RSS_MB} MB = {need_mb:,} MB > 60% of the "
                f"{avail_mb:,} MB available")
    return ""


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """What to start. Ports are chosen once per data directory and kept across restarts."""

    data_dir: Path
    shards: int
    apply_delay_ms: int
    http_port: int
    grpc_port: int
    #: More `vecraft up` flags (node counts, replicas: given later, they win).
    extra_args: tuple[str, ...] = ()

    def command(self) -> list[str]:
        return [sys.executable, "-m", "vecraft", "up", "--data-dir", str(self.data_dir),
                "--http-port", str(self.http_port), "--grpc-port", str(self.grpc_port),
                "--shards", str(self.shards), "--replicas", "1",
                "--apply-delay-ms", str(self.apply_delay_ms), "--log-level", "warning", *self.extra_args]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"


class LocalCluster:
    """One running ``vecraft up``; use as ``async with LocalCluster(spec) as cluster``."""

    def __init__(self, spec: ClusterSpec, *, ready_timeout_s: float = 600.0,
                 stop_grace_s: float = 60.0) -> None:
        self.spec = spec
        self._ready_timeout = ready_timeout_s
        self._grace = stop_grace_s
        self._proc: subprocess.Popen[bytes] | None = None
        #: Seconds from spawn to the gateway's /readyz answering 200.
        self.startup_s = 0.0

    async def start(self) -> None:
        """Spawn ``vecraft up`` and wait until the gateway is ready. Raises if it exits or times out."""
        t0 = time.perf_counter()
        self._proc = self._spawn()
        async with BenchHttp(self.spec.base_url) as http:
            ready = asyncio.create_task(http.wait_ready(self._ready_timeout))
            while not ready.done():
                if self._proc.poll() is not None:
                    ready.cancel()
                    raise RuntimeError(f"vecraft up exited with {self._proc.returncode}; see "
                                       f"{self.spec.data_dir / 'bench-up.log'} and logs/")
                await asyncio.sleep(0.2)
            await ready
        self.startup_s = time.perf_counter() - t0

    def _spawn(self) -> subprocess.Popen[bytes]:
        # Popen returns at once; the wait for readiness is what takes time and is async.
        self.spec.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.spec.data_dir / "bench-up.log", "ab") as log:
            proc = subprocess.Popen(self.spec.command(), stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        _RUNNING.add(proc)
        return proc

    async def stop(self) -> None:
        """SIGTERM, wait for a clean stop, then kill the process group if needed."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self._grace
        while proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        _RUNNING.discard(proc)
        self._proc = None

    def pids(self) -> dict[str, Any]:
        """Pid of every service by name (from ``supervisor.json``), for profiling."""
        status = read_status(self.spec.data_dir)
        return {name: entry.get("pid") for name, entry in status.get("processes", {}).items()}

    async def __aenter__(self) -> Self:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


@contextlib.contextmanager
def bench_run(name: str) -> Iterator[Path]:
    """A scratch directory for one benchmark run; every cluster it started is stopped at the end.

    SIGTERM stops the run as Ctrl-C does, so clusters never outlive it.
    """
    stop_on_sigterm()
    work = Path(tempfile.mkdtemp(prefix=f"vecraft-bench-{name}-"))
    try:
        yield work
    finally:
        stop_leftovers()
        shutil.rmtree(work, ignore_errors=True)
