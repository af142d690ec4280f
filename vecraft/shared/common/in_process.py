"""Services running in this process, by the gRPC address they registered with the meta manager.

In standalone mode (:mod:`vecraft.local.standalone`) every service of a local
cluster runs in one process. Each still serves gRPC on its loopback port (for
tools, probes and the services that follow streams), but a caller on the hot
path that finds its callee here calls it directly: the same request and
response messages, no serialization, no socket, no second event-loop hop.
Routing is unchanged: the gateway still picks a node from the meta manager's
registry, then looks its address up here.

Three kinds of callee are served this way: a query node's search
(:class:`LocalSearch`), the call whose cost the transport dominated; a storage
node's search (:class:`LocalStorageSearch`), which a query node without a
cache of its own asks for every search; and the journal's reads
(:class:`LocalJournal`: the partition heads a strong read asks for, and the
pulls of every replica's sync), which were the difference between a strong and
an eventual search (measured in docs/performance.md).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from vecraft.shared.common.metrics import counter
from vecraft.shared.rpc.v1 import query_pb2, storage_pb2

_CALLS = counter("common", "in_process_calls", "calls answered by a service of this process without gRPC "
                 "(standalone mode), by method", ["method"])

#: Journal calls a client in this process may make directly (reads: any instance answers them,
#: so no partition ownership is involved).
LOCAL_JOURNAL_METHODS = frozenset({"GetOffset", "PullWAL"})


@runtime_checkable
class LocalSearch(Protocol):
    """A query node reachable in this process: ``QueryProcessorService.Search`` without gRPC."""

    async def search_in_process(self, request: query_pb2.QuerySearchRequest,
                                timeout_s: float | None) -> query_pb2.QuerySearchResponse:
        """Answer as ``Search`` would, raising VecraftErrors; ``timeout_s`` is the caller's deadline."""


@runtime_checkable
class LocalJournal(Protocol):
    """A journal instance reachable in this process."""

    async def journal_call(self, method: str, request: Any) -> Any:
        """The answer of ``JournalService.<method>`` (one of :data:`LOCAL_JOURNAL_METHODS`) to
        ``request``, raising VecraftErrors as the gRPC call would."""


@runtime_checkable
class LocalStorageSearch(Protocol):
    """A storage node reachable in this process: ``StorageNodeService.Search`` without gRPC."""

    async def storage_search_in_process(self, request: storage_pb2.ShardSearchRequest
                                        ) -> storage_pb2.ShardSearchResponse:
        """Answer as ``Search`` would, raising VecraftErrors; the deadline is ``request.timeout_ms``."""


# One table per kind of callee, filled at registration: the lookups on the hot path are
# dictionary reads (an isinstance check against a runtime Protocol costs microseconds).
_searches: dict[str, LocalSearch] = {}
_journals: dict[str, LocalJournal] = {}
_storage_searches: dict[str, LocalStorageSearch] = {}


def register(address: str, service: object) -> None:
    """``service`` answers at ``address`` (host:port) in this process."""
    unregister(address)
    if isinstance(service, LocalSearch):
        _searches[address] = service
    if isinstance(service, LocalJournal):
        _journals[address] = service
    if isinstance(service, LocalStorageSearch):
        _storage_searches[address] = service


def unregister(address: str) -> None:
    for table in (_searches, _journals, _storage_searches):
        table.pop(address, None)


def local_search(address: str) -> LocalSearch | None:
    """The query node at ``address`` if it runs in this process, else None."""
    service = _searches.get(address)
    if service is not None:
        _CALLS.labels("Search").inc()
    return service


def local_journal(address: str, method: str) -> LocalJournal | None:
    """The journal instance at ``address`` if it runs in this process and may answer ``method`` directly."""
    service = _journals.get(address) if method in LOCAL_JOURNAL_METHODS else None
    if service is not None:
        _CALLS.labels(method).inc()
    return service


def local_storage_search(address: str) -> LocalStorageSearch | None:
    """The storage node at ``address`` if it runs in this process, else None."""
    service = _storage_searches.get(address)
    if service is not None:
        _CALLS.labels("ShardSearch").inc()
    return service
