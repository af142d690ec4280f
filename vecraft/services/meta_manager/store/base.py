"""The `MetaStore` interface: what the meta manager keeps, independent of where.

Two backends implement it: :class:`~vecraft.services.meta_manager.store.sqlite.SqliteMetaStore`
(one embedded SQLite file, the default of ``vecraft up``) and
:class:`~vecraft.services.meta_manager.store.etcd.EtcdMetaStore` (a real etcd
cluster, shared by several meta managers). The behavioural test suite runs
against both.

The store holds four things:

- **collections**: the materialized schema of every live collection, keyed by
  (tenant, name). It is only ever changed by :meth:`MetaStore.commit_ddl`, in
  the order of the journal's ``system`` partition;
- **DDL records**: one per applied system entry that carried DDL, keyed by the
  entry's request id, saying whether the DDL took effect (a CREATE of a name
  that already exists does not). They answer retried requests and tell a
  requester whether its DDL won a race;
- **tenant overrides**: tenant -> data partition set explicitly;
- **nodes**: registered processes, each bound to a lease that expires when
  not renewed;
- **the placement map**: which node hosts which shard replica, one versioned
  document changed by compare-and-swap on its version, and only by the holder
  of a named lease whose fencing token the store checks in the same
  transaction (a deposed fail-over manager cannot overwrite its successor);
- **named leases**: one holder at a time, each holding with a fencing token
  larger than every earlier one of that name;
- **API keys**: one record per key (id, name, role, tenant and collection scope,
  the SHA-256 of the key, never the key), revoked in place rather than deleted;
- **quotas**: one record per tenant (``key_id`` "") or per (tenant, API key), replaced
  whole by :meth:`MetaStore.set_quota` and removed by :meth:`MetaStore.delete_quota`.

Every change is published to subscribers (:meth:`MetaStore.subscribe`) as a
:class:`StoreEvent`. A node whose lease expires is removed and published as a
``DELETE`` carrying its last :class:`NodeInfo` with ``state = "down"``.
"""

from __future__ import annotations

import abc
import dataclasses
import enum

from vecraft.services.meta_manager.store.events import Subscription
from vecraft.shared.rpc.v1 import collection_pb2, meta_pb2


class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclasses.dataclass(frozen=True)
class StoreEvent:
    """One change of a collection or a node, in store order.

    ``revision`` grows with every change of the store (etcd: the key's
    mod_revision; SQLite: a persisted change counter).
    """

    type: EventType
    revision: int
    collection: collection_pb2.CollectionSchema | None = None
    node: meta_pb2.NodeInfo | None = None
    placement: meta_pb2.PlacementMap | None = None
    api_key: meta_pb2.ApiKeyInfo | None = None
    quota: meta_pb2.Quota | None = None

    @property
    def topic(self) -> str:
        """The Watch topic of the event: "collections", "nodes", "placement", "keys" or "quotas"."""
        if self.collection is not None:
            return "collections"
        if self.node is not None:
            return "nodes"
        if self.quota is not None:
            return "quotas"
        return "keys" if self.api_key is not None else "placement"


@dataclasses.dataclass(frozen=True)
class LeaseHolding:
    """A named lease as the store sees it after a call.

    ``held`` says whether the caller (``holder`` of the call) holds it now;
    ``holder`` and ``fencing_token`` are the current holding ("" and the last
    token when free).
    """

    name: str
    holder: str
    fencing_token: int
    held: bool
    ttl_ms: int = 0


@dataclasses.dataclass(frozen=True)
class DdlRecord:
    """The outcome of one DDL entry of the system partition.

    Attributes:
        request_id: request id of the journal entry (``system-<offset>`` when it had none).
        offset: offset of the entry in the system partition.
        hlc: HLC of the entry.
        kind: ``CollectionDDL.Kind`` value (CREATE, DROP, ALTER).
        tenant: tenant of the collection.
        name: collection name.
        applied: True when the DDL changed the catalog; False for a CREATE of a
            taken name or a DROP/ALTER of a collection incarnation that no
            longer exists.
        schema: the collection as materialized by the entry (for DROP: as it was
            dropped); None when not applied.
    """

    request_id: str
    offset: int
    hlc: int
    kind: int
    tenant: str
    name: str
    applied: bool
    schema: collection_pb2.CollectionSchema | None = None


class MetaStore(abc.ABC):
    """Persistent catalog, tenant map and node registry of the meta manager.

    All methods are coroutines safe to call concurrently from one event loop.
    Backend failures that may heal (etcd leader election, a member down) are
    retried inside the backend for a bounded time, then raised as
    :class:`~vecraft.shared.common.errors.Unavailable`.
    """

    #: backend name reported in /healthz: "sqlite" | "etcd"
    backend: str = ""

    @abc.abstractmethod
    async def start(self) -> None:
        """Open the database / connect; start lease expiry or watch loops."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop background loops and close connections. Idempotent."""

    # ---- collections -----------------------------------------------------------
    @abc.abstractmethod
    async def get_collection(self, tenant: str, name: str) -> collection_pb2.CollectionSchema | None:
        """The live collection ``name`` of ``tenant``, or None."""

    @abc.abstractmethod
    async def list_collections(self, tenant: str | None = None) -> list[collection_pb2.CollectionSchema]:
        """Live collections of ``tenant`` (None = every tenant), sorted by (tenant, name)."""

    @abc.abstractmethod
    async def ddl_watermark(self) -> int:
        """Offset of the last system-partition entry materialized (0 = none)."""

    @abc.abstractmethod
    async def get_ddl_record(self, request_id: str) -> DdlRecord | None:
        """The outcome of the DDL entry appended with ``request_id``, once materialized."""

    @abc.abstractmethod
    async def commit_ddl(self, expected_watermark: int, new_watermark: int,
                         record: DdlRecord | None) -> bool:
        """Materialize one system entry, atomically, if nobody else did it first.

        Compare-and-swap on the watermark: when the stored watermark equals
        ``expected_watermark``, in one transaction set it to ``new_watermark``,
        store ``record`` (when given) and apply its change to the collections
        (CREATE/ALTER applied: put ``record.schema``; DROP applied: delete
        (tenant, name)); then publish the collection event. Returns False and
        changes nothing when the watermark moved (another meta manager applied
        the entry); the caller re-reads the watermark and continues.
        """

    # ---- tenants ---------------------------------------------------------------
    @abc.abstractmethod
    async def get_tenant_partition(self, tenant: str) -> str | None:
        """The explicit data partition of ``tenant``, or None (hash placement)."""

    @abc.abstractmethod
    async def set_tenant_partition(self, tenant: str, partition: str) -> None:
        """Record an explicit data partition for ``tenant`` (overwrites)."""

    # ---- nodes -----------------------------------------------------------------
    @abc.abstractmethod
    async def register_node(self, node: meta_pb2.NodeInfo, ttl_ms: int) -> tuple[str, int]:
        """Store ``node`` (state "up") under a fresh lease of about ``ttl_ms``.

        Re-registering a node id replaces the previous entry and lease.
        Returns ``(lease_id, granted_ttl_ms)``; the granted TTL may be longer
        than asked (etcd rounds up to whole seconds and its minimum TTL).
        """

    @abc.abstractmethod
    async def heartbeat(self, node_id: str, lease_id: str) -> bool:
        """Renew the lease. False when it expired or belongs to an older registration."""

    @abc.abstractmethod
    async def list_nodes(self, role: str = "") -> list[meta_pb2.NodeInfo]:
        """Registered nodes with a live lease (``role`` "" = all), sorted by node id."""

    @abc.abstractmethod
    async def deregister_node(self, node_id: str, lease_id: str) -> bool:
        """Remove the node now (published as a ``DELETE`` with ``state = "down"``).

        False when ``lease_id`` is not the node's current lease (nothing changes).
        """

    # ---- placement map ---------------------------------------------------------
    @abc.abstractmethod
    async def get_placement_map(self) -> meta_pb2.PlacementMap:
        """The current map; ``version`` 0 (and nothing else set) when none was written."""

    @abc.abstractmethod
    async def update_placement_map(self, new: meta_pb2.PlacementMap, expected_version: int,
                                   lease_name: str, fencing_token: int) -> meta_pb2.PlacementMap:
        """Store ``new`` as version ``expected_version + 1``, atomically, and publish it.

        Raises:
            Conflict: the stored version is not ``expected_version``.
            FencedOut: ``fencing_token`` is not the live holding of ``lease_name``.
        """

    # ---- named leases ----------------------------------------------------------
    @abc.abstractmethod
    async def acquire_lease(self, name: str, holder: str, ttl_ms: int) -> LeaseHolding:
        """Take ``name`` for ``holder`` when it is free or expired (a new, larger fencing
        token), or renew it when ``holder`` already holds it (same token)."""

    @abc.abstractmethod
    async def renew_lease(self, name: str, holder: str, fencing_token: int) -> LeaseHolding:
        """Extend the holding ``(holder, fencing_token)``; ``held`` False when it was lost."""

    @abc.abstractmethod
    async def release_lease(self, name: str, holder: str, fencing_token: int) -> LeaseHolding:
        """Give the holding up now (no-op when it is not the current one)."""

    @abc.abstractmethod
    async def get_lease(self, name: str) -> LeaseHolding:
        """The current holding of ``name`` (``held`` is always False)."""

    # ---- API keys --------------------------------------------------------------
    @abc.abstractmethod
    async def create_api_key(self, info: meta_pb2.ApiKeyInfo) -> None:
        """Store a new key record (``info.id`` fresh, ``key_sha256`` set) and publish it.

        Raises:
            Conflict: a key with ``info.id`` exists.
        """

    @abc.abstractmethod
    async def list_api_keys(self) -> list[meta_pb2.ApiKeyInfo]:
        """Every key record, revoked ones included, with its hash, sorted by id."""

    @abc.abstractmethod
    async def revoke_api_key(self, key_id: str, at_unix_ms: int) -> meta_pb2.ApiKeyInfo | None:
        """Mark the key revoked (idempotent: an already revoked key keeps its first time) and
        publish the record as a PUT; None when no key has ``key_id``."""

    # ---- quotas ----------------------------------------------------------------
    @abc.abstractmethod
    async def set_quota(self, quota: meta_pb2.Quota) -> None:
        """Store ``quota`` as the record of ``(quota.tenant, quota.key_id)`` (replacing one) and
        publish it as a PUT."""

    @abc.abstractmethod
    async def list_quotas(self) -> list[meta_pb2.Quota]:
        """Every quota record, sorted by (tenant, key_id)."""

    @abc.abstractmethod
    async def delete_quota(self, tenant: str, key_id: str) -> meta_pb2.Quota | None:
        """Remove the record of ``(tenant, key_id)`` and publish it as a DELETE; None when there was
        none."""

    # ---- change stream ---------------------------------------------------------
    @abc.abstractmethod
    def subscribe(self) -> Subscription[StoreEvent]:
        """Events of every change from now on, from every meta manager sharing the store.

        The subscription must be closed by the caller (it is a context manager).
        """
