""":class:`Downstream` over gRPC: the meta manager, the journal and the shard services.

Every RPC goes through :meth:`GrpcDownstream._call`, the one place where
transport errors become VecraftErrors, named after the node that failed
("query node query-1 at 127.0.0.1:7001 (shards 0, 2) is unavailable: ..."), so
a 503 tells the operator where to look.

No shard service address is configured: the gateway follows the meta
manager's node registry and placement map (:mod:`.registry`) and routes from
that table (:mod:`.query_routing`, :mod:`.shard_calls`): one QuerySearch per
query node per search, naming every shard it serves for the search; storage
reads go to a live replica of their shard. Channels are opened to the
addresses nodes registered and closed once no node of the table has them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import TypeVar

import grpc

from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.services.api_gateway.downstream import SNAPSHOT_END, Downstream, SearchPart
from vecraft.services.api_gateway.query_routing import Node, Route, RoutingTable, ShardRouter
from vecraft.services.api_gateway.registry import NodeRegistry
from vecraft.services.api_gateway.shard_calls import ShardCalls, shard_list
from vecraft.shared.common import in_process, tls
from vecraft.shared.common.errors import DeadlineExceeded, NotFound, Unavailable
from vecraft.shared.common.grpc_errors import translate_rpc_error
from vecraft.shared.common.metrics import counter
from vecraft.shared.common.service import CHANNEL_OPTIONS
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.convert import schema_from_proto
from vecraft.shared.rpc.v1 import (
    collection_pb2,
    journal_pb2,
    meta_pb2,
    query_pb2,
    query_pb2_grpc,
    storage_pb2,
    storage_pb2_grpc,
)

T = TypeVar("T")

#: Deadline of meta manager calls; DDL waits for storage replicas to create the collection.
META_TIMEOUT_S = 30.0
#: Deadline of meta manager reads (a schema cache miss on the data path, catalog reads, the
#: check before a DDL): a meta manager that does not answer (stopped, hung) fails the request
#: with 503 after this, not after META_TIMEOUT_S.
META_LOOKUP_TIMEOUT_S = 3.0



_QUERY_CALLS = counter("gateway", "query_calls", "QuerySearch calls to query nodes by transport: in_process "
                       "(the node runs in the gateway's process, standalone mode) or grpc", ["transport"])

#: Seconds in-flight calls on a channel get to finish once its node left the routing table.
_CHANNEL_CLOSE_GRACE_S = 10.0


class GrpcDownstream(Downstream):
    """The real cluster behind the gateway."""

    def __init__(self, *, journal_address: str, meta_address: str, data_partitions: int,
                 router: ShardRouter | None = None) -> None:
        self.data_partitions = data_partitions
        self._journal_address = journal_address
        self._meta_address = meta_address
        self._journal: JournalClient | None = None
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._closing: set[asyncio.Task[None]] = set()
        self._meta: MetaClient | None = None
        self._query: dict[str, query_pb2_grpc.QueryProcessorServiceStub] = {}
        self._storage: dict[str, storage_pb2_grpc.StorageNodeServiceStub] = {}
        self.router = router or ShardRouter()
        self.registry = NodeRegistry(self._watch_registry, on_registered=self.router.mark_up,
                                     on_table=self._prune_channels)
        self._calls = ShardCalls(lambda: self.registry.table, self.router, forget=self.registry.forget)

    async def start(self) -> None:
        # Channels connect lazily; creating them here binds them to the running loop.
        self._journal = JournalClient(self._journal_address)
        self._meta = MetaClient(self._meta_address)

    async def stop(self) -> None:
        if self._meta is not None:
            await self._meta.close()
            self._meta = None
        if self._journal is not None:
            await self._journal.close()
            self._journal = None
        channels, self._channels = list(self._channels.values()), {}
        self._query.clear()
        self._storage.clear()
        for channel in channels:
            await channel.close()
        closing, self._closing = list(self._closing), set()
        for task in closing:
            task.cancel()
        await asyncio.gather(*closing, return_exceptions=True)

    def _channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            self._channels[address] = tls.channel(address, CHANNEL_OPTIONS)  # TLS with --tls-ca
        return self._channels[address]

    def _query_stub(self, address: str) -> query_pb2_grpc.QueryProcessorServiceStub:
        stub = self._query.get(address)
        if stub is None:
            stub = self._query[address] = query_pb2_grpc.QueryProcessorServiceStub(self._channel(address))
        return stub

    def _storage_stub(self, address: str) -> storage_pb2_grpc.StorageNodeServiceStub:
        stub = self._storage.get(address)
        if stub is None:
            stub = self._storage[address] = storage_pb2_grpc.StorageNodeServiceStub(self._channel(address))
        return stub

    def _prune_channels(self, table: RoutingTable) -> None:
        """Close the channels of addresses no node of ``table`` has any more (a node that left,
        or restarted elsewhere), after a grace period for calls in flight."""
        keep = table.addresses()
        for address in [a for a in self._channels if a not in keep]:
            channel = self._channels.pop(address)
            self._query.pop(address, None)
            self._storage.pop(address, None)
            task = asyncio.get_running_loop().create_task(channel.close(grace=_CHANNEL_CLOSE_GRACE_S),
                                                          name=f"gateway:close-channel:{address}")
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    @property
    def _meta_client(self) -> MetaClient:
        if self._meta is None:
            raise Unavailable("the gateway is not connected yet")
        return self._meta

    @property
    def _journal_client(self) -> JournalClient:
        if self._journal is None:
            raise Unavailable("the gateway is not connected yet")
        return self._journal

    @staticmethod
    async def _call(what: str, call: Awaitable[T]) -> T:
        """Await one RPC; errors become the VecraftError the service raised, naming ``what``."""
        with translate_rpc_error(what):
            return await call

    # --- meta manager ------------------------------------------------------------------------------

    async def _meta_preflight(self, tenant: str, name: str, verb: str) -> None:
        """Before a DDL: check within META_LOOKUP_TIMEOUT_S that the meta manager answers.

        A stopped or hung meta manager keeps its connections open, so a DDL sent to
        it would wait out META_TIMEOUT_S and answer 504 "may or may not have
        happened". Asked first, it fails the DDL at once with 503, nothing sent.
        """
        try:
            await self.get_collection(tenant, name)
        except NotFound:
            pass
        except (Unavailable, DeadlineExceeded) as exc:
            service = self._meta_client.service
            raise Unavailable(f"cannot {verb} collection {name!r}: DDL needs the {service}, which "
                              f"did not answer ({exc.message}); nothing was changed, retry once it is back",
                              details={"service": service}) from exc

    async def create_collection(self, request: collection_pb2.CreateCollectionRequest) -> CollectionSchema:
        await self._meta_preflight(request.tenant, request.name, "create")
        answer = await self._meta_client.create_collection(
            request.name, request.dim, tenant=request.tenant, metric=request.metric, shards=request.shards,
            replicas=request.replicas, hnsw=request.hnsw if request.HasField("hnsw") else None,
            if_not_exists=request.if_not_exists, request_id=request.request_id, timeout_s=META_TIMEOUT_S)
        return schema_from_proto(answer)

    async def get_collection(self, tenant: str, name: str) -> CollectionSchema:
        answer = await self._meta_client.get_collection(name, tenant=tenant, timeout_s=META_LOOKUP_TIMEOUT_S)
        return schema_from_proto(answer)

    async def list_collections(self, tenant: str) -> list[CollectionSchema]:
        answer = await self._meta_client.list_collections(tenant=tenant, timeout_s=META_LOOKUP_TIMEOUT_S)
        return [schema_from_proto(c) for c in answer]

    async def drop_collection(self, request: collection_pb2.DropCollectionRequest
                              ) -> collection_pb2.DropCollectionResponse:
        await self._meta_preflight(request.tenant, request.name, "drop")
        return await self._meta_client.drop_collection(
            request.name, tenant=request.tenant, request_id=request.request_id, timeout_s=META_TIMEOUT_S)

    async def alter_collection(self, request: collection_pb2.AlterCollectionRequest) -> CollectionSchema:
        await self._meta_preflight(request.tenant, request.name, "alter")
        answer = await self._meta_client.alter_collection(
            request.name, ef_search=request.hnsw.ef_search, tenant=request.tenant,
            request_id=request.request_id, timeout_s=META_TIMEOUT_S)
        return schema_from_proto(answer)

    async def watch_collections(self) -> AsyncIterator[tuple[int, CollectionSchema | None]]:
        async for event in self._meta_client.watch(["collections"], snapshot_end=True):
            item = event.WhichOneof("item")
            if item == "collection":
                yield event.type, schema_from_proto(event.collection)
            elif item is None and event.type == SNAPSHOT_END:
                yield SNAPSHOT_END, None

    # --- journal (JournalClient already raises VecraftErrors) ---------------------------------------
    async def append(self, partition: str, payload: bytes, *, request_id: str, shards: Sequence[int],
                     ack: int, client_hlc: int) -> journal_pb2.AppendResponse:
        return await self._journal_client.append(partition, payload, request_id=request_id, shards=shards,
                                                 ack=ack, client_hlc=client_hlc)

    async def head(self, partition: str) -> tuple[int, int]:
        return await self._journal_client.get_offset(partition)

    async def lookup_request(self, request_id: str) -> journal_pb2.LookupRequestResponse:
        return await self._journal_client.lookup_request(request_id)

    async def pull(self, partition: str, from_offset: int, to_offset: int,
                   max_entries: int) -> journal_pb2.PullWALResponse:
        return await self._journal_client.pull_page(partition, from_offset, to_offset,
                                                    max_entries=max_entries)

    # --- shards ------------------------------------------------------------------------------------
    async def _watch_registry(self) -> AsyncIterator[meta_pb2.WatchEvent]:
        async for event in self._meta_client.watch(["nodes", "placement"], snapshot_end=True):
            yield event

    async def follow_registry(self) -> None:
        await self.registry.run()

    async def wait_routable(self) -> None:
        await self.registry.wait_ready()

    def routing_health(self) -> dict[str, object]:
        return self.registry.describe()

    @property
    def shard_groups(self) -> int:
        return self.registry.table.shard_count

    async def search(self, shards: Sequence[int], request: query_pb2.QuerySearchRequest, deadline: float,
                     *, affinity: str | None = None) -> list[SearchPart]:
        return await self._calls.search(shards, request, deadline, affinity, self._query_call)

    async def _query_call(self, route: Route, request: query_pb2.QuerySearchRequest,
                          timeout_s: float) -> query_pb2.QuerySearchResponse:
        node = route.node
        local = in_process.local_search(node.address)
        if local is not None:
            # Standalone mode: the node runs in this process; the same call without gRPC.
            _QUERY_CALLS.labels("in_process").inc()
            return await local.search_in_process(request, timeout_s)
        _QUERY_CALLS.labels("grpc").inc()
        what = f"query node {node.node_id} at {node.address} ({shard_list(route.shards)})"
        return await self._call(what, self._query_stub(node.address).Search(request, timeout=timeout_s))

    async def get_records(self, shard: int, request: storage_pb2.ShardGetRequest,
                          timeout_s: float) -> storage_pb2.ShardGetResponse:
        async def get(node: Node, remaining: float) -> storage_pb2.ShardGetResponse:
            return await self._call(_storage_name(node, shard),
                                    self._storage_stub(node.address).Get(request, timeout=remaining))

        return await self._calls.storage(shard, timeout_s, get)

    async def scan_records(self, shard: int, request: storage_pb2.ShardScanRequest,
                           timeout_s: float) -> storage_pb2.ShardScanResponse:
        async def scan(node: Node, remaining: float) -> storage_pb2.ShardScanResponse:
            return await self._call(_storage_name(node, shard),
                                    self._storage_stub(node.address).Scan(request, timeout=remaining))

        return await self._calls.storage(shard, timeout_s, scan)


def _storage_name(node: Node, shard: int) -> str:
    return f"storage node {node.node_id} at {node.address} (shard {shard})"


