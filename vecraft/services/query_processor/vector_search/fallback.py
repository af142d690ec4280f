"""Answering through storage nodes while the processor's own cache cannot (warm-up, ``--no-cache``).

The storage replicas hold the authoritative copy of the shards and run
pull-before-read themselves (``ShardSearchRequest.min_offset`` /
``sync_latest``), so the consistency level is still met, only without this
processor's cache (``cache_hit`` is false). Which storage node serves which
shards now is read from the meta manager's node registry (``ListNodes``: each
node declares the shards it serves; a node marked down is skipped), as the
gateway routes: no storage address is configured. The registry is read again
when a shard has no known replica, or when every known replica of a shard
failed (the shard moved, a node died), at most once per
:data:`REDISCOVER_MIN_S`; while the meta manager cannot answer, the last view
stays in use. Every request names its shard.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Protocol

import grpc

from vecraft.services.query_processor.vector_search.request import ParsedQuery
from vecraft.shared.common import in_process
from vecraft.shared.common.errors import DeadlineExceeded, InvalidRequest, NotFound, Unavailable, VecraftError
from vecraft.shared.common.grpc_errors import translate_rpc_error
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.records import ShardHits
from vecraft.shared.rpc.convert import hits_from_proto
from vecraft.shared.rpc.v1 import meta_pb2, storage_pb2, storage_pb2_grpc

log = logging.getLogger(__name__)

#: The registry is read at most this often on failures (a shard with no replica at all is asked
#: for at once).
REDISCOVER_MIN_S = 0.5


class StorageDirectory(Protocol):
    """Where the storage nodes are: the meta manager's node registry (``MetaClient`` provides it)."""

    async def list_nodes(self, role: str = "") -> list[meta_pb2.NodeInfo]: ...


@dataclass(frozen=True, slots=True)
class FallbackAnswer:
    """Merged view of the storage nodes' answers: the weakest position any shard searched at."""

    hits: list[ShardHits]
    partition: str
    index_version: int
    staleness_ms: int
    sync_performed: bool


class StorageFallback:
    """Storage replicas of the served shards, used when the cache cannot answer.

    Contract: :meth:`search` raises Unavailable when no replica of a needed
    shard answers, and passes on the replicas' InvalidRequest / NotFound.
    """

    def __init__(self, directory: StorageDirectory) -> None:
        self._directory = directory
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, storage_pb2_grpc.StorageNodeServiceStub] = {}
        self._by_shard: dict[int, list[str]] = {}
        self._discovered_at = -REDISCOVER_MIN_S
        self._discovering: asyncio.Future[None] | None = None

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._channels.values()), return_exceptions=True)
        self._channels.clear()
        self._stubs.clear()

    def replicas(self, shard: int) -> list[str]:
        """The storage nodes last seen serving ``shard`` (gRPC addresses)."""
        return list(self._by_shard.get(shard, ()))

    async def _discover(self) -> None:
        """Read the registry; concurrent callers share one read (a caller that goes away does not
        cancel it for the others)."""
        if self._discovering is None or self._discovering.done():
            self._discovering = asyncio.ensure_future(self._read_registry())
        await asyncio.shield(self._discovering)

    async def _read_registry(self) -> None:
        self._discovered_at = time.monotonic()
        try:
            nodes = await self._directory.list_nodes("storage")
        except VecraftError as err:
            # The meta manager restarting or failing over: the last view stays in use.
            log.info("storage nodes not listed (keeping the last view): %s", err.message)
            return
        by_shard: dict[int, list[str]] = {}
        for node in nodes:
            if node.state == "down" or not node.address:
                continue
            for shard in node.shards:  # the shards it serves now, not those still loading
                by_shard.setdefault(shard, []).append(node.address)
        self._by_shard = by_shard

    def _stub(self, address: str) -> storage_pb2_grpc.StorageNodeServiceStub:
        stub = self._stubs.get(address)
        if stub is None:
            self._channels[address] = grpc_channel(address)
            stub = self._stubs[address] = storage_pb2_grpc.StorageNodeServiceStub(self._channels[address])
        return stub

    async def search(self, q: ParsedQuery, timeout_s: float) -> FallbackAnswer:
        """Search every shard of ``q`` on one of its storage replicas, at the level ``q`` asks."""
        if any(s not in self._by_shard for s in q.shards):
            await self._discover()
        answers = await asyncio.gather(*(self._search_shard(q, s, timeout_s) for s in q.shards))
        return FallbackAnswer(
            hits=[hits_from_proto(a.results) for a in answers],
            partition=answers[0].partition if answers else "",
            index_version=min((a.index_version for a in answers), default=0),
            staleness_ms=max((a.staleness_ms for a in answers), default=0),
            sync_performed=any(a.sync_performed for a in answers),
        )

    async def _ask(self, address: str, request: storage_pb2.ShardSearchRequest,
                   timeout_s: float) -> storage_pb2.ShardSearchResponse:
        """One storage ``Search``: directly when the node runs in this process (standalone mode)."""
        local = in_process.local_storage_search(address)
        if local is None:
            return await self._stub(address).Search(request, timeout=timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                return await local.storage_search_in_process(request)
        except TimeoutError:
            raise DeadlineExceeded(f"storage node {address} did not answer within {timeout_s:.3g} s") \
                from None

    async def _search_shard(self, q: ParsedQuery, shard: int,
                            timeout_s: float) -> storage_pb2.ShardSearchResponse:
        began = time.monotonic()
        tried: list[str] = []
        last: VecraftError | None = None
        while True:
            addresses = [a for a in self.replicas(shard) if a not in tried]
            for address in addresses:
                left = timeout_s - (time.monotonic() - began)
                if left <= 0:
                    break
                tried.append(address)
                try:
                    return await self._search_replica(q, shard, address, left)
                except (InvalidRequest, NotFound):
                    raise
                except VecraftError as err:
                    last = err
                    log.info("storage replica %s of shard %d failed: %s", address, shard, err.message)
            # Every replica known failed, or none is known: the shard may have moved.
            if time.monotonic() - self._discovered_at < REDISCOVER_MIN_S \
                    or time.monotonic() - began >= timeout_s:
                break
            await self._discover()
            if not [a for a in self.replicas(shard) if a not in tried]:
                break
        if last is None:
            raise Unavailable(f"no storage replica of shard {shard} is registered as serving it",
                              retry_after_ms=500)
        raise Unavailable(f"no storage replica of shard {shard} answered: {last.message}",
                          retry_after_ms=500) from last

    async def _search_replica(self, q: ParsedQuery, shard: int, address: str,
                              timeout_s: float) -> storage_pb2.ShardSearchResponse:
        """One replica's answer at the level ``q`` asks (a BOUNDED answer too stale is asked again
        with ``sync_latest``, then refused, never downgraded)."""
        req = q.requirement
        request = storage_pb2.ShardSearchRequest(
            collection=q.collection, tenant=q.tenant, vector=q.vector.astype("<f4").tobytes(), k=q.k,
            filter_json=q.filter_json, ef_search=q.ef_search or 0, min_offset=req.min_offset,
            sync_latest=req.latest, timeout_ms=int(timeout_s * 1000), shard=shard,
            # The gateway reads the documents of the final top-k itself.
            skip_documents=True)
        with translate_rpc_error():
            resp = await self._ask(address, request, timeout_s)
            if req.level is ConsistencyLevel.BOUNDED_STALENESS and resp.staleness_ms > req.max_staleness_ms:
                request.sync_latest = True
                resp = await self._ask(address, request, timeout_s)
        if req.level is ConsistencyLevel.BOUNDED_STALENESS and resp.staleness_ms > req.max_staleness_ms:
            raise Unavailable(f"storage replica {address} of shard {shard} is {resp.staleness_ms} ms "
                              f"stale after a sync, above the bound of {req.max_staleness_ms} ms",
                              retry_after_ms=500)
        return resp
