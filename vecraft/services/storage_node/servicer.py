"""gRPC ``StorageNodeService``: Sync, Search, Get, Scan, Status, BackupShard, CopyShard.

A request is for one serving shard replica (its ``shard`` field; absent: the
node's only one, see :meth:`StorageNode.replica_for`); a shard not hosted, or
still catching up, answers 503 ``ShardNotHosted``. The replica is marked in use
for the request's duration, so a drop of it waits for the request. Every read first brings
the collection's partition to the offset the request needs (``min_offset``, or
the journal head for ``sync_latest``) with a coalesced pull, then runs in a
worker thread against the in-memory index (and the record file for
documents), so searches never wait on the event loop and an apply in progress
delays a search by at most one index write section.
Invalid input raises ``InvalidRequest`` before anything is touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import numpy as np

from vecraft.services.storage_node import metrics
from vecraft.services.storage_node.backup import backup_replica
from vecraft.services.storage_node.indexes.registry import Collection
from vecraft.services.storage_node.layout import local_shards
from vecraft.services.storage_node.peer_seeding import stream_copy
from vecraft.services.storage_node.scan import ScanOptions
from vecraft.shared.common.errors import DeadlineExceeded, InvalidRequest, NotFound, Unavailable
from vecraft.shared.model.filters import Filter
from vecraft.shared.model.limits import HNSW_EF_SEARCH_RANGE, MAX_BATCH_ROWS, MAX_K, MIN_K
from vecraft.shared.model.validation import validate_id
from vecraft.shared.replica import PartitionHalted
from vecraft.shared.rpc.convert import filter_from_json
from vecraft.shared.rpc.v1 import search_pb2, storage_pb2, storage_pb2_grpc

if TYPE_CHECKING:
    from vecraft.services.storage_node.main import StorageNode
    from vecraft.services.storage_node.replica import ShardReplica

T = TypeVar("T")


class _Budget:
    """What a request has left of its time: ``timeout_ms`` or the caller's gRPC deadline, whichever
    ends first (neither set: no limit). Every journal call made for the request gets what is left,
    so a journal that stops answering fails the read in time instead of holding it (and the
    partition's shared pull) open."""

    def __init__(self, timeout_ms: int, context: grpc.aio.ServicerContext | None) -> None:
        limits = [timeout_ms / 1000] if timeout_ms > 0 else []
        remaining = context.time_remaining() if context is not None else None
        if remaining is not None:
            limits.append(remaining)
        self._end = time.monotonic() + min(limits) if limits else None

    def left_s(self) -> float | None:
        return None if self._end is None else max(self._end - time.monotonic(), 0.0)


async def _within(awaitable: Awaitable[T], budget: _Budget, what: str) -> T:
    left = budget.left_s()
    if left is None:
        return await awaitable
    try:
        return await asyncio.wait_for(awaitable, left)
    except TimeoutError:
        raise DeadlineExceeded(f"{what} did not finish within the request's deadline") from None


def parse_query_vector(raw: bytes, dim: int, collection: str) -> np.ndarray:
    """The float32 LE query vector; InvalidRequest naming expected and got on a wrong size."""
    if len(raw) % 4:
        raise InvalidRequest(f"query vector is {len(raw)} bytes, not a whole number of float32 values")
    if len(raw) // 4 != dim:
        raise InvalidRequest(f"query vector has dimension {len(raw) // 4}, collection {collection!r} "
                             f"expects {dim}", details={"expected_dim": dim, "got_dim": len(raw) // 4})
    vector = np.frombuffer(raw, dtype="<f4")
    if not np.isfinite(vector).all():
        raise InvalidRequest("query vector must be finite (no NaN or infinity)")
    return vector


@contextlib.contextmanager
def _naming_shard(replica: ShardReplica) -> Iterator[None]:
    """A halted partition's 503 says which of the node's replicas halted it."""
    try:
        yield
    except PartitionHalted as err:
        raise PartitionHalted(f"shard {replica.shard}: {err.message}",
                              details={**err.details, "shard": replica.shard}) from err


class StorageNodeServicer(storage_pb2_grpc.StorageNodeServiceServicer):
    def __init__(self, node: StorageNode) -> None:
        self.node = node

    # ---- helpers ------------------------------------------------------------------------
    def _serving(self, request: storage_pb2.SyncRequest | storage_pb2.ShardSearchRequest
                 | storage_pb2.ShardGetRequest | storage_pb2.ShardScanRequest
                 ) -> contextlib.AbstractContextManager[ShardReplica]:
        return self.node.serving(request.shard if request.HasField("shard") else None)

    @staticmethod
    async def _collection(replica: ShardReplica, tenant: str, name: str, *, will_sync: bool,
                          budget: _Budget) -> Collection:
        registry = replica.registry
        try:
            return registry.get(tenant, name)
        except NotFound:
            if not will_sync:
                raise
        # The collection may have been created after our applied offset: a
        # read that asks for freshness catches every partition up first.
        await _within(asyncio.gather(*(f.sync(None, timeout_s=budget.left_s())
                                       for f in replica.followers.values())),
                      budget, "sync to find the collection")
        return registry.get(tenant, name)

    @staticmethod
    async def _reach(replica: ShardReplica, coll: Collection, min_offset: int, latest: bool,
                     budget: _Budget) -> bool:
        """Sync the collection's partition as the request asks; True when entries were pulled.

        Raises PartitionHalted (503, with the reason) when this replica halted the partition.
        """
        replica.halts.check(coll.schema.partition)
        follower = replica.follower(coll.schema.partition)
        if latest:
            target = None
        elif min_offset > follower.applied_offset:
            target = min_offset
        else:
            return False
        outcome = await _within(follower.sync(target, timeout_s=budget.left_s()), budget,
                                f"sync of {coll.schema.partition}")
        return outcome.pulled

    # ---- RPCs ---------------------------------------------------------------------------
    async def Sync(self, request: storage_pb2.SyncRequest,
                   context: grpc.aio.ServicerContext) -> storage_pb2.SyncResponse:
        with self._serving(request) as replica:
            return await self._sync(replica, request, context)

    @staticmethod
    async def _sync(replica: ShardReplica, request: storage_pb2.SyncRequest,
                    context: grpc.aio.ServicerContext) -> storage_pb2.SyncResponse:
        follower = replica.follower(request.partition)
        target = None if request.latest else request.target_offset
        budget = _Budget(request.timeout_ms, context)
        with _naming_shard(replica):
            outcome = await _within(follower.sync(target, timeout_s=budget.left_s()), budget,
                                    f"sync of {request.partition}")
        return storage_pb2.SyncResponse(partition=request.partition, applied_offset=outcome.applied_offset,
                                        applied_hlc=outcome.applied_hlc, pulled=outcome.pulled,
                                        entries_pulled=outcome.entries_pulled)

    async def Search(self, request: storage_pb2.ShardSearchRequest,
                     context: grpc.aio.ServicerContext) -> storage_pb2.ShardSearchResponse:
        return await self.search(request, context)

    async def search(self, request: storage_pb2.ShardSearchRequest,
                     context: grpc.aio.ServicerContext | None = None) -> storage_pb2.ShardSearchResponse:
        """``Search``, also called directly by a query node of this process (standalone mode): its
        deadline is then the request's ``timeout_ms``."""
        began = time.perf_counter()
        with self._serving(request) as replica:
            return await self._search_replica(replica, request, context, began)

    async def _search_replica(self, replica: ShardReplica, request: storage_pb2.ShardSearchRequest,
                              context: grpc.aio.ServicerContext | None,
                              began: float) -> storage_pb2.ShardSearchResponse:
        if not MIN_K <= request.k <= MAX_K:
            raise InvalidRequest(f"k must be between {MIN_K} and {MAX_K}, got {request.k}")
        lo, hi = HNSW_EF_SEARCH_RANGE
        if request.ef_search and not lo <= request.ef_search <= hi:
            raise InvalidRequest(f"ef_search must be between {lo} and {hi}, got {request.ef_search}")
        flt = filter_from_json(request.filter_json)
        budget = _Budget(request.timeout_ms, context)
        will_sync = request.sync_latest or request.min_offset > 0
        with _naming_shard(replica):
            coll = await self._collection(replica, request.tenant, request.collection, will_sync=will_sync,
                                          budget=budget)
            query = parse_query_vector(request.vector, coll.schema.dim, coll.schema.name)
            synced = await self._reach(replica, coll, request.min_offset, request.sync_latest, budget)
        follower = replica.follower(coll.schema.partition)
        # Read before searching: the index reflects at least this offset.
        version = follower.applied_offset
        staleness = follower.staleness_ms()
        ef = request.ef_search or None
        # Without documents to read, on the event loop when no write holds the index (a thread
        # hand-off costs more than the search); else in a thread, never waiting on the loop.
        found = coll.index.search_records_now(query, request.k, flt, ef) if request.skip_documents else None
        if found is not None:
            results = self._hits(replica, coll, found, documents=False)
        else:
            results = await asyncio.to_thread(self._search, replica, coll, query, request.k, flt, ef,
                                              not request.skip_documents)
        metrics.SEARCH_LATENCY.observe(time.perf_counter() - began)
        return storage_pb2.ShardSearchResponse(results=results, partition=coll.schema.partition,
                                               index_version=version, staleness_ms=staleness,
                                               sync_performed=synced, shard=replica.shard)

    def _search(self, replica: ShardReplica, coll: Collection, query: np.ndarray, k: int, flt: Filter | None,
                ef: int | None, documents: bool) -> list[search_pb2.ScoredVector]:
        return self._hits(replica, coll, coll.index.search_records(query, k, flt, ef), documents=documents)

    def _hits(self, replica: ShardReplica, coll: Collection,
              found: tuple[list[str], np.ndarray, list[str]], *,
              documents: bool) -> list[search_pb2.ScoredVector]:
        ids, scores, metas = found
        docs = self._documents(replica, coll.collection_id, ids) if documents else {}
        return [search_pb2.ScoredVector(id=rid, score=float(score), metadata_json=meta,
                                        document=docs.get(rid, ""))
                for rid, score, meta in zip(ids, scores.tolist(), metas, strict=True)]

    @staticmethod
    def _documents(replica: ShardReplica, collection_id: str, ids: list[str]) -> dict[str, str]:
        found = replica.read_live(collection_id, ids, skip_corrupt=True)
        return {rid: view.document for rid, view in found.items()}

    async def Get(self, request: storage_pb2.ShardGetRequest,
                  context: grpc.aio.ServicerContext) -> storage_pb2.ShardGetResponse:
        began = time.perf_counter()
        with self._serving(request) as replica:
            return await self._get_replica(replica, request, context, began)

    async def _get_replica(self, replica: ShardReplica, request: storage_pb2.ShardGetRequest,
                           context: grpc.aio.ServicerContext, began: float) -> storage_pb2.ShardGetResponse:
        if len(request.ids) > MAX_BATCH_ROWS:
            raise InvalidRequest(f"at most {MAX_BATCH_ROWS} ids per get, got {len(request.ids)}")
        budget = _Budget(0, context)  # a Get's only limit is its caller's gRPC deadline
        will_sync = request.sync_latest or request.min_offset > 0
        with _naming_shard(replica):
            coll = await self._collection(replica, request.tenant, request.collection, will_sync=will_sync,
                                          budget=budget)
            await self._reach(replica, coll, request.min_offset, request.sync_latest, budget)
        version = replica.follower(coll.schema.partition).applied_offset
        records, missing = await asyncio.to_thread(self._get, replica, coll, list(request.ids),
                                                   request.include_vectors)
        metrics.GET_LATENCY.observe(time.perf_counter() - began)
        return storage_pb2.ShardGetResponse(records=records, missing_ids=missing, index_version=version)

    @staticmethod
    def _get(replica: ShardReplica, coll: Collection, ids: list[str],
             include_vectors: bool) -> tuple[list[storage_pb2.StoredRecord], list[str]]:
        found = replica.read_live(coll.collection_id, ids)
        records: list[storage_pb2.StoredRecord] = []
        missing: list[str] = []
        for rid in ids:
            view = found.get(rid)
            if view is None:
                missing.append(rid)
                continue
            records.append(storage_pb2.StoredRecord(
                id=rid, vector=view.vector.tobytes() if include_vectors else b"",
                metadata_json=view.metadata_json, document=view.document,
                offset=view.entry_offset, hlc=view.hlc))
        return records, missing

    async def Scan(self, request: storage_pb2.ShardScanRequest,
                   context: grpc.aio.ServicerContext) -> storage_pb2.ShardScanResponse:
        with self._serving(request) as replica:
            return await self._scan_replica(replica, request, context)

    async def _scan_replica(self, replica: ShardReplica, request: storage_pb2.ShardScanRequest,
                            context: grpc.aio.ServicerContext) -> storage_pb2.ShardScanResponse:
        if not 1 <= request.limit <= MAX_BATCH_ROWS:
            raise InvalidRequest(f"limit must be between 1 and {MAX_BATCH_ROWS}, got {request.limit}")
        if request.after:
            validate_id(request.after, field="after")
        options = ScanOptions(include_vectors=request.include_vectors,
                              include_metadata=request.include_metadata,
                              include_documents=request.include_documents,
                              filter=filter_from_json(request.filter_json))
        budget = _Budget(request.timeout_ms, context)
        will_sync = request.sync_latest or request.min_offset > 0
        with _naming_shard(replica):
            coll = await self._collection(replica, request.tenant, request.collection, will_sync=will_sync,
                                          budget=budget)
            await self._reach(replica, coll, request.min_offset, request.sync_latest, budget)
        version = replica.follower(coll.schema.partition).applied_offset
        page = await asyncio.to_thread(replica.scan, coll.collection_id, request.after, request.limit,
                                       options)
        return storage_pb2.ShardScanResponse(records=page.records, exhausted=page.exhausted,
                                             scanned_to=page.scanned_to, index_version=version)

    async def BackupShard(self, request: storage_pb2.BackupShardRequest,
                          context: grpc.aio.ServicerContext) -> storage_pb2.BackupShardResponse:
        with self.node.serving(request.shard) as replica, _naming_shard(replica):
            return await backup_replica(replica, request)

    async def CopyShard(self, request: storage_pb2.CopyShardRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[storage_pb2.ShardFileChunk]:
        with self.node.serving(request.shard) as replica, _naming_shard(replica):
            async for chunk in stream_copy(replica):
                yield chunk

    async def Status(self, request: storage_pb2.NodeStatusRequest,
                     context: grpc.aio.ServicerContext) -> storage_pb2.NodeStatusResponse:
        replicas = []
        for _shard, replica in sorted(self.node.replicas.items()):
            with replica.use():
                replicas.append(await _replica_status(replica))
        answer = storage_pb2.NodeStatusResponse(node_id=self.node.node_id, ready=self.node.is_ready,
                                                replicas=replicas)
        if replicas:
            first = replicas[0]
            answer.shard = first.shard
            answer.partitions.extend(first.partitions)
            answer.collections.extend(first.collections)
        return answer


async def _replica_status(replica: ShardReplica) -> storage_pb2.ReplicaStatus:
    status = storage_pb2.ReplicaStatus(shard=replica.shard, replica=replica.replica,
                                       replica_id=replica.replica_id, ready=replica.ready,
                                       halted=replica.halts.reasons())
    for name, follower in replica.followers.items():
        offset, hlc = follower.applied()
        status.partitions.append(storage_pb2.PartitionProgress(
            partition=name, applied_offset=offset, applied_hlc=hlc, head_offset=follower.head(),
            staleness_ms=follower.staleness_ms()))
    try:
        local = replica.local
    except Unavailable:
        return status  # still opening its local state
    counts = await asyncio.to_thread(local.locations.counts)
    for coll in local.registry.collections():
        live, dead = counts.get(coll.collection_id, (0, 0))
        status.collections.append(storage_pb2.CollectionStats(collection=coll.label, live_records=live,
                                                              deleted_records=dead))
    return status


def _replica_payload(replica: ShardReplica) -> dict[str, Any]:
    lag_ops, staleness_ms = replica.lag()
    return {"shard": replica.shard, "replica_id": replica.replica_id, "state": replica.state,
            "ready": replica.ready, "applied": replica.applied(), "lag_ops": lag_ops,
            "staleness_ms": staleness_ms, "halted": replica.halts.reasons()}


def status_payload(node: StorageNode) -> dict[str, Any]:
    """The storage fields of /healthz.

    ``replicas``: every hosted replica (lowest shard first) with its ``state`` (``serving`` /
    ``catching-up``) and lag (``lag_ops``: entries behind the journal heads heard of;
    ``staleness_ms``); ``shards`` the serving shards, ``loading_shards`` those catching up,
    ``local_shards`` every shard directory on disk; ``placement_version`` the map followed (0:
    none, the flags); ``hosting`` the change under way and failed ones. ``shard``, ``applied`` and
    ``halted`` at the top are the first replica's, which for a node hosting one shard is all of it.
    """
    replicas = [_replica_payload(r) for _s, r in sorted(node.replicas.items())]
    first = replicas[0] if replicas else {"shard": None, "applied": {}, "halted": {}}
    current = node.hosting.current
    return {"shard": first["shard"], "shards": node.serving_shards(), "loading_shards": node.loading_shards(),
            "local_shards": local_shards(Path(node.cfg.data_dir)), "replica": node.replica,
            "placement_version": node.placement_version,
            "hosting": {"changing": None if current is None else {"action": current[0], "shard": current[1]},
                        "failed": {str(s): reason for s, reason in sorted(node.hosting.failed.items())}},
            "applied": first["applied"], "halted": first["halted"], "replicas": replicas}
