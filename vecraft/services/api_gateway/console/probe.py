"""What the console's overview reads from the cluster behind the gateway, read-only.

:class:`ClusterProbe` is the interface; :class:`GrpcClusterProbe` implements it
over the services' own read-only RPCs:

- the journal's ``Stats``: every partition's head offset and HLC, and every
  replica's applied offset and lag (ops, bytes, ms) as the journal sees it;
- the meta manager's ``ListNodes``: the registered nodes (role, shards,
  replica, addresses, lease state, last heartbeat);
- each registered storage node's ``Status``: its applied offset and staleness
  per partition and its live and deleted records per collection;
- each registered query processor's ``/metrics`` (its HTTP address from the
  registry): the offset its cache applied, the head it heard of and its
  staleness per partition, and its cache hits and pull-before-read syncs. The
  journal knows only where a cache's push stream started (caches do not
  report what they applied), so this is the one true account of their lag.

A snapshot never fails as a whole: each source that does not answer in time is
reported by its error message beside the sources that did, so the console
still shows a cluster whose meta manager or one storage node is down.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
import time
from collections.abc import Collection
from typing import TYPE_CHECKING

import grpc
from prometheus_client.parser import text_string_to_metric_families

from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.shared.common import tls
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.common.grpc_errors import translate_rpc_error
from vecraft.shared.common.metrics import metric_name
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.rpc.v1 import journal_pb2, meta_pb2, storage_pb2, storage_pb2_grpc

if TYPE_CHECKING:
    # Imported where the console first reads a query node's metrics: httpx (with the CLI parts
    # it imports) is ~10 MiB of every gateway process that no console ever opens.
    import httpx

#: Budget of one snapshot: every source is asked in parallel under it.
DEFAULT_PROBE_TIMEOUT_S = 2.0
#: A snapshot this young is answered again, and callers that arrive while one is being taken wait
#: for it: any number of open consoles cost one round of calls per second at most.
SNAPSHOT_MAX_AGE_S = 1.0

#: The query processor's metrics read (vecraft/services/query_processor/metrics.py): cache gauges by
#: partition, and counters summed over their labels.
_APPLIED = metric_name("query", "applied_offset", "ops")
_HEAD = metric_name("query", "head_offset", "ops")
_STALENESS = metric_name("query", "cache_staleness", "ms")
_CACHE_GAUGES = (_APPLIED, _HEAD, _STALENESS)
_CACHE_HITS = metric_name("query", "cache_hits", "total")
_SYNC_PULLS = metric_name("query", "sync_pulls", "total")


@dataclasses.dataclass(frozen=True, slots=True)
class NodeStatus:
    """One storage node's ``Status`` answer, or why there is none."""

    node_id: str
    status: storage_pb2.NodeStatusResponse | None = None
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class CachePartition:
    """One partition of a query processor's cache, as the processor's metrics report it."""

    partition: str
    applied_offset: int
    head_offset: int
    staleness_ms: int


@dataclasses.dataclass(frozen=True, slots=True)
class QueryStatus:
    """One query processor's cache progress and counters from its ``/metrics``, or why there are none."""

    node_id: str
    partitions: list[CachePartition] = dataclasses.field(default_factory=list)
    cache_hits: int = 0
    sync_pulls: int = 0
    error: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterSnapshot:
    """The cluster at one moment, source by source; an ``*_error`` is set when that source failed."""

    journal: journal_pb2.StatsResponse | None = None
    journal_error: str | None = None
    nodes: list[meta_pb2.NodeInfo] = dataclasses.field(default_factory=list)
    nodes_error: str | None = None
    statuses: list[NodeStatus] = dataclasses.field(default_factory=list)
    queries: list[QueryStatus] = dataclasses.field(default_factory=list)


class ClusterProbe(abc.ABC):
    """A read-only view of the cluster for the console. Constructors only read config."""

    @abc.abstractmethod
    async def snapshot(self, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> ClusterSnapshot:
        """Ask every source in parallel, each within ``timeout_s``.

        Never raises for a source that is down or late: its error is in the
        snapshot instead. May be called concurrently.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Close channels; idempotent."""


class GrpcClusterProbe(ClusterProbe):
    """The probe over gRPC: the journal and meta manager by address, storage nodes as registered."""

    def __init__(self, *, journal_address: str, meta_address: str,
                 max_age_s: float = SNAPSHOT_MAX_AGE_S) -> None:
        self._journal = JournalClient(journal_address)
        self._meta = MetaClient(meta_address)
        self._max_age_s = max_age_s
        # Storage node address -> channel, opened on first use (channels bind to the running loop).
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._http_client: httpx.AsyncClient | None = None
        self._last: tuple[float, ClusterSnapshot] | None = None
        self._taking: asyncio.Future[ClusterSnapshot] | None = None

    async def snapshot(self, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> ClusterSnapshot:
        if self._last is not None and time.monotonic() - self._last[0] < self._max_age_s:
            return self._last[1]
        if self._taking is None:
            self._taking = asyncio.ensure_future(self._take(timeout_s))
            self._taking.add_done_callback(self._taken)
        # Shielded: a caller that goes away does not cancel the snapshot the others wait for.
        return await asyncio.shield(self._taking)

    def _taken(self, task: asyncio.Future[ClusterSnapshot]) -> None:
        self._taking = None
        if not task.cancelled() and task.exception() is None:
            self._last = (time.monotonic(), task.result())

    async def _take(self, timeout_s: float) -> ClusterSnapshot:
        stats_task = asyncio.ensure_future(self._journal.stats(timeout_s=timeout_s))
        try:
            nodes, nodes_error = await asyncio.wait_for(self._meta.list_nodes(), timeout_s), None
        except (VecraftError, TimeoutError) as exc:
            nodes, nodes_error = [], _message("meta manager", exc)
        storage = [n for n in nodes if n.role == "storage"]
        query = [n for n in nodes if n.role == "query"]
        if nodes_error is None:
            await self._close_channels(keep={n.address for n in storage})
        statuses, queries = await asyncio.gather(
            asyncio.gather(*(self._status(n, timeout_s) for n in storage)),
            asyncio.gather(*(self._query_status(n, timeout_s) for n in query)))
        try:
            stats, stats_error = await stats_task, None
        except VecraftError as exc:
            stats, stats_error = None, _message("journal", exc)
        return ClusterSnapshot(journal=stats, journal_error=stats_error, nodes=nodes,
                               nodes_error=nodes_error, statuses=list(statuses), queries=list(queries))

    async def _status(self, node: meta_pb2.NodeInfo, timeout_s: float) -> NodeStatus:
        if node.address not in self._channels:
            self._channels[node.address] = grpc_channel(node.address)
        stub = storage_pb2_grpc.StorageNodeServiceStub(self._channels[node.address])
        try:
            with translate_rpc_error():
                answer = await stub.Status(storage_pb2.NodeStatusRequest(), timeout=timeout_s)
        except VecraftError as exc:
            return NodeStatus(node.node_id, error=_message(f"storage node {node.node_id}", exc))
        return NodeStatus(node.node_id, status=answer)

    async def _query_status(self, node: meta_pb2.NodeInfo, timeout_s: float) -> QueryStatus:
        import httpx

        what = f"query processor {node.node_id}"
        if not node.http_address:
            return QueryStatus(node.node_id, error=f"{what}: no HTTP address registered")
        try:
            answer = await self._http().get(f"{tls.http_scheme()}://{node.http_address}/metrics",
                                            timeout=timeout_s)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            return QueryStatus(node.node_id, error=f"{what}: /metrics: {exc or type(exc).__name__}")
        return parse_query_metrics(node.node_id, answer.text)

    def _http(self) -> httpx.AsyncClient:
        import httpx

        if self._http_client is None:
            # Loopback and cluster-internal addresses: never through a proxy from the environment.
            self._http_client = httpx.AsyncClient(trust_env=False, verify=tls.httpx_verify())
        return self._http_client

    async def _close_channels(self, keep: Collection[str] = ()) -> None:
        """Close the channels of storage nodes no longer registered (a restarted node has a new port)."""
        for address in [a for a in self._channels if a not in keep]:
            await self._channels.pop(address).close()

    async def close(self) -> None:
        if self._http_client is not None:
            await self._http_client.aclose()
            self._http_client = None
        await self._journal.close()
        await self._meta.close()
        await self._close_channels()


def _message(what: str, exc: BaseException) -> str:
    text = exc.message if isinstance(exc, VecraftError) else "did not answer in time"
    return f"{what}: {text}"


def parse_query_metrics(node_id: str, text: str) -> QueryStatus:
    """A query processor's cache progress and counters from its Prometheus text exposition."""
    gauges: dict[str, dict[str, float]] = {}
    totals = {_CACHE_HITS: 0.0, _SYNC_PULLS: 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in _CACHE_GAUGES:
                gauges.setdefault(sample.labels.get("partition", ""), {})[sample.name] = sample.value
            elif sample.name in totals:
                totals[sample.name] += sample.value
    partitions = [CachePartition(partition=p, applied_offset=int(g.get(_APPLIED, 0)),
                                 head_offset=int(g.get(_HEAD, 0)), staleness_ms=int(g.get(_STALENESS, 0)))
                  for p, g in sorted(gauges.items())]
    return QueryStatus(node_id, partitions=partitions, cache_hits=int(totals[_CACHE_HITS]),
                       sync_pulls=int(totals[_SYNC_PULLS]))
