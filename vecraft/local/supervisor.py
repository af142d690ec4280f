"""Run a planned local cluster as supervised child processes (the engine of `vecraft up`).

Contract of :class:`Supervisor`:

- **Start** (:meth:`Supervisor.start`): one start group of the plan at a time
  ((etcd, nats,) journal, meta, storage, query, gateway); every child of a
  group is started, then the next group waits until each of them answers its
  ready path (``/readyz``; etcd ``/health``, NATS ``/healthz``) with 200.
  A child that exits or is not ready within ``ready_timeout`` aborts the start
  with :class:`StartupError`, whose message ends with the child's last log
  lines. A child whose module is not installed (``importlib.util.find_spec``
  finds nothing) is skipped with a one-line notice: ``up`` starts what exists.
  A child that is a program (etcd, nats-server) has its configuration files
  (``ProcessSpec.files``) written before every start.
- **Watch**: a child that exits on its own is restarted with exponential
  backoff (``RestartBackoff``); the backoff resets once a child has stayed up for
  ``reset_after`` seconds. A Vecraft service whose background task died
  exits by itself (code 70, see :mod:`vecraft.shared.common.service`); as a
  backstop for a drain that hangs, each running Vecraft child's liveness path
  (``/healthz``) is polled every ``health_interval`` seconds, and a child that
  keeps answering 503 for ``unhealthy_grace`` seconds is stopped (SIGTERM,
  SIGKILL after ``stop_grace``) and restarted like any child that exits. Only
  an explicit 503 counts: a child too busy to answer is left alone.
- **Files**: each child's stdout and stderr are appended to
  ``DATA/logs/<name>.log``; ``DATA/supervisor.json`` always holds the current
  pid, state and restart count of every child (written atomically); an
  advisory lock on ``DATA/supervisor.lock`` keeps a second supervisor off the
  same directory (:class:`ClusterBusy`).
- **Stop** (:meth:`Supervisor.stop`, or SIGINT/SIGTERM/SIGHUP during :meth:`Supervisor.run`):
  groups in reverse start order, SIGTERM to each child's process group, SIGKILL
  after ``stop_grace`` seconds, or at once on a second SIGINT/SIGTERM.
  Idempotent. ``run()`` then returns 0.

Children run in their own session, so a Ctrl-C in the terminal reaches only
the supervisor, which then stops them in order. Children left over by a
supervisor that was killed with -9 are found through ``supervisor.json`` and
stopped before a new start.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import fcntl
import importlib.util
import json
import logging
import os
import shlex
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psutil

from vecraft.local.status_probe import StatusProbe
from vecraft.local.topology import ROLE_MODULES, ClusterPlan, ProcessSpec, write_json_atomic
from vecraft.shared.common.backoff import Backoff
from vecraft.shared.common.errors import Conflict, Unavailable

log = logging.getLogger("vecraft.supervisor")

STATUS_FILE = "supervisor.json"
LOCK_FILE = "supervisor.lock"
TAIL_LINES = 30
#: Ctrl-C, kill, and a closed terminal all stop the cluster cleanly.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class ChildState(enum.StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    BACKOFF = "backoff"
    STOPPING = "stopping"
    STOPPED = "stopped"
    SKIPPED = "skipped"


class StartupError(Unavailable):
    """A child exited or did not become ready during start-up; the message shows its log tail."""


class ClusterBusy(Conflict):
    """Another supervisor runs the cluster of this data directory."""


@dataclass(frozen=True)
class RestartBackoff:
    """Restart delays: ``initial`` doubled per consecutive quick crash, capped at ``maximum``.

    A child that ran at least ``reset_after`` seconds before exiting counts as a
    fresh failure again (delay ``initial``).
    """

    initial: float = 0.5
    maximum: float = 30.0
    reset_after: float = 30.0

    def delay(self, failures: int) -> float:
        return Backoff(self.initial, self.maximum).nth(failures - 1)


def module_available(module: str) -> bool:
    """True if ``python -m module`` has something to run (a module, or a package with __main__)."""
    try:
        spec = importlib.util.find_spec(module)
        if spec is None:
            return False
        if spec.submodule_search_locations is not None:
            return importlib.util.find_spec(f"{module}.__main__") is not None
        return True
    except ModuleNotFoundError:
        return False


def log_tail(path: Path, lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file, indented for an error message."""
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except FileNotFoundError:
        return "    (no log written)"
    return "\n".join("    " + line for line in text) or "    (log is empty)"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class ClusterLock:
    """Advisory lock on ``DATA/supervisor.lock``: one supervisor per data directory.

    Take it before writing anything into the directory; it is dropped by
    :meth:`release` or when the process dies, however it dies.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._file: IO[str] | None = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        """Raises ClusterBusy if another process holds it."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lock = open(self.data_dir / LOCK_FILE, "a+")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            pid = read_status(self.data_dir).get("supervisor", {}).get("pid", "?")
            raise ClusterBusy(f"another vecraft supervisor (pid {pid}) is running the cluster in "
                              f"{self.data_dir.resolve()}; stop it first (Ctrl-C, or kill -TERM {pid})",
                              details={"pid": pid}) from None
        self._file = lock

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the descriptor drops the flock
            self._file = None

    def keep_across_exec(self) -> int:
        """Let the held lock's descriptor survive an exec; returns it (for :meth:`adopt`).

        A flock belongs to the open file, not the process: the exec'd program holds the lock
        as long as it keeps the descriptor open."""
        assert self._file is not None, "acquire() first"
        fd = self._file.fileno()
        os.set_inheritable(fd, True)
        return fd

    @classmethod
    def adopt(cls, data_dir: Path, fd: int) -> ClusterLock:
        """The lock of ``data_dir`` held through descriptor ``fd`` (see :meth:`keep_across_exec`)."""
        lock = cls(data_dir)
        lock._file = open(fd, "a+", closefd=True)  # noqa: SIM115 - held until release()
        os.set_inheritable(fd, False)  # children never inherit it
        return lock


@dataclass(eq=False)
class Child:
    """Runtime state of one planned process."""

    spec: ProcessSpec
    log_path: Path
    state: ChildState = ChildState.PENDING
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    failures: int = 0
    spawned_at: float = 0.0  # monotonic, for the backoff reset
    started_at: str | None = None
    last_exit: int | None = None
    watcher: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def snapshot(self) -> dict[str, Any]:
        alive = self.proc is not None and self.proc.returncode is None
        return {"pid": self.pid if alive else None, "state": self.state.value, "restarts": self.restarts,
                "last_exit": self.last_exit, "started_at": self.started_at, "log": str(self.log_path)}


class _ChildExited(Exception):
    def __init__(self, child: Child, code: int) -> None:
        super().__init__(f"{child.spec.name} exited with code {code} before it was ready")
        self.child = child


class _ChildNotReady(Exception):
    def __init__(self, child: Child, timeout: float) -> None:
        super().__init__(f"{child.spec.name} was not ready within {timeout:.0f}s")
        self.child = child


#: glibc malloc settings of the children, unless the environment sets them: two arenas instead of
#: up to eight per core. Freed memory stays in the arena of the thread that used it, so with faiss's
#: and the I/O pools' threads each arena kept its own peak; with two, a standalone process holding
#: 100K x 128 stays at 351 - 367 MiB instead of 398 - 402 (`vecraft bench peers --engines vecraft`,
#: two runs each, ingest and search unchanged; docs/performance.md).
CHILD_MALLOC_ENV = {"MALLOC_ARENA_MAX": "2"}


class Supervisor:
    """Starts, watches and stops the processes of one :class:`ClusterPlan`.

    Args:
        plan: what to run; ``plan.data_dir`` holds logs, status and lock files.
        python: interpreter for the children (``python -m module args``).
        env: environment of the children (default: this process's).
        ready_timeout: seconds a child may take to answer ``/readyz`` during start-up.
        stop_grace: seconds between SIGTERM and SIGKILL on stop.
        backoff: restart delays.
        health_interval: seconds between liveness polls of a running Vecraft child.
        unhealthy_grace: seconds a child may answer its liveness path with 503 before it is stopped.
        is_available: decides whether a module exists (tests may replace it).
        lock: the data directory's lock, if the caller already holds it (default: taken by start()).
    """

    def __init__(self, plan: ClusterPlan, *, python: str = sys.executable,
                 env: dict[str, str] | None = None, ready_timeout: float = 120.0,
                 stop_grace: float = 10.0, backoff: RestartBackoff = RestartBackoff(),
                 health_interval: float = 2.0, unhealthy_grace: float = 15.0,
                 is_available: Callable[[str], bool] = module_available,
                 lock: ClusterLock | None = None) -> None:
        self.plan = plan
        self.python = python
        # Unbuffered children: a crash leaves its last words in the log.
        self.env = {**CHILD_MALLOC_ENV, **(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}
        self.ready_timeout = ready_timeout
        self.stop_grace = stop_grace
        self.backoff = backoff
        self.health_interval = health_interval
        self.unhealthy_grace = unhealthy_grace
        self.is_available = is_available
        self.children = {spec.name: Child(spec, plan.log_path(spec.name)) for spec in plan.processes}
        self.state = "pending"
        self.started_at = _now_iso()
        self._stopping = False
        self._stop_requested = asyncio.Event()
        self._stopped = asyncio.Event()
        self._kill_now = asyncio.Event()
        # A lock handed in by the caller (held while it prepared the plan) stays the caller's.
        self._lock = lock if lock is not None else ClusterLock(plan.data_dir)
        self._owns_lock = lock is None
        self._http: StatusProbe | None = None

    # ---- public ----------------------------------------------------------------
    @property
    def status_path(self) -> Path:
        return self.plan.data_dir / STATUS_FILE

    def running(self) -> list[Child]:
        return [c for c in self.children.values() if c.state is not ChildState.SKIPPED]

    def request_stop(self) -> None:
        """Ask :meth:`run` to stop (what SIGINT / SIGTERM do); asked again while stopping, kill now."""
        if self._stop_requested.is_set() and self._stopping and not self._kill_now.is_set():
            log.warning("asked again: killing the remaining services now")
            self._kill_now.set()
        self._stop_requested.set()

    async def start(self) -> None:
        """Start every available child, group by group, each group ready before the next.

        Raises:
            ClusterBusy: another supervisor holds this data directory.
            StartupError: a child exited, was not ready in time, or a port is taken.
        """
        self.plan.logs_dir.mkdir(parents=True, exist_ok=True)
        if not self._lock.held:
            self._lock.acquire()
        self._stop_leftovers()
        missing: dict[str, list[str]] = {}
        for child in self.children.values():
            if child.spec.executable is None and not self.is_available(child.spec.module):
                child.state = ChildState.SKIPPED
                missing.setdefault(child.spec.module, []).append(child.spec.name)
        for module, names in missing.items():
            log.warning("skipping %s: module %s is not installed", ", ".join(names), module)
        self._check_ports()
        self._http = StatusProbe(self.plan.http_verify())
        self._set_state("starting")
        for group in self.plan.groups():
            members = [self.children[s.name] for s in group
                       if self.children[s.name].state is not ChildState.SKIPPED]
            for child in members:
                await self._spawn(child)
            results = await asyncio.gather(*(self._wait_ready(c, self.ready_timeout) for c in members),
                                           return_exceptions=True)
            failures = [r for r in results if isinstance(r, (_ChildExited, _ChildNotReady))]
            for other in results:
                if isinstance(other, BaseException) and other not in failures:
                    raise other
            if failures:
                raise StartupError("\n".join(
                    f"{f} (log: {f.child.log_path}); last lines:\n{log_tail(f.child.log_path)}"
                    for f in failures))
            for child in members:
                log.info("%s ready (pid %s, grpc %s, http %s)", child.spec.name, child.pid,
                         child.spec.grpc_address, child.spec.http_address)
                child.watcher = asyncio.create_task(self._watch(child), name=f"watch:{child.spec.name}")
        self._set_state("running")

    async def stop(self) -> None:
        """Stop every child in reverse start order (SIGTERM, SIGKILL after the grace). Idempotent."""
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        self._stop_requested.set()
        try:
            if self._lock.held:
                self._set_state("stopping")
            watchers = [c.watcher for c in self.children.values() if c.watcher is not None]
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            # Closed before the children stop: its idle keep-alive connections would otherwise make
            # each HTTPS service wait for them at shutdown (seconds per service under --tls).
            if self._http is not None:
                self._http.close()
                self._http = None
            for group in reversed(self.plan.groups()):
                await asyncio.gather(*(self._terminate(self.children[s.name]) for s in group))
            if self._lock.held:
                self._set_state("stopped")
                log.info("all services stopped")
        finally:
            if self._owns_lock:
                self._lock.release()
            self._stopped.set()

    async def run(self, on_ready: Callable[[Supervisor], None] | None = None) -> int:
        """Start, call ``on_ready``, supervise until SIGINT/SIGTERM or :meth:`request_stop`, stop.

        Returns:
            0 after a clean stop (also when interrupted during start-up), 1 if start-up failed.

        Raises:
            ClusterBusy: another supervisor holds this data directory.
        """
        loop = asyncio.get_running_loop()
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, self.request_stop)
        starting = asyncio.create_task(self.start(), name="supervisor:start")
        stop_wait = asyncio.create_task(self._stop_requested.wait(), name="supervisor:stop-wait")
        try:
            await asyncio.wait({starting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not starting.done():
                log.info("interrupted during start-up; stopping")
                starting.cancel()
                with contextlib.suppress(asyncio.CancelledError, StartupError):
                    await starting
                return 0
            try:
                starting.result()
            except StartupError as exc:
                log.error("start-up failed: %s", exc)
                return 1
            if on_ready is not None:
                on_ready(self)
            await stop_wait
            log.info("stopping")
            return 0
        finally:
            stop_wait.cancel()
            await self.stop()
            for sig in STOP_SIGNALS:
                loop.remove_signal_handler(sig)

    def snapshot(self) -> dict[str, Any]:
        """What ``supervisor.json`` holds."""
        return {"supervisor": {"pid": os.getpid(), "state": self.state, "started_at": self.started_at,
                               "updated_at": _now_iso(), "data_dir": str(self.plan.data_dir)},
                "processes": {name: c.snapshot() for name, c in self.children.items()}}

    # ---- children --------------------------------------------------------------
    async def _spawn(self, child: Child) -> None:
        cmd = child.spec.command(self.python)
        for path, text in child.spec.files:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        with open(child.log_path, "ab") as out:
            out.write(f"\n--- {_now_iso()} supervisor starts {child.spec.name}: {shlex.join(cmd)}\n".encode())
            out.flush()
            # If this await is cancelled (stop during a restart), asyncio kills the new process.
            child.proc = await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
                env=self.env, start_new_session=True)
        child.spawned_at = time.monotonic()
        child.started_at = _now_iso()
        child.state = ChildState.STARTING
        self._write_status()

    async def _wait_ready(self, child: Child, timeout: float | None) -> None:
        """Poll the child's ready path until 200; raises _ChildExited / _ChildNotReady."""
        assert child.proc is not None and self._http is not None
        proc = child.proc
        url = f"{child.spec.http_scheme}://{child.spec.http_address}{child.spec.ready_path}"
        deadline = None if timeout is None else time.monotonic() + timeout
        # One waiter for the whole poll, so a dying child ends the wait at once.
        exited = asyncio.ensure_future(proc.wait())
        try:
            while True:
                if exited.done():
                    raise _ChildExited(child, exited.result())
                if await self._http.status(url) == 200:
                    child.state = ChildState.RUNNING
                    self._write_status()
                    return
                if deadline is not None and time.monotonic() > deadline:
                    raise _ChildNotReady(child, timeout or 0.0)
                await asyncio.wait({exited}, timeout=0.1)
        finally:
            exited.cancel()

    async def _watch(self, child: Child) -> None:
        """Restart ``child`` whenever it exits, until the supervisor stops."""
        while True:
            assert child.proc is not None
            code = await self._wait_exit(child)
            child.last_exit = code
            uptime = time.monotonic() - child.spawned_at
            child.failures = 0 if uptime >= self.backoff.reset_after else child.failures + 1
            delay = self.backoff.delay(child.failures)
            child.state = ChildState.BACKOFF
            self._write_status()
            log.warning("%s (pid %s) exited with code %s after %.1fs; restarting in %.1fs (log: %s)",
                        child.spec.name, child.proc.pid, code, uptime, delay, child.log_path)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_requested.wait(), delay)
            if self._stop_requested.is_set():
                return
            # Counted before the spawn writes supervisor.json, so no reader sees the new pid
            # with the old restart count.
            child.restarts += 1
            await self._spawn(child)
            try:
                await self._wait_ready(child, None)
                log.info("%s restarted (pid %s)", child.spec.name, child.pid)
            except _ChildExited:
                continue  # the loop sees the exit and backs off

    async def _wait_exit(self, child: Child) -> int:
        """Wait until ``child`` exits; stop it first if its liveness path keeps answering 503."""
        assert child.proc is not None
        proc = child.proc
        if child.spec.executable is not None or self._http is None:
            return await proc.wait()  # etcd / NATS: their own health is not ours to act on
        url = f"{child.spec.http_scheme}://{child.spec.http_address}{child.spec.health_path}"
        exited = asyncio.ensure_future(proc.wait())
        failing_since: float | None = None
        try:
            while not exited.done():
                await asyncio.wait({exited}, timeout=self.health_interval)
                if exited.done():
                    break
                status = await self._http.status(url)
                if status is None:
                    continue  # busy or between states: no answer is not a verdict
                if status != 503:
                    failing_since = None
                    continue
                now = time.monotonic()
                failing_since = now if failing_since is None else failing_since
                if now - failing_since >= self.unhealthy_grace:
                    log.warning("%s (pid %s) has reported itself failed (%s 503) for %.0fs; stopping it",
                                child.spec.name, proc.pid, child.spec.health_path, now - failing_since)
                    await self._stop_process(child.spec.name, proc)
            return exited.result()
        finally:
            exited.cancel()

    async def _stop_process(self, name: str, proc: asyncio.subprocess.Process) -> None:
        """SIGTERM to the process group, SIGKILL after ``stop_grace`` (or at once on a second Ctrl-C)."""
        self._signal(proc.pid, signal.SIGTERM)
        exited = asyncio.ensure_future(proc.wait())
        kill_now = asyncio.ensure_future(self._kill_now.wait())
        await asyncio.wait({exited, kill_now}, timeout=self.stop_grace, return_when=asyncio.FIRST_COMPLETED)
        kill_now.cancel()
        if not exited.done():
            if not self._kill_now.is_set():
                log.warning("%s did not stop within %.0fs; killing it", name, self.stop_grace)
            self._signal(proc.pid, signal.SIGKILL)
            await exited

    async def _terminate(self, child: Child) -> None:
        proc = child.proc
        if proc is None or proc.returncode is not None:
            if child.state is not ChildState.SKIPPED and proc is not None:
                child.state = ChildState.STOPPED
            return
        child.state = ChildState.STOPPING
        self._write_status()
        await self._stop_process(child.spec.name, proc)
        child.last_exit = proc.returncode
        child.state = ChildState.STOPPED
        self._write_status()

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        # The child leads its own process group; signal the group so helpers it started stop too.
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    # ---- files and pre-flight checks ------------------------------------------
    def _set_state(self, state: str) -> None:
        self.state = state
        self._write_status()

    def _write_status(self) -> None:
        # Only the lock holder may write: a refused second supervisor must not clobber the file.
        if self._lock.held:
            write_json_atomic(self.status_path, self.snapshot())

    def _stop_leftovers(self) -> None:
        """Stop children an earlier supervisor left running (it was killed with -9)."""
        previous = read_status(self.plan.data_dir).get("processes", {})
        for name, entry in previous.items():
            pid = entry.get("pid")
            child = self.children.get(name)
            if not pid:
                continue
            try:
                proc = psutil.Process(pid)
                cmdline = proc.cmdline()
            except psutil.Error:
                continue
            # Only a process that is recognisably that child: same module (or program) and node id.
            # One no longer planned (fewer nodes, or a name of the layout before nodes): a Vecraft
            # service with that node id whose data lies in this directory.
            if child is not None:
                program = child.spec.executable or child.spec.module
                recognised = program in cmdline and name in cmdline
            else:
                inside = str(self.plan.data_dir) + os.sep
                recognised = name in cmdline and any(m in cmdline for m in ROLE_MODULES.values()) \
                    and any(arg.startswith(inside) for arg in cmdline)
            if recognised:
                log.warning("stopping %s (pid %s) left running by an earlier supervisor", name, pid)
                proc.terminate()
                try:
                    proc.wait(self.stop_grace)
                except psutil.TimeoutExpired:
                    proc.kill()

    def _check_ports(self) -> None:
        busy = []
        for child in self.running():
            ports = [("gRPC", child.spec.grpc_port), ("HTTP", child.spec.http_port)]
            if child.spec.peer_port:
                ports.append(("peer", child.spec.peer_port))
            for kind, port in ports:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    try:
                        sock.bind((child.spec.host, port))
                    except OSError as exc:
                        busy.append(f"{kind} port {port} of {child.spec.name} ({exc.strerror})")
        if busy:
            raise StartupError("cannot start, ports in use by another program: " + "; ".join(busy)
                               + ". Free them, or choose --http-port/--grpc-port for the gateway.")


def read_status(data_dir: Path) -> dict[str, Any]:
    """Contents of ``DATA/supervisor.json`` ({} if absent or unreadable)."""
    try:
        data = json.loads((data_dir / STATUS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
