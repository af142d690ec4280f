"""Answering through storage nodes while the processor's own cache cannot (warm-up).

The storage replicas given with ``--storage-addresses`` hold the
authoritative copy of the shards and run pull-before-read themselves
(``ShardSearchRequest.min_offset`` / ``sync_latest``), so the consistency
level is still met, only without this processor's cache (``cache_hit`` is
false). Which address serves which shards is learned from their ``Status`` (a
storage node may host several shard replicas), and every request names its
shard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from vecraft.services.query_processor.vector_search.request import ParsedQuery
from vecraft.shared.common import in_process
from vecraft.shared.common.errors import DeadlineExceeded, InvalidRequest, NotFound, Unavailable, VecraftError
from vecraft.shared.common.grpc_errors import translate_rpc_error
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.records import ShardHits
from vecraft.shared.rpc.convert import hits_from_proto
from vecraft.shared.rpc.v1 import storage_pb2, storage_pb2_grpc

log = logging.getLogger(__name__)


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

    def __init__(self, addresses: Sequence[str]) -> None:
        self.addresses = list(addresses)
        self._channels = {a: grpc_channel(a) for a in self.addresses}
        self._stubs = {a: storage_pb2_grpc.StorageNodeServiceStub(c) for a, c in self._channels.items()}
        self._by_shard: dict[int, list[str]] = {}

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._channels.values()), return_exceptions=True)

    async def _discover(self) -> None:
        """Ask every address which shards it hosts (addresses that do not answer are skipped)."""
        by_shard: dict[int, list[str]] = {}
        for address, stub in self._stubs.items():
            try:
                with translate_rpc_error():
                    status = await stub.Status(storage_pb2.NodeStatusRequest(), timeout=2.0)
            except VecraftError as err:
                log.info("storage node %s did not answer Status: %s", address, err.message)
                continue
            # A node of the single-shard version lists no replicas: its one shard is `shard`.
            for shard in [r.shard for r in status.replicas] or [status.shard]:
                by_shard.setdefault(shard, []).append(address)
        self._by_shard = by_shard

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
            return await self._stubs[address].Search(request, timeout=timeout_s)
        try:
            async with asyncio.timeout(timeout_s):
                return await local.storage_search_in_process(request)
        except TimeoutError:
            raise DeadlineExceeded(f"storage node {address} did not answer within {timeout_s:.3g} s") \
                from None

    async def _search_shard(self, q: ParsedQuery, shard: int,
                            timeout_s: float) -> storage_pb2.ShardSearchResponse:
        addresses = self._by_shard.get(shard, [])
        if not addresses:
            raise Unavailable(f"no storage replica of shard {shard} is reachable", retry_after_ms=500)
        req = q.requirement
        request = storage_pb2.ShardSearchRequest(
            collection=q.collection, tenant=q.tenant, vector=q.vector.astype("<f4").tobytes(), k=q.k,
            filter_json=q.filter_json, ef_search=q.ef_search or 0, min_offset=req.min_offset,
            sync_latest=req.latest, timeout_ms=int(timeout_s * 1000), shard=shard,
            # The gateway reads the documents of the final top-k itself.
            skip_documents=True)
        last: VecraftError | None = None
        for address in addresses:
            try:
                with translate_rpc_error():
                    resp = await self._ask(address, request, timeout_s)
                    if (req.level is ConsistencyLevel.BOUNDED_STALENESS
                            and resp.staleness_ms > req.max_staleness_ms):
                        request.sync_latest = True
                        resp = await self._ask(address, request, timeout_s)
                bounded = req.level is ConsistencyLevel.BOUNDED_STALENESS
                if bounded and resp.staleness_ms > req.max_staleness_ms:
                    # Never a silent downgrade: the replica could not confirm it is that fresh.
                    raise Unavailable(f"storage replica {address} of shard {shard} is {resp.staleness_ms} ms "
                                      f"stale after a sync, above the bound of {req.max_staleness_ms} ms",
                                      retry_after_ms=500)
                return resp
            except (InvalidRequest, NotFound):
                raise
            except VecraftError as err:
                last = err
                log.info("storage replica %s of shard %d failed: %s", address, shard, err.message)
        raise Unavailable(f"no storage replica of shard {shard} answered: "
                          f"{last.message if last else 'none'}", retry_after_ms=500) from last

