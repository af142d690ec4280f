"""gRPC adapter: ``vecraft.v1.JournalService`` on top of :class:`~.journal.Journal`.

Errors are raised as VecraftError; the service shell's interceptor turns
them into gRPC statuses with ``vecraft-error`` / ``retry-after-ms`` metadata.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from vecraft.services.journal_service.journal import Journal
from vecraft.shared.common.logging import request_id_var
from vecraft.shared.rpc.v1 import journal_pb2, journal_pb2_grpc


class JournalServicer(journal_pb2_grpc.JournalServiceServicer):
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def Append(self, request: journal_pb2.AppendRequest,  # noqa: N802 - gRPC method name
                     context: grpc.aio.ServicerContext) -> journal_pb2.AppendResponse:
        request_id_var.set(request.request_id)
        return await self._journal.append(request)

    async def GetOffset(self, request: journal_pb2.GetOffsetRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> journal_pb2.GetOffsetResponse:
        return self._journal.get_offsets(request.partitions)

    async def PullWAL(self, request: journal_pb2.PullWALRequest,  # noqa: N802
                      context: grpc.aio.ServicerContext) -> journal_pb2.PullWALResponse:
        return await self._journal.pull(request)

    async def Subscribe(self, request: journal_pb2.SubscribeRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> AsyncIterator[journal_pb2.SubscribeEvent]:
        async for event in self._journal.subscribe(request):
            yield event

    async def ReportApplied(self, request: journal_pb2.ReportAppliedRequest,  # noqa: N802
                            context: grpc.aio.ServicerContext) -> journal_pb2.ReportAppliedResponse:
        self._journal.report_applied(request.partition, request.replica_id, request.applied_offset)
        return journal_pb2.ReportAppliedResponse()

    async def LookupRequest(self, request: journal_pb2.LookupRequestRequest,  # noqa: N802
                            context: grpc.aio.ServicerContext) -> journal_pb2.LookupRequestResponse:
        return await self._journal.lookup(request.request_id)

    async def Stats(self, request: journal_pb2.StatsRequest,  # noqa: N802
                    context: grpc.aio.ServicerContext) -> journal_pb2.StatsResponse:
        return self._journal.stats()
