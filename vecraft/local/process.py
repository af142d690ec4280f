"""Child processes started outside the supervisor: by tests, benchmarks and the etcd / NATS launchers.

:class:`ProcessHandle` is the life-cycle half every such wrapper shares (alive,
kill -9, stop, log tail) over its ``proc`` and ``log_path``; :func:`free_port`
picks a loopback port for it to listen on; :class:`ServiceProcess` runs one
Vecraft service (``python -m <module> --grpc-port P --http-port Q ...``),
waits for its ``/readyz`` and can restart it on the same ports.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vecraft.local.ports import allocate_ports

_handed_out: set[int] = set()


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range, not handed out before by this process.

    A port from the ephemeral range (what ``bind(0)`` gives) can be taken by any
    outgoing connection before the server binds it, or while it restarts.
    """
    port = allocate_ports(["port"], _handed_out | {8000, 50051})["port"].grpc
    _handed_out.add(port)
    return port


class ProcessHandle:
    """Alive / kill / stop / tail of ``self.proc``, whose output goes to ``self.log_path``."""

    proc: subprocess.Popen[bytes] | None
    log_path: Path

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """kill -9, no cleanup."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout``; the exit code (None if never started)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


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
        import httpx  # here: vecraft up imports this module for its ports and never calls it

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
