"""What the gateway needs from the rest of the cluster, as one interface.

:class:`Downstream` is the gateway's only door to other services: the meta
manager (schemas, DDL, change stream), the journal (append, head, lookup,
pull) and the query nodes and storage nodes serving each shard, found in the
meta manager's node registry. The domain layer (:mod:`.gateway`) is written
against it; :class:`~.downstream_grpc.GrpcDownstream` implements it over gRPC
and the unit tests inject an in-memory fake.

Contract for every method: failures are raised as the
:class:`~vecraft.shared.common.errors.VecraftError` subclass the downstream
service raised (``NotFound``, ``Conflict``, ``RateLimited``, ...), transport
failures as ``Unavailable`` (503) and expired deadlines as
``DeadlineExceeded`` (504); never a raw ``grpc.RpcError``.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.v1 import (
    collection_pb2,
    journal_pb2,
    meta_pb2,
    query_pb2,
    storage_pb2,
)


@dataclass(frozen=True, slots=True)
class SearchPart:
    """What one query node answered for ``shards`` of a search: its answer or its error."""

    shards: tuple[int, ...]
    answer: query_pb2.QuerySearchResponse | None = None
    error: BaseException | None = None


class Downstream(abc.ABC):
    """The services behind the gateway. Constructors only read config; ``start`` connects."""

    #: Number of journal data partitions (``data-0`` .. ``data-{P-1}``).
    data_partitions: int

    @property
    @abc.abstractmethod
    def shard_groups(self) -> int:
        """Shards ``0 .. n-1`` the cluster has: the placement map's shards when one exists, else
        the highest shard a registered node serves + 1. Collections may have at most this many."""

    async def start(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Open channels (lazy connections are fine)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Close channels; idempotent."""

    # --- meta manager ------------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_collection(self, request: collection_pb2.CreateCollectionRequest) -> CollectionSchema:
        """Create a collection (ordered through the journal's system partition).

        Raises ``Conflict`` when it exists (unless ``if_not_exists`` and it
        matches), ``InvalidRequest`` on a bad schema.
        """

    @abc.abstractmethod
    async def get_collection(self, tenant: str, name: str) -> CollectionSchema:
        """The current schema; ``NotFound`` when there is no such collection."""

    @abc.abstractmethod
    async def list_collections(self, tenant: str) -> list[CollectionSchema]:
        """Every collection of ``tenant``, by name."""

    @abc.abstractmethod
    async def drop_collection(self, request: collection_pb2.DropCollectionRequest
                              ) -> collection_pb2.DropCollectionResponse:
        """Drop a collection; ``NotFound`` when missing."""

    @abc.abstractmethod
    async def alter_collection(self, request: collection_pb2.AlterCollectionRequest) -> CollectionSchema:
        """Change search-time parameters; ``NotFound`` when missing."""

    @abc.abstractmethod
    def watch_collections(self) -> AsyncIterator[tuple[int, CollectionSchema | None]]:
        """Collection events: a snapshot of every collection as ``(PUT, schema)``, then
        ``(SNAPSHOT_END, None)``, then every change as ``(PUT | DELETE, schema)``.

        The stream ends (or raises ``Unavailable``) when the meta manager goes
        away; the caller reconnects and must assume it missed events meanwhile
        (the new stream's snapshot tells the whole current state).
        """

    # --- journal -----------------------------------------------------------------------------------
    @abc.abstractmethod
    async def append(self, partition: str, payload: bytes, *, request_id: str, shards: Sequence[int],
                     ack: int, client_hlc: int) -> journal_pb2.AppendResponse:
        """Append one entry; idempotent by ``request_id`` (a retry gets the original position).

        Raises ``RateLimited`` (with ``retry_after_ms``) under back-pressure.
        """

    @abc.abstractmethod
    async def head(self, partition: str) -> tuple[int, int]:
        """``(offset, hlc)`` of the latest committed entry of ``partition`` (0, 0 when empty)."""

    @abc.abstractmethod
    async def lookup_request(self, request_id: str) -> journal_pb2.LookupRequestResponse:
        """Position of an earlier request (``found`` False when unknown)."""

    @abc.abstractmethod
    async def pull(self, partition: str, from_offset: int, to_offset: int,
                   max_entries: int) -> journal_pb2.PullWALResponse:
        """Committed entries ``from_offset <= offset <= to_offset`` (at most ``max_entries``)."""

    # --- shards ------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def follow_registry(self) -> None:
        """Keep the routing table current until cancelled (the gateway runs it as a background
        task); rides out meta manager outages with the last table, never returns."""

    @abc.abstractmethod
    async def wait_routable(self) -> None:
        """Return once the routing table holds a first snapshot of the registry."""

    @abc.abstractmethod
    def routing_health(self) -> dict[str, object]:
        """The routing table for ``/healthz``: per shard its query and storage nodes."""

    @abc.abstractmethod
    async def search(self, shards: Sequence[int], request: query_pb2.QuerySearchRequest, deadline: float,
                     *, affinity: str | None = None) -> list[SearchPart]:
        """Search ``shards`` with one QuerySearch per query node, as few nodes as cover them.

        ``request`` is the template of every call (``shards`` and ``timeout_ms`` are set per
        call, within ``deadline``, a ``time.monotonic()`` instant). ``affinity`` (a
        read-your-writes session's key) picks the same nodes for every read of the session;
        without it reads are spread. Shards of a node that fails with ``Unavailable`` are
        retried on other nodes serving them while time remains.

        Never raises for a shard's failure: the parts cover ``shards`` exactly once, each with
        its answer or its error (``Unavailable`` naming the shards no live node serves).
        """

    @abc.abstractmethod
    async def get_records(self, shard: int, request: storage_pb2.ShardGetRequest,
                          timeout_s: float) -> storage_pb2.ShardGetResponse:
        """Records by id from a live storage replica of ``shard`` (the next replica on failure)."""

    @abc.abstractmethod
    async def scan_records(self, shard: int, request: storage_pb2.ShardScanRequest,
                           timeout_s: float) -> storage_pb2.ShardScanResponse:
        """One page of a collection's records on ``shard`` in id order, from a live storage
        replica (the next replica on failure)."""


#: Watch event types, re-exported so callers need not import the proto module.
PUT = meta_pb2.WatchEvent.PUT
DELETE = meta_pb2.WatchEvent.DELETE
#: The end of a Watch stream's snapshot (on the wire: an event with no item and no type).
SNAPSHOT_END = meta_pb2.WatchEvent.TYPE_UNSPECIFIED
