""":class:`Downstream` over gRPC: the meta manager, the journal and the shard services.

Every RPC goes through :meth:`GrpcDownstream._call`, the one place where
transport errors become VecraftErrors, named after the service that failed
("query processor for shard 2 at 127.0.0.1:7001 is unavailable: ..."), so a
503 tells the operator where to look.

Shard addresses come from the command line (``--query-addresses 0=HOST:PORT``,
``--storage-addresses 0=HOST:PORT 0=HOST:PORT2 ...``). Several shards served
by one query processor share one call. A shard may list several query
processors (``0=A 0=B``): searches are spread round-robin over them, or pinned
to one by the session's affinity key, and retried once on another processor
when the chosen one is unavailable (:mod:`.query_routing`). Reads by id try
the replicas of a shard in order, starting with the one that answered last,
and move on when one is unavailable.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import grpc

from vecraft.services.api_gateway.downstream import SNAPSHOT_END, Downstream
from vecraft.services.api_gateway.query_routing import ROUTES, QueryRouter
from vecraft.services.journal_service.client import JournalClient
from vecraft.shared.common.errors import DeadlineExceeded, NotFound, Unavailable, VecraftError
from vecraft.shared.common.grpc_errors import ERROR_KEY, from_rpc_error
from vecraft.shared.common.service import GRPC_OPTIONS
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.v1 import (
    collection_pb2,
    journal_pb2,
    meta_pb2,
    meta_pb2_grpc,
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

#: A restarted shard service is used again within about a second: gRPC's default reconnect
#: backoff grows to two minutes, during which every search of that shard would fail fast.
_CHANNEL_OPTIONS = [*GRPC_OPTIONS, ("grpc.initial_reconnect_backoff_ms", 100),
                    ("grpc.min_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 1000)]


def parse_shard_addresses(items: Sequence[str], flag: str) -> dict[int, list[str]]:
    """``["0=h:p", "0=h:q", "1=h:r"]`` -> ``{0: ["h:p", "h:q"], 1: ["h:r"]}``.

    Raises:
        ValueError: an item is not ``SHARD=HOST:PORT`` (reported at start-up).
    """
    out: dict[int, list[str]] = {}
    for item in items:
        shard, sep, address = item.partition("=")
        if not sep or not shard.strip().isdigit() or ":" not in address:
            raise ValueError(f"{flag}: {item!r} is not SHARD=HOST:PORT")
        out.setdefault(int(shard), []).append(address.strip())
    return out


class GrpcDownstream(Downstream):
    """The real cluster behind the gateway."""

    def __init__(self, *, journal_address: str, meta_address: str,
                 query_addresses: Mapping[int, Sequence[str]],
                 storage_addresses: Mapping[int, Sequence[str]], data_partitions: int) -> None:
        self.data_partitions = data_partitions
        self._journal_address = journal_address
        self._meta_address = meta_address
        self._query_addresses = {s: list(a) for s, a in query_addresses.items()}
        self._storage_addresses = {s: list(a) for s, a in storage_addresses.items()}
        self._journal: JournalClient | None = None
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._meta: meta_pb2_grpc.MetaManagerServiceStub | None = None
        self._query: dict[str, query_pb2_grpc.QueryProcessorServiceStub] = {}
        self._storage: dict[str, storage_pb2_grpc.StorageNodeServiceStub] = {}
        # Index of the storage replica of each shard that answered last.
        self._preferred: dict[int, int] = {}
        self.router = QueryRouter()

    async def start(self) -> None:
        # Channels connect lazily; creating them here binds them to the running loop.
        self._journal = JournalClient(self._journal_address)
        self._meta = meta_pb2_grpc.MetaManagerServiceStub(self._channel(self._meta_address))
        for addresses in self._query_addresses.values():
            for address in addresses:
                self._query[address] = query_pb2_grpc.QueryProcessorServiceStub(self._channel(address))
        for addresses in self._storage_addresses.values():
            for address in addresses:
                self._storage[address] = storage_pb2_grpc.StorageNodeServiceStub(self._channel(address))

    async def stop(self) -> None:
        if self._journal is not None:
            await self._journal.close()
            self._journal = None
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    def _channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            self._channels[address] = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
        return self._channels[address]

    @property
    def _meta_stub(self) -> meta_pb2_grpc.MetaManagerServiceStub:
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
        try:
            return await call
        except grpc.RpcError as exc:
            err = from_rpc_error(exc)
            if type(err) in (Unavailable, DeadlineExceeded) and not _is_vecraft_error(exc):
                # A transport failure: say which service could not be reached.
                err = type(err)(f"{what} {'is unavailable' if isinstance(err, Unavailable) else 'timed out'}"
                                f": {exc.details() or exc.code().name}", details={"service": what})
            raise err from exc

    # --- meta manager ------------------------------------------------------------------------------
    @property
    def _meta_name(self) -> str:
        return f"meta manager at {self._meta_address}"

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
            raise Unavailable(f"cannot {verb} collection {name!r}: DDL needs the {self._meta_name}, which "
                              f"did not answer ({exc.message}); nothing was changed, retry once it is back",
                              details={"service": self._meta_name}) from exc

    async def create_collection(self, request: collection_pb2.CreateCollectionRequest) -> CollectionSchema:
        await self._meta_preflight(request.tenant, request.name, "create")
        answer = await self._call(self._meta_name,
                                  self._meta_stub.CreateCollection(request, timeout=META_TIMEOUT_S))
        return CollectionSchema.from_proto(answer)

    async def get_collection(self, tenant: str, name: str) -> CollectionSchema:
        answer = await self._call(self._meta_name, self._meta_stub.GetCollection(
            collection_pb2.GetCollectionRequest(tenant=tenant, name=name), timeout=META_LOOKUP_TIMEOUT_S))
        return CollectionSchema.from_proto(answer)

    async def list_collections(self, tenant: str) -> list[CollectionSchema]:
        answer = await self._call(self._meta_name, self._meta_stub.ListCollections(
            collection_pb2.ListCollectionsRequest(tenant=tenant), timeout=META_LOOKUP_TIMEOUT_S))
        return [CollectionSchema.from_proto(c) for c in answer.collections]

    async def drop_collection(self, request: collection_pb2.DropCollectionRequest
                              ) -> collection_pb2.DropCollectionResponse:
        await self._meta_preflight(request.tenant, request.name, "drop")
        return await self._call(self._meta_name,
                                self._meta_stub.DropCollection(request, timeout=META_TIMEOUT_S))

    async def alter_collection(self, request: collection_pb2.AlterCollectionRequest) -> CollectionSchema:
        await self._meta_preflight(request.tenant, request.name, "alter")
        answer = await self._call(self._meta_name,
                                  self._meta_stub.AlterCollection(request, timeout=META_TIMEOUT_S))
        return CollectionSchema.from_proto(answer)

    async def watch_collections(self) -> AsyncIterator[tuple[int, CollectionSchema | None]]:
        call = self._meta_stub.Watch(meta_pb2.WatchRequest(topics=["collections"]))
        try:
            async for event in call:
                item = event.WhichOneof("item")
                if item == "collection":
                    yield event.type, CollectionSchema.from_proto(event.collection)
                elif item is None and event.type == SNAPSHOT_END:
                    yield SNAPSHOT_END, None
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()

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
    @property
    def shard_groups(self) -> int:
        n = 0
        while self._query_addresses.get(n):
            n += 1
        return n

    def query_groups(self, shards: Sequence[int]) -> list[list[int]]:
        groups: dict[tuple[str, ...], list[int]] = {}
        for shard in shards:
            addresses = self._query_addresses.get(shard)
            if not addresses:
                raise Unavailable(f"no query processor serves shard {shard}; the gateway knows shards "
                                  f"{sorted(self._query_addresses)}", details={"shard": shard})
            groups.setdefault(tuple(addresses), []).append(shard)
        return list(groups.values())

    async def search(self, shards: Sequence[int], request: query_pb2.QuerySearchRequest,
                     timeout_s: float, *, affinity: str | None = None) -> query_pb2.QuerySearchResponse:
        names = ",".join(map(str, shards))
        started = time.monotonic()
        # The chosen processor, then (once) another one if it is unavailable.
        attempts = self.router.plan(self._query_addresses[shards[0]], affinity)[:2]
        last_error: Unavailable | None = None
        for i, (address, reason) in enumerate(attempts):
            remaining = timeout_s - (time.monotonic() - started)
            if i and remaining <= 0.05:
                break
            ROUTES.labels(names, address, reason).inc()
            if i:
                retry = query_pb2.QuerySearchRequest()
                retry.CopyFrom(request)
                retry.timeout_ms = max(1, min(request.timeout_ms, int(remaining * 1000) - 50))
                request = retry
            try:
                answer = await self._call(f"query processor for shard {names} at {address}",
                                          self._query[address].Search(request, timeout=remaining))
            except Unavailable as exc:
                self.router.mark_down(address)
                last_error = exc
                continue
            self.router.mark_up(address)
            return answer
        assert last_error is not None
        raise last_error

    async def get_records(self, shard: int, request: storage_pb2.ShardGetRequest,
                          timeout_s: float) -> storage_pb2.ShardGetResponse:
        return await self._storage_call(shard, lambda stub: stub.Get(request, timeout=timeout_s))

    async def scan_records(self, shard: int, request: storage_pb2.ShardScanRequest,
                           timeout_s: float) -> storage_pb2.ShardScanResponse:
        return await self._storage_call(shard, lambda stub: stub.Scan(request, timeout=timeout_s))

    async def _storage_call(self, shard: int,
                            call: Callable[[storage_pb2_grpc.StorageNodeServiceStub], Awaitable[T]]) -> T:
        """``call`` on the replica of ``shard`` that answered last, then on the others in turn
        while they are unavailable."""
        addresses = self._storage_addresses.get(shard)
        if not addresses:
            raise Unavailable(f"no storage replica serves shard {shard}", details={"shard": shard})
        first = self._preferred.get(shard, 0)
        last_error: VecraftError | None = None
        for i in range(len(addresses)):
            index = (first + i) % len(addresses)
            address = addresses[index]
            try:
                answer = await self._call(f"storage replica of shard {shard} at {address}",
                                          call(self._storage[address]))
            except Unavailable as exc:
                last_error = exc
                continue
            self._preferred[shard] = index
            return answer
        assert last_error is not None
        raise last_error


def _is_vecraft_error(exc: grpc.RpcError) -> bool:
    """True when the server raised the error on purpose (it carries Vecraft's metadata)."""
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return any(key == ERROR_KEY for key, _ in trailing or ())
