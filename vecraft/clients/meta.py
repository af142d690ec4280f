"""Client of the meta manager, used by the gateway, storage nodes, query processors and tools.

Every call raises :class:`~vecraft.shared.common.errors.VecraftError`
subclasses, never ``grpc.RpcError``. :meth:`MetaClient.keep_registered` is the
loop every service runs to stay in the node registry (register, heartbeat at
a third of the lease TTL, register again after an expiry or a meta manager
restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

import grpc

from vecraft.shared.common.backoff import Backoff
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.common.grpc_errors import translate_rpc_error
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.common.stream_follow import follow_snapshot_stream
from vecraft.shared.rpc.v1 import collection_pb2, meta_pb2, meta_pb2_grpc

log = logging.getLogger(__name__)

#: Pauses between reconnections of :func:`follow_watch` (doubling from the first to the last).
FOLLOW_BACKOFF_MIN_S, FOLLOW_BACKOFF_MAX_S = 0.1, 2.0


def assigned_shards(placement: meta_pb2.PlacementMap, node_id: str, role: str) -> list[int]:
    """The shards a placement map gives ``node_id`` as a ``role`` ("storage" or "query") node, sorted."""
    field = "storage_nodes" if role == "storage" else "query_nodes"
    return sorted(a.shard for a in placement.shards if node_id in getattr(a, field))


class MetaClient:
    """One gRPC channel to a meta manager; safe to share between tasks of one event loop."""

    def __init__(self, address: str, *, timeout_s: float = 30.0) -> None:
        self.address = address
        self.timeout_s = timeout_s
        #: How errors name this meta manager when it cannot be reached ("... is unavailable: ...").
        self.service = f"meta manager at {address}"
        self._channel: grpc.aio.Channel | None = None
        self._stub_obj: meta_pb2_grpc.MetaManagerServiceStub | None = None

    @property
    def _stub(self) -> meta_pb2_grpc.MetaManagerServiceStub:
        # Created lazily: a grpc.aio channel binds to the event loop running when it is made.
        if self._stub_obj is None:
            self._channel = grpc_channel(self.address)
            self._stub_obj = meta_pb2_grpc.MetaManagerServiceStub(self._channel)
        return self._stub_obj

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub_obj = None

    # ---- collections -----------------------------------------------------------
    async def create_collection(self, name: str, dim: int, *, tenant: str = "", metric: str = "",
                                shards: int = 0, replicas: int = 0,
                                hnsw: collection_pb2.HnswParams | None = None, if_not_exists: bool = False,
                                request_id: str = "", timeout_s: float | None = None
                                ) -> collection_pb2.CollectionSchema:
        """Create a collection; Conflict when the name is taken, InvalidRequest on bad input."""
        req = collection_pb2.CreateCollectionRequest(
            tenant=tenant, name=name, dim=dim, metric=metric, shards=shards, replicas=replicas, hnsw=hnsw,
            if_not_exists=if_not_exists, request_id=request_id)
        with translate_rpc_error(self.service):
            return await self._stub.CreateCollection(req, timeout=timeout_s or self.timeout_s)

    async def get_collection(self, name: str, *, tenant: str = "",
                             timeout_s: float | None = None) -> collection_pb2.CollectionSchema:
        """The collection's schema; NotFound when it does not exist."""
        with translate_rpc_error(self.service):
            request = collection_pb2.GetCollectionRequest(tenant=tenant, name=name)
            return await self._stub.GetCollection(request, timeout=timeout_s or self.timeout_s)

    async def list_collections(self, *, tenant: str = "",
                               timeout_s: float | None = None) -> list[collection_pb2.CollectionSchema]:
        with translate_rpc_error(self.service):
            reply = await self._stub.ListCollections(
                collection_pb2.ListCollectionsRequest(tenant=tenant), timeout=timeout_s or self.timeout_s)
        return list(reply.collections)

    async def drop_collection(self, name: str, *, tenant: str = "", request_id: str = "",
                              timeout_s: float | None = None) -> collection_pb2.DropCollectionResponse:
        """Drop a collection; NotFound when it does not exist."""
        with translate_rpc_error(self.service):
            return await self._stub.DropCollection(
                collection_pb2.DropCollectionRequest(tenant=tenant, name=name, request_id=request_id),
                timeout=timeout_s or self.timeout_s)

    async def alter_collection(self, name: str, *, ef_search: int, tenant: str = "", request_id: str = "",
                               timeout_s: float | None = None) -> collection_pb2.CollectionSchema:
        """Change the collection's HNSW ef_search."""
        req = collection_pb2.AlterCollectionRequest(
            tenant=tenant, name=name, hnsw=collection_pb2.HnswParams(ef_search=ef_search),
            request_id=request_id)
        with translate_rpc_error(self.service):
            return await self._stub.AlterCollection(req, timeout=timeout_s or self.timeout_s)

    # ---- tenants and placement -------------------------------------------------
    async def get_tenant_partition(self, tenant: str) -> meta_pb2.TenantPartition:
        with translate_rpc_error(self.service):
            return await self._stub.GetTenantPartition(meta_pb2.TenantPartitionRequest(tenant=tenant),
                                                       timeout=self.timeout_s)

    async def set_tenant_partition(self, tenant: str, partition: str) -> meta_pb2.TenantPartition:
        """Pin a tenant to a data partition; Conflict when it already has collections elsewhere."""
        with translate_rpc_error(self.service):
            return await self._stub.SetTenantPartition(
                meta_pb2.TenantPartition(tenant=tenant, partition=partition), timeout=self.timeout_s)

    async def get_placement(self, collection: str, *, tenant: str = "") -> meta_pb2.Placement:
        with translate_rpc_error(self.service):
            return await self._stub.GetPlacement(
                meta_pb2.GetPlacementRequest(tenant=tenant, collection=collection), timeout=self.timeout_s)

    # ---- node registry ---------------------------------------------------------
    async def register_node(self, node: meta_pb2.NodeInfo, ttl_ms: int = 0) -> meta_pb2.RegisterNodeResponse:
        with translate_rpc_error(self.service):
            return await self._stub.RegisterNode(meta_pb2.RegisterNodeRequest(node=node, ttl_ms=ttl_ms),
                                                 timeout=self.timeout_s)

    async def heartbeat(self, node_id: str, lease_id: str) -> bool:
        """Renew a lease; False when it expired (register again)."""
        with translate_rpc_error(self.service):
            reply = await self._stub.Heartbeat(meta_pb2.HeartbeatRequest(node_id=node_id, lease_id=lease_id),
                                               timeout=self.timeout_s)
        return reply.ok

    async def list_nodes(self, role: str = "") -> list[meta_pb2.NodeInfo]:
        with translate_rpc_error(self.service):
            reply = await self._stub.ListNodes(meta_pb2.ListNodesRequest(role=role), timeout=self.timeout_s)
        return list(reply.nodes)

    async def deregister_node(self, node_id: str, lease_id: str) -> bool:
        """Leave the registry now; False when ``lease_id`` was no longer the node's lease."""
        with translate_rpc_error(self.service):
            reply = await self._stub.DeregisterNode(
                meta_pb2.HeartbeatRequest(node_id=node_id, lease_id=lease_id), timeout=self.timeout_s)
        return reply.ok

    async def keep_registered(self, node: Callable[[], meta_pb2.NodeInfo], ttl_ms: int = 0, *,
                              retry_s: float = 1.0, changed: asyncio.Event | None = None) -> None:
        """Stay registered until cancelled, then leave the registry.

        ``node()`` gives the current NodeInfo at each registration. Setting
        ``changed`` registers again at once (the node's shards changed), so
        watchers see the new info without waiting for a heartbeat. An
        unreachable meta manager is logged once and retried every ``retry_s``.
        """
        lease_id, interval_s, info = "", retry_s, None
        reachable = True
        changed = changed or asyncio.Event()
        try:
            while True:
                try:
                    info = node()
                    if changed.is_set() or not lease_id or not await self.heartbeat(info.node_id, lease_id):
                        changed.clear()
                        reply = await self.register_node(info, ttl_ms)
                        lease_id, interval_s = reply.lease_id, reply.ttl_ms / 3000
                    reachable = True
                except VecraftError as exc:
                    if reachable:
                        log.warning("meta registration failed; serving anyway and retrying: %s", exc.message)
                    reachable = False
                    lease_id, interval_s = "", retry_s
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), interval_s)
        finally:
            if lease_id and info is not None:
                # Leaving on purpose: watchers drop the node now, not at lease expiry.
                with contextlib.suppress(VecraftError, asyncio.CancelledError):
                    await asyncio.shield(self.deregister_node(info.node_id, lease_id))

    # ---- placement map and leases ----------------------------------------------
    async def get_placement_map(self) -> meta_pb2.PlacementMap:
        """The current placement map (``version`` 0 when none was written yet)."""
        with translate_rpc_error(self.service):
            return await self._stub.GetPlacementMap(meta_pb2.GetPlacementMapRequest(), timeout=self.timeout_s)

    async def update_placement_map(self, placement: meta_pb2.PlacementMap, *, expected_version: int,
                                   lease_name: str, fencing_token: int) -> meta_pb2.PlacementMap:
        """Write the next version; ``Conflict`` when the map moved, ``FencedOut`` when deposed."""
        req = meta_pb2.UpdatePlacementMapRequest(map=placement, expected_version=expected_version,
                                                 lease_name=lease_name, fencing_token=fencing_token)
        with translate_rpc_error(self.service):
            return await self._stub.UpdatePlacementMap(req, timeout=self.timeout_s)

    async def acquire_lease(self, name: str, holder: str, ttl_ms: int) -> meta_pb2.LeaseState:
        """Take (or renew) the named lease; ``held`` says whether ``holder`` has it."""
        with translate_rpc_error(self.service):
            return await self._stub.AcquireLease(
                meta_pb2.AcquireLeaseRequest(name=name, holder=holder, ttl_ms=ttl_ms), timeout=self.timeout_s)

    async def renew_lease(self, name: str, holder: str, fencing_token: int) -> meta_pb2.LeaseState:
        with translate_rpc_error(self.service):
            return await self._stub.RenewLease(
                meta_pb2.LeaseRequest(name=name, holder=holder, fencing_token=fencing_token),
                timeout=self.timeout_s)

    async def release_lease(self, name: str, holder: str, fencing_token: int) -> meta_pb2.LeaseState:
        with translate_rpc_error(self.service):
            return await self._stub.ReleaseLease(
                meta_pb2.LeaseRequest(name=name, holder=holder, fencing_token=fencing_token),
                timeout=self.timeout_s)

    async def get_lease(self, name: str) -> meta_pb2.LeaseState:
        with translate_rpc_error(self.service):
            return await self._stub.GetLease(meta_pb2.LeaseRequest(name=name), timeout=self.timeout_s)

    # ---- API keys --------------------------------------------------------------
    async def create_api_key(self, *, role: str, tenant: str = "", collections: Sequence[str] = (),
                             name: str = "") -> meta_pb2.CreateApiKeyResponse:
        """A new key: its record and the key itself (returned this once; only its hash is kept)."""
        req = meta_pb2.CreateApiKeyRequest(name=name, role=role, tenant=tenant, collections=list(collections))
        with translate_rpc_error(self.service):
            return await self._stub.CreateApiKey(req, timeout=self.timeout_s)

    async def list_api_keys(self, *, include_revoked: bool = False) -> list[meta_pb2.ApiKeyInfo]:
        """Key records without their hashes."""
        with translate_rpc_error(self.service):
            reply = await self._stub.ListApiKeys(meta_pb2.ListApiKeysRequest(include_revoked=include_revoked),
                                                 timeout=self.timeout_s)
        return list(reply.keys)

    async def revoke_api_key(self, key_id: str) -> meta_pb2.ApiKeyInfo:
        """Revoke a key (idempotent); NotFound when no key has ``key_id``."""
        with translate_rpc_error(self.service):
            return await self._stub.RevokeApiKey(meta_pb2.RevokeApiKeyRequest(id=key_id),
                                                 timeout=self.timeout_s)

    # ---- quotas ----------------------------------------------------------------
    async def set_quota(self, quota: meta_pb2.Quota) -> meta_pb2.Quota:
        """Store ``quota`` as the record of its (tenant, key_id), replacing one; the stored record."""
        with translate_rpc_error(self.service):
            return await self._stub.SetQuota(quota, timeout=self.timeout_s)

    async def list_quotas(self, tenant: str = "") -> list[meta_pb2.Quota]:
        """Quota records of ``tenant`` ("" = every tenant), sorted by (tenant, key_id)."""
        with translate_rpc_error(self.service):
            reply = await self._stub.ListQuotas(meta_pb2.ListQuotasRequest(tenant=tenant),
                                                timeout=self.timeout_s)
        return list(reply.quotas)

    async def delete_quota(self, tenant: str, key_id: str = "") -> meta_pb2.Quota:
        """Remove a quota record; NotFound when there is none."""
        with translate_rpc_error(self.service):
            return await self._stub.DeleteQuota(meta_pb2.DeleteQuotaRequest(tenant=tenant, key_id=key_id),
                                                timeout=self.timeout_s)

    # ---- watch and clocks ------------------------------------------------------
    async def watch(self, topics: Sequence[str] = (), *,
                    snapshot_end: bool = False) -> AsyncIterator[meta_pb2.WatchEvent]:
        """Snapshot (revision 0) then live changes of ``topics`` ("collections", "nodes",
        "placement", "keys", "quotas"; () = all).

        With ``snapshot_end`` the end-of-snapshot marker (an event with no item) is
        yielded between the two: a watcher that reconnects replaces its state with the
        snapshot there. Without it the marker is left out.
        """
        call = self._stub.Watch(meta_pb2.WatchRequest(topics=list(topics)))
        try:
            with translate_rpc_error(self.service):
                async for event in call:
                    if snapshot_end or event.WhichOneof("item") is not None:
                        yield event
        finally:
            call.cancel()

    async def report_hlc(self, node_id: str, hlc: int) -> meta_pb2.ReportHLCResponse:
        with translate_rpc_error(self.service):
            return await self._stub.ReportHLC(meta_pb2.ReportHLCRequest(node_id=node_id, hlc=hlc),
                                              timeout=self.timeout_s)


async def follow_watch(meta: MetaClient, topics: Sequence[str], *,
                       snapshot: Callable[[list[meta_pb2.WatchEvent]], None],
                       change: Callable[[meta_pb2.WatchEvent], None], what: str,
                       broken: Callable[[], None] | None = None,
                       backoff: Backoff | None = None) -> None:
    """Follow ``topics`` until cancelled (``stream_follow.follow_snapshot_stream``): each connection's
    snapshot goes to ``snapshot`` in one call, the live events after it to ``change``."""
    await follow_snapshot_stream(
        lambda: meta.watch(topics, snapshot_end=True), is_end=lambda event: event.WhichOneof("item") is None,
        snapshot=snapshot, change=change, what=what, broken=broken,
        backoff=backoff or Backoff(FOLLOW_BACKOFF_MIN_S, FOLLOW_BACKOFF_MAX_S))
