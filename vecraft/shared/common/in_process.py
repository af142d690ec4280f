"""Services running in this process, by the gRPC address they registered with the meta manager.

In standalone mode (:mod:`vecraft.local.standalone`) every service of a local
cluster runs in one process. Each still serves gRPC on its loopback port (for
tools, probes and the services that follow streams), but a caller on the hot
path that finds its callee here calls it directly: the same request and
response messages, no serialization, no socket, no second event-loop hop.
Routing is unchanged: the gateway still picks a node from the meta manager's
registry, then looks its address up here.

Only :class:`LocalSearch` is served this way today: a search is the one call
whose cost is dominated by the transport (measured in docs/performance.md).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vecraft.shared.rpc.v1 import query_pb2


@runtime_checkable
class LocalSearch(Protocol):
    """A query node reachable in this process: ``QueryProcessorService.Search`` without gRPC."""

    async def search_in_process(self, request: query_pb2.QuerySearchRequest,
                                timeout_s: float | None) -> query_pb2.QuerySearchResponse:
        """Answer as ``Search`` would, raising VecraftErrors; ``timeout_s`` is the caller's deadline."""


_services: dict[str, object] = {}


def register(address: str, service: object) -> None:
    """``service`` answers at ``address`` (host:port) in this process."""
    _services[address] = service


def unregister(address: str) -> None:
    _services.pop(address, None)


def local_search(address: str) -> LocalSearch | None:
    """The query node at ``address`` if it runs in this process, else None."""
    service = _services.get(address)
    return service if isinstance(service, LocalSearch) else None
