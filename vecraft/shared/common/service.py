"""The shell every Vecraft service process runs in.

A service subclasses :class:`Service`, registers its gRPC servicers in
:meth:`Service.register`, starts its background loops in :meth:`Service.on_start`
with :meth:`Service.spawn`, and calls :meth:`Service.set_ready` once it can
answer. The shell owns:

- the ``grpc.aio`` server (with the VecraftError -> status interceptor), which also
  serves the standard ``grpc.health.v1.Health`` (SERVING exactly when ``/readyz``
  answers 200, for ``""`` and each service :meth:`Service.register` added) and
  server reflection (:mod:`vecraft.shared.common.grpc_health`);
- an HTTP server (uvicorn) with ``/healthz`` (process alive), ``/readyz``
  (state is READY) and ``/metrics`` (Prometheus); services with an HTTP API of
  their own (the gateway) extend :meth:`Service.http_app`;
- named background tasks, cancelled and drained on shutdown;
- SIGTERM / SIGINT -> graceful :meth:`Service.shutdown` (idempotent);
- TLS on both ports with ``--tls-cert``/``--tls-key``, mutual TLS with ``--tls-ca``, and
  certificate reload without restart (:mod:`vecraft.shared.common.tls`, docs/security.md#tls).

Lifecycle: STARTING -> READY -> DRAINING -> STOPPED. ``run()`` blocks until
shutdown completes.

A background task that dies takes the process with it. A task started with
:meth:`Service.spawn` that raises (or, if spawned with ``forever=True``,
returns while the service is not shutting down) is a fatal failure: it is
logged with the task's name and counted in
``vecraft_background_task_failures_total{service,task}``; ``/readyz`` and
``/healthz`` answer 503 from that moment; the service drains as on SIGTERM
and :meth:`Service.run` raises :class:`BackgroundTaskFailed`, which
:func:`run_service` turns into exit code :data:`EXIT_BACKGROUND_TASK_FAILED`.
The supervisor of ``vecraft up`` (and Kubernetes) restarts a process that
exits, so a dead follower or tail never hides behind a READY probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Coroutine
from typing import Any

import grpc
import uvicorn
import uvloop
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vecraft.shared.common import metrics, tls
from vecraft.shared.common.config import ServiceSettings
from vecraft.shared.common.grpc_errors import ErrorInterceptor
from vecraft.shared.common.grpc_health import ReadinessHealth, add_health_and_reflection, service_names_of
from vecraft.shared.common.message_size import GRPC_MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

#: Exit code of a process whose background task failed (EX_SOFTWARE of sysexits.h).
EXIT_BACKGROUND_TASK_FAILED = 70
#: After a fatal failure, the process ends by force if its drain (grace 5 s per
#: step: gRPC, tasks, HTTP) has not finished within this many seconds.
FORCED_EXIT_AFTER_S = 30.0

BACKGROUND_TASK_FAILURES = metrics.counter(
    "background_task", "failures", "Background tasks that raised (or returned though meant to run "
    "forever); each one ends its process", ["service", "task"])

# Largest request a server accepts, GRPC_MAX_MESSAGE_BYTES (message_size.py): the HTTP body limit
# plus a gRPC envelope, so the public gRPC API takes what the HTTP API takes, while the
# largest internal request (an Append of one entry of max_entry_bytes) and response page (a
# PullWAL page or Subscribe event: at most pull_max_bytes, 16 MiB, or one entry) still fit.
#: Largest answer: a search or get returns what is stored (up to k or a batch of records
#: with their metadata and documents), which may exceed a request; limiting the receiver,
#: not the sender, of requests is what protects a server.
GRPC_MAX_RESPONSE_BYTES = 256 << 20
#: Servers: requests capped at GRPC_MAX_MESSAGE_BYTES (RESOURCE_EXHAUSTED above).
GRPC_SERVER_OPTIONS = [
    ("grpc.max_send_message_length", GRPC_MAX_RESPONSE_BYTES),
    ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
]
#: Channels: send what a server accepts, receive answers up to GRPC_MAX_RESPONSE_BYTES.
GRPC_OPTIONS = [
    ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", GRPC_MAX_RESPONSE_BYTES),
]
#: Internal channels: :data:`GRPC_OPTIONS`, and a restarted service is used again within about a
#: second (gRPC's default reconnect backoff grows to two minutes, during which every call to it
#: would fail fast).
CHANNEL_OPTIONS = [*GRPC_OPTIONS, ("grpc.initial_reconnect_backoff_ms", 100),
                   ("grpc.min_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000)]


class BackgroundTaskFailed(RuntimeError):
    """A background task of the service failed; the service shut down because of it.

    ``task`` is the name given to :meth:`Service.spawn`; the task's exception (if
    it raised) is the ``__cause__``.
    """

    def __init__(self, role: str, task: str, reason: str) -> None:
        super().__init__(f"background task {task!r} of {role} {reason}")
        self.role = role
        self.task = task
        self.reason = reason


class ServiceState(enum.Enum):
    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    STOPPED = "stopped"


def bind_socket(host: str, port: int) -> socket.socket:
    # Naming IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted
    # connections of a socket whose proto says TCP; without it every small
    # HTTP answer waits ~40 ms for Nagle's algorithm.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


class Service:
    """Base class of every service process. Constructors only read settings."""

    #: short role name: "journal", "storage", "query", "gateway", "meta", ...
    role: str = "service"
    #: Ports for the public (the gateway): clients need a certificate only with
    #: ``--tls-client-ca``. Internal services require one signed by ``--tls-ca``.
    tls_public: bool = False

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.state = ServiceState.STARTING
        self.grpc_port = settings.grpc_port
        self.http_port = settings.http_port
        self.node_id = settings.node_id
        self._grpc_server: grpc.aio.Server | None = None
        self._http_server: uvicorn.Server | None = None
        self._http_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = asyncio.Event()
        self._shutdown_started = False
        #: Set by the first fatal background-task failure; the service then shuts down.
        self.failure: BackgroundTaskFailed | None = None
        self._failed = asyncio.Event()
        self._failure_shutdown: asyncio.Task[None] | None = None
        #: grpc.health.v1.Health of this process: reports :attr:`ready`, the /readyz condition.
        self.health = ReadinessHealth(lambda: self.ready)
        #: Every service name the gRPC server lists through reflection (set by :meth:`start`).
        self.grpc_service_names: list[str] = []
        #: TLS of this service's ports (None: plaintext); ``ca`` is what clients must be signed by.
        client_ca = settings.tls_client_ca if self.tls_public else settings.tls_ca
        self.tls_server = tls.files_of(settings.tls_cert, settings.tls_key, client_ca)
        #: The HTTPS port's context, reloaded when the files change (set by :meth:`start`).
        self.https_context: tls.ReloadingSslContext | None = None
        if settings.tls_ca:
            # Internal channels of this process: TLS, servers verified with --tls-ca, this
            # service's certificate presented to them.
            tls.configure_client(tls.files_of(settings.tls_cert, settings.tls_key, settings.tls_ca),
                                 server_name=settings.tls_server_name)

    # ---- hooks for subclasses -------------------------------------------------
    def register(self, server: grpc.aio.Server) -> None:
        """Add this service's gRPC servicers to ``server``."""

    async def on_start(self) -> None:
        """Open files and channels, start background loops; call set_ready() when ready."""
        self.set_ready()

    async def on_stop(self) -> None:
        """Flush and close what on_start opened (tasks are already cancelled)."""

    def http_app(self) -> Starlette:
        """The HTTP app; the default serves only health and metrics."""
        return Starlette(routes=self.health_routes())

    def health_payload(self) -> dict[str, Any]:
        """Extra fields for /healthz (role, shard, offsets, ...)."""
        return {}

    # ---- helpers ---------------------------------------------------------------
    def health_routes(self) -> list[Route]:
        async def healthz(_: Request) -> Response:
            # Liveness: 200 unless a background task failed (then the process is on its way out).
            body: dict[str, Any] = {"status": "ok", "state": self.state.value, "role": self.role,
                                    "node_id": self.node_id}
            if self.failure is not None:
                body.update(status="failed", failed_task=self.failure.task, error=str(self.failure))
                return JSONResponse(body, status_code=503)
            body.update(self.health_payload())
            return JSONResponse(body)

        async def readyz(_: Request) -> Response:
            ready = self.ready
            body: dict[str, Any] = {"ready": ready, "state": self.state.value}
            if self.failure is not None:
                body["failed_task"] = self.failure.task
            return JSONResponse(body, status_code=200 if ready else 503)

        async def metrics(_: Request) -> Response:
            return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

        return [Route("/healthz", healthz), Route("/readyz", readyz), Route("/metrics", metrics)]

    @property
    def ready(self) -> bool:
        """What ``/readyz`` answers: READY and no background task failed."""
        return self.state is ServiceState.READY and self.failure is None

    def set_ready(self, ready: bool = True) -> None:
        if self.failure is not None:
            return
        if self.state in (ServiceState.STARTING, ServiceState.READY):
            self.state = ServiceState.READY if ready else ServiceState.STARTING
            self.health.changed()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str, *, forever: bool = False) -> asyncio.Task[Any]:
        """Start a named background task owned by the service (cancelled on shutdown).

        Args:
            coro: the task's body.
            name: its name in logs and in the failure metric (``tail:data-0``, ``monitor``).
            forever: the task is a loop meant to run until cancelled, so returning
                is a failure too. Leave it False for a step that ends on its own
                (a warm-up or catch-up that calls :meth:`set_ready` and returns).

        A task that raises (anything but its own cancellation) is fatal to the
        service; see the module docstring.
        """
        task = asyncio.create_task(coro, name=f"{self.role}:{name}")
        self._tasks.add(task)

        def _done(t: asyncio.Task[Any]) -> None:
            self._tasks.discard(t)
            if t.cancelled() or self._shutdown_started:
                return
            exc = t.exception()
            if exc is not None:
                self._task_failed(name, "failed", exc)
            elif forever:
                self._task_failed(name, "returned though it is meant to run until shutdown", None)

        task.add_done_callback(_done)
        return task

    def _task_failed(self, name: str, reason: str, exc: BaseException | None) -> None:
        """A background task died: report it, stop being ready and live, shut down."""
        failure = BackgroundTaskFailed(self.role, name, reason)
        failure.__cause__ = exc
        log.error("background task %s of %s %s; shutting the service down", name, self.role, reason,
                  exc_info=exc, extra={"task": name, "node_id": self.node_id})
        BACKGROUND_TASK_FAILURES.labels(self.role, name).inc()
        if self.failure is not None:
            return  # the first failure is the one reported; the shutdown already runs
        self.failure = failure
        self._failed.set()
        self.health.changed()
        self._failure_shutdown = asyncio.get_running_loop().create_task(
            self.shutdown(), name=f"{self.role}:shutdown-after-failure")

    def _http_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self._shutdown_started:
            return
        exc = task.exception()
        self._task_failed("http", "failed" if exc is not None else "stopped serving", exc)

    async def wait_failed(self) -> BackgroundTaskFailed:
        """Wait until a background task fails; returns that failure."""
        await self._failed.wait()
        assert self.failure is not None
        return self.failure

    @property
    def grpc_address(self) -> str:
        return f"{self.settings.host}:{self.grpc_port}"

    @property
    def http_address(self) -> str:
        return f"{self.settings.host}:{self.http_port}"

    # ---- lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        server = grpc.aio.server(interceptors=[ErrorInterceptor()], options=GRPC_SERVER_OPTIONS)
        self.grpc_service_names = add_health_and_reflection(
            server, self.health, service_names_of(server, self.register))
        grpc_bind = f"{self.settings.host}:{self.settings.grpc_port}"
        if self.tls_server is None:
            self.grpc_port = server.add_insecure_port(grpc_bind)
        else:
            self.grpc_port = server.add_secure_port(grpc_bind, tls.server_credentials(self.tls_server))
        if self.grpc_port == 0:
            raise OSError(f"cannot bind gRPC port {self.settings.host}:{self.settings.grpc_port}")
        await server.start()
        self._grpc_server = server
        sock = bind_socket(self.settings.host, self.settings.http_port)
        self.http_port = sock.getsockname()[1]
        if not self.node_id:
            self.node_id = f"{self.role}-{self.grpc_port}"
        ssl_factory = None
        if self.tls_server is not None:
            https = self.https_context = tls.ReloadingSslContext(self.tls_server)
            ssl_factory = lambda _config, _default: https.context  # noqa: E731
            self.spawn(self._reload_tls(https), "tls-reload", forever=True)
        config = uvicorn.Config(self.http_app(), log_config=None, access_log=False, lifespan="off",
                                ssl_context_factory=ssl_factory)
        self._http_server = uvicorn.Server(config)
        self._http_task = asyncio.create_task(self._http_server.serve(sockets=[sock]), name="http")
        # The probes live on this server: if it ends on its own, nothing could report the
        # process as failed, so its end is a background-task failure like any other.
        self._http_task.add_done_callback(self._http_ended)
        log.info("listening", extra={"grpc": self.grpc_address, "http": self.http_address,
                                     "node_id": self.node_id, "tls": self.tls_server is not None})
        await self.on_start()

    async def _reload_tls(self, https: tls.ReloadingSslContext) -> None:
        """New HTTPS connections present the files' certificate within RELOAD_CHECK_S of a change
        (gRPC checks at each new connection by itself)."""
        while True:
            await asyncio.sleep(tls.RELOAD_CHECK_S)
            https.reload_if_changed()

    async def shutdown(self, grace: float = 5.0) -> None:
        """Stop serving, cancel background tasks, close resources. Idempotent."""
        if self._shutdown_started:
            await self._stopped.wait()
            return
        self._shutdown_started = True
        self.state = ServiceState.DRAINING
        self.health.drain()
        try:
            if self._grpc_server is not None:
                await self._grpc_server.stop(grace)
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=grace)
            await self.on_stop()
            if self._http_server is not None:
                self._http_server.should_exit = True
            if self._http_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._http_task, timeout=grace)
        finally:
            self.state = ServiceState.STOPPED
            self._stopped.set()

    async def run(self) -> None:
        """Start, serve until SIGTERM/SIGINT, shut down."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: asyncio.ensure_future(self.shutdown()))
        try:
            await self.start()
        except BaseException:
            await self.shutdown(grace=1.0)
            raise
        await self._stopped.wait()
        if self.failure is not None:
            raise self.failure


def run_service(service: Service) -> None:
    """Run ``service`` in this process until it stops; exit non-zero if a background task failed.

    On uvloop: its event loop costs less CPU per callback and per socket
    operation than asyncio's, which every request pays several times over
    (measured: see docs/performance.md).

    Exit codes: 0 after SIGTERM/SIGINT; :data:`EXIT_BACKGROUND_TASK_FAILED`
    after a background task failed, by force if the drain hangs.
    """
    try:
        uvloop.run(_serve(service))
    except BackgroundTaskFailed as exc:
        print(f"{exc}; exiting with code {EXIT_BACKGROUND_TASK_FAILED}", file=sys.stderr)
        sys.exit(EXIT_BACKGROUND_TASK_FAILED)


async def _serve(service: Service) -> None:
    running = asyncio.ensure_future(service.run())
    failed = asyncio.ensure_future(service.wait_failed())
    try:
        await asyncio.wait({running, failed}, return_when=asyncio.FIRST_COMPLETED)
        if failed.done() and not running.done():
            # The drain runs now; one that hangs (or a blocked event loop) must not keep a
            # dead process up: a thread ends it whatever the loop does.
            _exit_soon(EXIT_BACKGROUND_TASK_FAILED, FORCED_EXIT_AFTER_S)
        await running
    finally:
        failed.cancel()


def _exit_soon(code: int, delay_s: float) -> None:
    """End the process with ``code`` after ``delay_s`` seconds, even if the event loop is stuck."""
    timer = threading.Timer(delay_s, os._exit, args=(code,))
    timer.daemon = True
    timer.start()


def grpc_channel(address: str) -> grpc.aio.Channel:
    """An aio channel with Vecraft's message-size limits: TLS (mutual) when the process's
    service has ``--tls-ca`` (:func:`vecraft.shared.common.tls.configure_client`), else plaintext."""
    return tls.channel(address, CHANNEL_OPTIONS)
