"""Start real Vecraft service processes on free loopback ports.

``ServiceProcess`` runs ``python -m <module> --grpc-port P --http-port Q ...``,
waits for ``/readyz`` and keeps the log in a file so a failing test can show
it. ``kill()`` is kill -9; ``restart()`` starts it again with the same
arguments and ports (so clients reconnect to the same address).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from vecraft.shared.common.process import ProcessHandle, free_port

__all__ = ["ServiceProcess", "free_port"]


class ServiceProcess(ProcessHandle):
    def __init__(self, module: str, args: list[str], log_dir: Path, *, name: str | None = None,
                 env: dict[str, str] | None = None, ready_timeout: float = 30.0) -> None:
        self.module = module
        self.name = name or module.rsplit(".", 1)[-1]
        self.grpc_port = free_port()
        self.http_port = free_port()
        self.args = list(args)
        self.log_path = log_dir / f"{self.name}-{self.grpc_port}.log"
        self.env = {**os.environ, **(env or {})}
        self.ready_timeout = ready_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_address(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, wait_ready: bool = True) -> ServiceProcess:
        cmd = [sys.executable, "-m", self.module, "--grpc-port", str(self.grpc_port),
               "--http-port", str(self.http_port), *self.args]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        log.write(f"\n--- start {' '.join(cmd)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        log.close()
        if wait_ready:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.ready_timeout)
        url = f"http://{self.http_address}/readyz"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready after {timeout or self.ready_timeout}s:\n{self.tail()}")

    def restart(self, wait_ready: bool = True) -> ServiceProcess:
        self.stop()
        return self.start(wait_ready=wait_ready)
