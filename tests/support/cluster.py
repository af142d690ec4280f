"""A whole local cluster started the way a user starts it: ``vecraft up``.

``LocalCluster`` runs ``vecraft up`` (the supervisor and every service as real
processes; ``standalone=True``: every service in the one process of standalone
mode, ``vecraft up``'s default) on free loopback ports in a temporary data directory, waits until
the gateway is ready and every service is up, and gives tests the endpoints,
``vecraft status`` data, kill -9 of one service, and a clean stop.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.procs import free_port
from vecraft.cli import cluster_status


class LocalCluster:
    def __init__(self, data_dir: Path, *, shards: int = 3, replicas: int = 1, apply_delay_ms: int = 0,
                 data_partitions: int = 1, extra_args: list[str] | None = None,
                 standalone: bool = False, env: dict[str, str] | None = None) -> None:
        """``env``: variables added to the environment of ``vecraft up`` (``VECRAFT_*`` settings reach
        every service that has the setting)."""
        self.data_dir = data_dir
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.args = ["--data-dir", str(data_dir), "--http-port", str(self.http_port),
                     "--grpc-port", str(self.grpc_port), "--shards", str(shards), "--replicas", str(replicas),
                     "--apply-delay-ms", str(apply_delay_ms), "--data-partitions", str(data_partitions),
                     "--no-distributed" if standalone else "--distributed", *(extra_args or [])]
        self.log_path = data_dir.parent / f"vecraft-up-{self.http_port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout: float = 180.0) -> LocalCluster:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen([sys.executable, "-m", "vecraft", "up", *self.args], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=self.env)
        log.close()
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"vecraft up exited with {self.proc.returncode}:\n{self.tail()}")
            status = self.status()
            if status is not None and status["all_up"]:
                try:
                    if httpx.get(f"{self.endpoint}/readyz", timeout=1.0).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        raise TimeoutError(f"cluster not ready after {timeout}s:\n{self.tail()}")

    def status(self) -> dict[str, Any] | None:
        return cluster_status(self.data_dir, timeout=1.0)

    def process(self, name: str) -> dict[str, Any]:
        status = self.status()
        assert status is not None, "no cluster status"
        for row in status["processes"]:
            if row["name"] == name:
                return row
        raise KeyError(f"no service {name!r}; have {[r['name'] for r in status['processes']]}")

    def processes(self, role: str) -> list[dict[str, Any]]:
        status = self.status()
        assert status is not None
        return [r for r in status["processes"] if r["role"] == role]

    def kill(self, name: str) -> int:
        """kill -9 one service; returns the pid killed."""
        pid = self.process(name)["pid"]
        assert pid, f"{name} has no running pid"
        os.kill(pid, signal.SIGKILL)
        return int(pid)

    def wait_restarted(self, name: str, old_pid: int, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the supervisor has restarted ``name`` and it reports healthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = self.process(name)
            if row["pid"] and row["pid"] != old_pid and row["health"] == "up":
                return row
            time.sleep(0.2)
        raise TimeoutError(f"{name} not back after {timeout}s:\n{self.tail()}")

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def stop(self, timeout: float = 60.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(10)
