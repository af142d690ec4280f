"""Child processes started outside the supervisor: etcd / NATS members for tests, services in tests.

:class:`ProcessHandle` is the life-cycle half every such wrapper shares (alive,
kill -9, stop, log tail) over its ``proc`` and ``log_path``; :func:`free_port`
picks a loopback port for it to listen on.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

_handed_out: set[int] = set()


def free_port() -> int:
    """A free loopback port below the kernel's ephemeral range, not handed out before by this process.

    A port from the ephemeral range (what ``bind(0)`` gives) can be taken by any
    outgoing connection before the server binds it, or while it restarts.
    """
    # Imported here: topology imports the etcd / NATS launchers, which build on this module.
    from vecraft.shared.common.topology import allocate_ports

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
