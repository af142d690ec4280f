"""Where things live: tenant -> data partition, collection -> shards -> nodes, partition -> owner.

- A tenant's data partition is ``tenant_partition(tenant, P)`` (hash) unless an
  explicit override is stored. An override may only be set while the tenant
  has no collections: their records are already in the old partition.
- Shard ``s`` of a collection is served by the registered nodes of role
  ``storage`` (replicas) and ``query`` whose ``NodeInfo.shards`` contains ``s``.
- The owner of a journal partition is the ``journal`` node whose
  ``partitions`` list it; a single journal that lists none owns them all.
"""

from __future__ import annotations

from vecraft.services.meta_manager.store import MetaStore
from vecraft.shared.common.errors import Conflict, InvalidRequest, NotFound
from vecraft.shared.model.routing import DEFAULT_TENANT, data_partition, is_data_partition, tenant_partition
from vecraft.shared.model.validation import validate_name
from vecraft.shared.rpc.v1 import meta_pb2


class TenantMap:
    """Tenant -> data partition, over the store's explicit overrides."""

    def __init__(self, store: MetaStore, data_partitions: int) -> None:
        self._store = store
        self._data_partitions = data_partitions

    async def get(self, tenant: str) -> meta_pb2.TenantPartition:
        """The tenant's partition and whether it was set explicitly.

        Raises:
            InvalidRequest: bad tenant name.
        """
        tenant = validate_name(tenant or DEFAULT_TENANT, "tenant")
        explicit = await self._store.get_tenant_partition(tenant)
        if explicit is not None:
            return meta_pb2.TenantPartition(tenant=tenant, partition=explicit, explicit=True)
        return meta_pb2.TenantPartition(tenant=tenant, explicit=False,
                                        partition=tenant_partition(tenant, self._data_partitions))

    async def partition_of(self, tenant: str) -> str:
        return (await self.get(tenant)).partition

    async def set(self, tenant: str, partition: str) -> meta_pb2.TenantPartition:
        """Pin ``tenant`` to ``partition``.

        Raises:
            InvalidRequest: bad tenant name, or not one of ``data-0 .. data-{P-1}``.
            Conflict: the tenant has collections in another partition.
        """
        tenant = validate_name(tenant or DEFAULT_TENANT, "tenant")
        valid = [data_partition(i) for i in range(self._data_partitions)]
        if not is_data_partition(partition) or partition not in valid:
            raise InvalidRequest(f"partition {partition!r} is not a data partition of this cluster "
                                 f"({valid[0]} .. {valid[-1]})")
        current = await self.get(tenant)
        if current.partition != partition:
            collections = await self._store.list_collections(tenant)
            if collections:
                raise Conflict(
                    f"tenant {tenant!r} has {len(collections)} collection(s) in {current.partition}; "
                    f"drop them before moving the tenant to {partition}",
                    details={"tenant": tenant, "partition": current.partition,
                             "collections": [c.name for c in collections]})
        await self._store.set_tenant_partition(tenant, partition)
        return meta_pb2.TenantPartition(tenant=tenant, partition=partition, explicit=True)


def validate_placement(placement: meta_pb2.PlacementMap) -> None:
    """Reject a map a node could not follow: a shard listed twice, a node twice in one shard.

    Raises:
        InvalidRequest: naming the offending shard or node.
    """
    seen: set[int] = set()
    for assignment in placement.shards:
        if assignment.shard in seen:
            raise InvalidRequest(f"shard {assignment.shard} is listed twice in the placement map")
        seen.add(assignment.shard)
        for role, nodes in (("storage", assignment.storage_nodes), ("query", assignment.query_nodes)):
            if len(set(nodes)) != len(nodes) or not all(nodes):
                raise InvalidRequest(f"shard {assignment.shard} lists an empty or repeated {role} node: "
                                     f"{list(nodes)}")


def partition_owner(nodes: list[meta_pb2.NodeInfo], partition: str) -> meta_pb2.NodeInfo | None:
    """The journal node owning ``partition``: one that lists it, else one that lists none."""
    journals = [n for n in nodes if n.role == "journal"]
    for node in journals:
        if partition in node.partitions:
            return node
    for node in journals:
        if not node.partitions:
            return node
    return journals[0] if journals else None


async def build_placement(store: MetaStore, tenant: str, collection: str) -> meta_pb2.Placement:
    """Schema, partition, per-shard storage replicas and query processors, partition owner.

    Raises:
        InvalidRequest: bad tenant or collection name.
        NotFound: no such collection.
    """
    tenant = validate_name(tenant or DEFAULT_TENANT, "tenant")
    validate_name(collection, "collection")
    schema = await store.get_collection(tenant, collection)
    if schema is None:
        raise NotFound(f"collection {collection!r} of tenant {tenant!r} does not exist",
                       details={"tenant": tenant, "collection": collection})
    nodes = await store.list_nodes()
    placement = meta_pb2.Placement(collection=schema, partition=schema.partition)
    for shard in range(schema.shards):
        sp = placement.shards.add(shard=shard)
        for node in nodes:
            if shard not in node.shards:
                continue
            if node.role == "storage":
                sp.storage_replicas.append(node)
            elif node.role == "query":
                sp.query_processors.append(node)
    owner = partition_owner(nodes, schema.partition)
    if owner is not None:
        placement.partition_owner.CopyFrom(owner)
    return placement
