"""Standard gRPC health checking and server reflection, served by every Vecraft process.

:class:`ReadinessHealth` serves ``grpc.health.v1.Health`` over one readiness
condition, the one ``/readyz`` answers (:attr:`Service.ready
<vecraft.shared.common.service.Service.ready>`): the overall name ``""`` and
every service name the server exposes are ``SERVING`` exactly when it holds,
``NOT_SERVING`` otherwise (starting, a failed background task, a failed journal
partition, draining at shutdown). Any other name is ``NOT_FOUND`` to ``Check``
and ``SERVICE_UNKNOWN`` to ``Watch``, as the protocol says.

- ``Check`` evaluates the condition when it is asked, so it never disagrees
  with ``/readyz``.
- ``Watch`` sends the status at once and again whenever it changes: at once
  when the shell changes state (:meth:`ReadinessHealth.changed`), and within
  :data:`WATCH_POLL_S` for conditions a service adds to ``ready`` itself
  (the journal's failed partitions), which announce no event. At shutdown
  (:meth:`ReadinessHealth.drain`) every watch sends ``NOT_SERVING`` and ends,
  so the server's graceful stop does not wait its whole grace for them.

The library's ``grpc_health.v1.health.aio.HealthServicer`` is not used: its
``Watch`` writes through ``context.write`` and returns nothing, which the
shell's error interceptor (it iterates server-streaming handlers) cannot wrap;
and it holds a status per name that each service would have to keep in step
with ``/readyz``, where here there is one condition and nothing to keep.

:func:`service_names_of` learns which services a ``register`` hook added;
:func:`add_health_and_reflection` serves both on a server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import SERVICE_NAME as HEALTH_SERVICE_NAME
from grpc_reflection.v1alpha import reflection

__all__ = ["HEALTH_SERVICE_NAME", "REFLECTION_SERVICE_NAME", "WATCH_POLL_S", "ReadinessHealth",
           "add_health_and_reflection", "service_names_of"]

REFLECTION_SERVICE_NAME: str = reflection.SERVICE_NAME
#: Longest a Watch takes to notice a readiness change that the shell was not told about.
WATCH_POLL_S = 0.5

_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_UNKNOWN = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN


class ReadinessHealth(health_pb2_grpc.HealthServicer):
    """``grpc.health.v1.Health``: every known name is SERVING exactly when ``ready()`` is true.

    Args:
        ready: the readiness condition (cheap, called on every Check and each Watch wake-up).
        poll_s: how often an open Watch re-evaluates ``ready()`` without being told of a change.
    """

    def __init__(self, ready: Callable[[], bool], *, poll_s: float = WATCH_POLL_S) -> None:
        self._ready = ready
        self._poll_s = poll_s
        self._names: frozenset[str] = frozenset({""})
        # Replaced on every change: a watcher waits on the event current when it looked.
        self._changed = asyncio.Event()
        self._draining = False

    def set_service_names(self, names: Iterable[str]) -> None:
        """The names besides ``""`` that report the server's readiness (the services it exposes)."""
        self._names = frozenset({"", *names})

    @property
    def service_names(self) -> frozenset[str]:
        return self._names

    def status(self, service: str = "") -> health_pb2.HealthCheckResponse.ServingStatus.ValueType:
        """What Check answers for ``service`` (SERVICE_UNKNOWN for a name this server does not have)."""
        if service not in self._names:
            return _UNKNOWN
        return _SERVING if not self._draining and self._ready() else _NOT_SERVING

    def changed(self) -> None:
        """The readiness may have changed: every Watch re-evaluates it now."""
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    def drain(self) -> None:
        """Shutdown began: NOT_SERVING from now on; every Watch sends it and ends."""
        self._draining = True
        self.changed()

    async def Check(self, request: health_pb2.HealthCheckRequest,  # noqa: N802 - gRPC method name
                    context: grpc.aio.ServicerContext) -> health_pb2.HealthCheckResponse:
        if request.service not in self._names:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return health_pb2.HealthCheckResponse(status=self.status(request.service))

    async def Watch(self, request: health_pb2.HealthCheckRequest,  # noqa: N802 - gRPC method name
                    context: grpc.aio.ServicerContext) -> AsyncIterator[health_pb2.HealthCheckResponse]:
        last: int | None = None
        while True:
            event = self._changed
            status = self.status(request.service)
            if status != last:
                yield health_pb2.HealthCheckResponse(status=status)
                last = status
            if self._draining:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), self._poll_s)


class _RecordingServer:
    """Forwards to a ``grpc.aio.Server`` and records the name of each service added to it."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server
        self.names: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        for handler in handlers:
            if isinstance(handler, grpc.ServiceRpcHandler) and handler.service_name() not in self.names:
                self.names.append(handler.service_name())
        self._server.add_generic_rpc_handlers(handlers)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


def service_names_of(server: grpc.aio.Server, register: Callable[[grpc.aio.Server], None]) -> list[str]:
    """Call ``register(server)``; the fully qualified names of the services it added, in order.

    Every generated ``add_<Service>Servicer_to_server`` adds one ``grpc.ServiceRpcHandler`` naming
    its service, so the names come from what was registered, never from a list kept beside it.
    """
    recorder = _RecordingServer(server)
    register(cast(grpc.aio.Server, recorder))
    return recorder.names


def add_health_and_reflection(server: grpc.aio.Server, health: ReadinessHealth,
                              service_names: Iterable[str]) -> list[str]:
    """Serve ``health`` and server reflection on ``server`` beside ``service_names``.

    Returns every service name reflection lists: ``service_names``, the health service and
    reflection itself.
    """
    names = list(service_names)
    health.set_service_names(names)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    listed = sorted({*names, HEALTH_SERVICE_NAME, REFLECTION_SERVICE_NAME})
    reflection.enable_server_reflection(listed, server)
    return listed
