"""The gRPC face of the meta manager: `MetaManagerService` over the store and its components.

Handlers validate, delegate and convert; errors are ``VecraftError`` raised
to the shared interceptor (400 / 404 / 409 / 503 on the wire).

Watch streams send an initial snapshot first (one ``PUT`` per current
collection, node, API key and quota record, and the placement map when one exists, ``revision``
0), then one end-of-snapshot marker (an event with no item, ``type``
unspecified, ``revision`` 0; a watcher replaces its state with the snapshot
there, so what was deleted while it was away goes too), then every change from
the moment the stream was opened (``revision`` > 0, increasing). A change that
races the snapshot can be seen twice; applying events in order is idempotent. Expired
nodes arrive as ``DELETE`` with their last ``NodeInfo`` and ``state = "down"``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc

from vecraft.services.meta_manager import api_keys, quotas
from vecraft.services.meta_manager.ddl import DdlCoordinator
from vecraft.services.meta_manager.hlc_sync import HlcCoordinator
from vecraft.services.meta_manager.placement import TenantMap, build_placement, validate_placement
from vecraft.services.meta_manager.store import EventType, MetaStore, StoreEvent, Subscription
from vecraft.services.meta_manager.store.base import LeaseHolding
from vecraft.shared.common.errors import InvalidRequest, NotFound
from vecraft.shared.model.routing import DEFAULT_TENANT
from vecraft.shared.model.validation import validate_name
from vecraft.shared.rpc.v1 import collection_pb2, meta_pb2, meta_pb2_grpc

TOPICS = ("collections", "nodes", "placement", "keys", "quotas")
#: Leases shorter than this would expire between two heartbeats of a busy node.
MIN_TTL_MS = 100
MAX_TTL_MS = 3_600_000


def _watch_event(event: StoreEvent) -> meta_pb2.WatchEvent:
    kind = meta_pb2.WatchEvent.PUT if event.type is EventType.PUT else meta_pb2.WatchEvent.DELETE
    if event.collection is not None:
        return meta_pb2.WatchEvent(type=kind, collection=event.collection, revision=event.revision)
    if event.node is not None:
        return meta_pb2.WatchEvent(type=kind, node=event.node, revision=event.revision)
    if event.api_key is not None:
        return meta_pb2.WatchEvent(type=kind, api_key=event.api_key, revision=event.revision)
    if event.quota is not None:
        return meta_pb2.WatchEvent(type=kind, quota=event.quota, revision=event.revision)
    return meta_pb2.WatchEvent(type=kind, placement=event.placement, revision=event.revision)


def _lease_state(holding: LeaseHolding) -> meta_pb2.LeaseState:
    return meta_pb2.LeaseState(name=holding.name, holder=holding.holder, fencing_token=holding.fencing_token,
                               held=holding.held, ttl_ms=holding.ttl_ms)


def _lease_name(name: str) -> str:
    if not name or "/" in name or len(name) > 200:
        raise InvalidRequest("lease name is required, at most 200 characters, without '/'")
    return name


class MetaServicer(meta_pb2_grpc.MetaManagerServiceServicer):
    """Implements every RPC of ``vecraft.v1.MetaManagerService``."""

    def __init__(self, store: MetaStore, ddl: DdlCoordinator, tenants: TenantMap, hlc: HlcCoordinator, *,
                 default_ttl_ms: int) -> None:
        self._store = store
        self._ddl = ddl
        self._tenants = tenants
        self._hlc = hlc
        self._default_ttl_ms = default_ttl_ms
        self._streams: set[Subscription[StoreEvent]] = set()

    def close_streams(self) -> None:
        """End every open Watch stream (shutdown: do not wait out the grace period)."""
        for sub in list(self._streams):
            sub.close()

    # ---- collections -----------------------------------------------------------
    async def CreateCollection(self, request: collection_pb2.CreateCollectionRequest,
                               context: grpc.aio.ServicerContext) -> collection_pb2.CollectionSchema:
        return await self._ddl.create(request)

    async def GetCollection(self, request: collection_pb2.GetCollectionRequest,
                            context: grpc.aio.ServicerContext) -> collection_pb2.CollectionSchema:
        tenant = validate_name(request.tenant or DEFAULT_TENANT, "tenant")
        name = validate_name(request.name, "collection")
        schema = await self._store.get_collection(tenant, name)
        if schema is None:
            raise NotFound(f"collection {name!r} of tenant {tenant!r} does not exist",
                           details={"tenant": tenant, "collection": name})
        return schema

    async def ListCollections(self, request: collection_pb2.ListCollectionsRequest,
                              context: grpc.aio.ServicerContext) -> collection_pb2.ListCollectionsResponse:
        tenant = validate_name(request.tenant or DEFAULT_TENANT, "tenant")
        return collection_pb2.ListCollectionsResponse(collections=await self._store.list_collections(tenant))

    async def DropCollection(self, request: collection_pb2.DropCollectionRequest,
                             context: grpc.aio.ServicerContext) -> collection_pb2.DropCollectionResponse:
        return await self._ddl.drop(request)

    async def AlterCollection(self, request: collection_pb2.AlterCollectionRequest,
                              context: grpc.aio.ServicerContext) -> collection_pb2.CollectionSchema:
        return await self._ddl.alter(request)

    # ---- tenants and placement -------------------------------------------------
    async def GetTenantPartition(self, request: meta_pb2.TenantPartitionRequest,
                                 context: grpc.aio.ServicerContext) -> meta_pb2.TenantPartition:
        return await self._tenants.get(request.tenant)

    async def SetTenantPartition(self, request: meta_pb2.TenantPartition,
                                 context: grpc.aio.ServicerContext) -> meta_pb2.TenantPartition:
        return await self._tenants.set(request.tenant, request.partition)

    async def GetPlacement(self, request: meta_pb2.GetPlacementRequest,
                           context: grpc.aio.ServicerContext) -> meta_pb2.Placement:
        return await build_placement(self._store, request.tenant, request.collection)

    # ---- node registry ---------------------------------------------------------
    async def RegisterNode(self, request: meta_pb2.RegisterNodeRequest,
                           context: grpc.aio.ServicerContext) -> meta_pb2.RegisterNodeResponse:
        node = request.node
        if not node.node_id or "/" in node.node_id:
            raise InvalidRequest("node.node_id is required and must not contain '/'")
        if not node.role:
            raise InvalidRequest("node.role is required (journal, storage, query, gateway, ...)")
        ttl_ms = request.ttl_ms or self._default_ttl_ms
        if not MIN_TTL_MS <= ttl_ms <= MAX_TTL_MS:
            raise InvalidRequest(f"ttl_ms is {ttl_ms}; it must be between {MIN_TTL_MS} and {MAX_TTL_MS}")
        lease_id, granted = await self._store.register_node(node, ttl_ms)
        return meta_pb2.RegisterNodeResponse(lease_id=lease_id, ttl_ms=granted)

    async def Heartbeat(self, request: meta_pb2.HeartbeatRequest,
                        context: grpc.aio.ServicerContext) -> meta_pb2.HeartbeatResponse:
        if not request.node_id or not request.lease_id:
            raise InvalidRequest("node_id and lease_id are required")
        return meta_pb2.HeartbeatResponse(ok=await self._store.heartbeat(request.node_id, request.lease_id))

    async def ListNodes(self, request: meta_pb2.ListNodesRequest,
                        context: grpc.aio.ServicerContext) -> meta_pb2.ListNodesResponse:
        return meta_pb2.ListNodesResponse(nodes=await self._store.list_nodes(request.role))

    async def DeregisterNode(self, request: meta_pb2.HeartbeatRequest,
                             context: grpc.aio.ServicerContext) -> meta_pb2.HeartbeatResponse:
        if not request.node_id or not request.lease_id:
            raise InvalidRequest("node_id and lease_id are required")
        left = await self._store.deregister_node(request.node_id, request.lease_id)
        return meta_pb2.HeartbeatResponse(ok=left)

    # ---- placement map and leases ----------------------------------------------
    async def GetPlacementMap(self, request: meta_pb2.GetPlacementMapRequest,
                              context: grpc.aio.ServicerContext) -> meta_pb2.PlacementMap:
        return await self._store.get_placement_map()

    async def UpdatePlacementMap(self, request: meta_pb2.UpdatePlacementMapRequest,
                                 context: grpc.aio.ServicerContext) -> meta_pb2.PlacementMap:
        validate_placement(request.map)
        return await self._store.update_placement_map(request.map, request.expected_version,
                                                      _lease_name(request.lease_name), request.fencing_token)

    async def AcquireLease(self, request: meta_pb2.AcquireLeaseRequest,
                           context: grpc.aio.ServicerContext) -> meta_pb2.LeaseState:
        if not request.holder:
            raise InvalidRequest("holder is required")
        ttl_ms = request.ttl_ms or self._default_ttl_ms
        if not MIN_TTL_MS <= ttl_ms <= MAX_TTL_MS:
            raise InvalidRequest(f"ttl_ms is {ttl_ms}; it must be between {MIN_TTL_MS} and {MAX_TTL_MS}")
        holding = await self._store.acquire_lease(_lease_name(request.name), request.holder, ttl_ms)
        return _lease_state(holding)

    async def RenewLease(self, request: meta_pb2.LeaseRequest,
                         context: grpc.aio.ServicerContext) -> meta_pb2.LeaseState:
        return _lease_state(await self._store.renew_lease(_lease_name(request.name), request.holder,
                                                          request.fencing_token))

    async def ReleaseLease(self, request: meta_pb2.LeaseRequest,
                           context: grpc.aio.ServicerContext) -> meta_pb2.LeaseState:
        return _lease_state(await self._store.release_lease(_lease_name(request.name), request.holder,
                                                            request.fencing_token))

    async def GetLease(self, request: meta_pb2.LeaseRequest,
                       context: grpc.aio.ServicerContext) -> meta_pb2.LeaseState:
        return _lease_state(await self._store.get_lease(_lease_name(request.name)))

    # ---- API keys --------------------------------------------------------------
    async def CreateApiKey(self, request: meta_pb2.CreateApiKeyRequest,
                           context: grpc.aio.ServicerContext) -> meta_pb2.CreateApiKeyResponse:
        tenant = request.tenant or DEFAULT_TENANT
        collections = sorted(set(request.collections))
        api_keys.validate_grant(request.role, tenant, collections, request.name)
        key_id, key = api_keys.new_key()
        info = meta_pb2.ApiKeyInfo(id=key_id, name=request.name, role=request.role, tenant=tenant,
                                   collections=collections, created_unix_ms=time.time_ns() // 1_000_000,
                                   key_sha256=api_keys.key_sha256(key))
        await self._store.create_api_key(info)
        return meta_pb2.CreateApiKeyResponse(info=api_keys.public(info), key=key)

    async def ListApiKeys(self, request: meta_pb2.ListApiKeysRequest,
                          context: grpc.aio.ServicerContext) -> meta_pb2.ListApiKeysResponse:
        keys = await self._store.list_api_keys()
        return meta_pb2.ListApiKeysResponse(keys=[api_keys.public(k) for k in keys
                                                  if request.include_revoked or not k.revoked])

    async def RevokeApiKey(self, request: meta_pb2.RevokeApiKeyRequest,
                           context: grpc.aio.ServicerContext) -> meta_pb2.ApiKeyInfo:
        if not request.id or "/" in request.id:
            raise InvalidRequest("id is required and must not contain '/'")
        info = await self._store.revoke_api_key(request.id, time.time_ns() // 1_000_000)
        if info is None:
            raise NotFound(f"no API key has id {request.id[:64]!r}", details={"id": request.id[:64]})
        return api_keys.public(info)

    # ---- quotas ----------------------------------------------------------------
    async def SetQuota(self, request: meta_pb2.Quota, context: grpc.aio.ServicerContext) -> meta_pb2.Quota:
        quota = meta_pb2.Quota()
        quota.CopyFrom(request)
        quotas.validate_quota(quota)
        quota.updated_unix_ms = time.time_ns() // 1_000_000
        await self._store.set_quota(quota)
        return quota

    async def ListQuotas(self, request: meta_pb2.ListQuotasRequest,
                         context: grpc.aio.ServicerContext) -> meta_pb2.ListQuotasResponse:
        listed = await self._store.list_quotas()
        return meta_pb2.ListQuotasResponse(quotas=[q for q in listed
                                                   if not request.tenant or q.tenant == request.tenant])

    async def DeleteQuota(self, request: meta_pb2.DeleteQuotaRequest,
                          context: grpc.aio.ServicerContext) -> meta_pb2.Quota:
        quotas.validate_subject(request.tenant, request.key_id)
        removed = await self._store.delete_quota(request.tenant, request.key_id)
        if removed is None:
            raise NotFound(quotas.no_quota_message(request.tenant, request.key_id),
                           details={"tenant": request.tenant, "key_id": request.key_id})
        return removed

    # ---- watch -----------------------------------------------------------------
    async def Watch(self, request: meta_pb2.WatchRequest,
                    context: grpc.aio.ServicerContext) -> AsyncIterator[meta_pb2.WatchEvent]:
        topics = set(request.topics) or set(TOPICS)
        unknown = topics - set(TOPICS)
        if unknown:
            raise InvalidRequest(f"unknown watch topic(s) {sorted(unknown)}; use {', '.join(TOPICS)}")
        # Subscribe before reading the snapshot, so no change falls between the two.
        with self._store.subscribe() as sub:
            self._streams.add(sub)
            try:
                if "collections" in topics:
                    for schema in await self._store.list_collections():
                        yield meta_pb2.WatchEvent(type=meta_pb2.WatchEvent.PUT, collection=schema)
                if "nodes" in topics:
                    for node in await self._store.list_nodes():
                        yield meta_pb2.WatchEvent(type=meta_pb2.WatchEvent.PUT, node=node)
                if "placement" in topics:
                    placement = await self._store.get_placement_map()
                    if placement.version:
                        yield meta_pb2.WatchEvent(type=meta_pb2.WatchEvent.PUT, placement=placement)
                if "keys" in topics:
                    for info in await self._store.list_api_keys():
                        yield meta_pb2.WatchEvent(type=meta_pb2.WatchEvent.PUT, api_key=info)
                if "quotas" in topics:
                    for quota in await self._store.list_quotas():
                        yield meta_pb2.WatchEvent(type=meta_pb2.WatchEvent.PUT, quota=quota)
                yield meta_pb2.WatchEvent()  # end of the snapshot
                async for event in sub:
                    if event.topic in topics:
                        yield _watch_event(event)
            finally:
                self._streams.discard(sub)

    # ---- HLC -------------------------------------------------------------------
    async def ReportHLC(self, request: meta_pb2.ReportHLCRequest,
                        context: grpc.aio.ServicerContext) -> meta_pb2.ReportHLCResponse:
        report = self._hlc.report(request.node_id, request.hlc)
        return meta_pb2.ReportHLCResponse(cluster_hlc=report.cluster_hlc, drift_ms=report.drift_ms,
                                          flagged=report.flagged)
