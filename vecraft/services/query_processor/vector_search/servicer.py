"""gRPC face of the query processor: ``QueryProcessorService.Search`` and ``Status``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from vecraft.shared.rpc.v1 import query_pb2, query_pb2_grpc, storage_pb2

if TYPE_CHECKING:
    from vecraft.services.query_processor.main import QueryProcessor


class QueryProcessorServicer(query_pb2_grpc.QueryProcessorServiceServicer):
    """Thin adapter: errors are VecraftErrors, mapped to gRPC status by the shell's interceptor."""

    def __init__(self, service: QueryProcessor) -> None:
        self.service = service

    async def Search(self, request: query_pb2.QuerySearchRequest,
                     context: grpc.aio.ServicerContext) -> query_pb2.QuerySearchResponse:
        return await self.service.search_in_process(request, context.time_remaining())

    async def Status(self, request: storage_pb2.NodeStatusRequest,
                     context: grpc.aio.ServicerContext) -> storage_pb2.NodeStatusResponse:
        svc = self.service
        shards = svc.shards
        resp = storage_pb2.NodeStatusResponse(node_id=svc.node_id, shard=shards[0] if shards else 0,
                                              ready=svc.is_ready)
        cache = svc.cache
        if cache is None:
            return resp
        for snap in svc.freshness():
            resp.partitions.append(storage_pb2.PartitionProgress(
                partition=snap.partition, applied_offset=snap.applied_offset, applied_hlc=snap.applied_hlc,
                head_offset=snap.head_offset, staleness_ms=snap.staleness_ms))
        for schema in cache.collections():
            resp.collections.append(storage_pb2.CollectionStats(collection=schema.name))
        return resp
