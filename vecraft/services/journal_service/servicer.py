"""gRPC adapter: ``vecraft.v1.JournalService`` on top of :class:`~.journal.Journal`.

Errors are raised as VecraftError; the service shell's interceptor turns
them into gRPC statuses with ``vecraft-error`` / ``retry-after-ms`` metadata.
A NotOwner refusal (another journal instance owns the partition) also carries
the owner's address as ``vecraft-journal-owner: <partition>=<host:port>``
trailing metadata — on the failed call, and on an AppendBatch whose results
hold ``not_owner`` errors — so the client goes to the owner next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import grpc

from vecraft.services.journal_service.journal import Journal
from vecraft.shared.common.errors import InvalidRequest, NotOwner, VecraftError
from vecraft.shared.common.grpc_errors import ERROR_KEY, RETRY_AFTER_KEY, status_code
from vecraft.shared.common.logging import request_id_var
from vecraft.shared.rpc.v1 import journal_pb2, journal_pb2_grpc

log = logging.getLogger(__name__)

MAX_BATCH_APPENDS = 10_000
#: Trailing metadata naming a partition's owner: ``<partition>=<host:port>`` (one value per partition).
OWNER_KEY = "vecraft-journal-owner"


def owner_metadata(errors: list[NotOwner]) -> tuple[tuple[str, str], ...]:
    """``vecraft-journal-owner`` values for the refusals that name an owner's address."""
    pairs = {(str(e.details.get("partition", "")), str(e.details.get("owner_address", ""))) for e in errors}
    return tuple((OWNER_KEY, f"{partition}={address}") for partition, address in sorted(pairs)
                 if partition and address)


async def abort_not_owner(context: grpc.aio.ServicerContext, err: NotOwner) -> None:
    """Abort the call with ``err``'s status and metadata, the owner's address included."""
    metadata = [(ERROR_KEY, err.wire_name), *owner_metadata([err])]
    if err.retry_after_ms is not None:
        metadata.append((RETRY_AFTER_KEY, str(int(err.retry_after_ms))))
    await context.abort(status_code(err), err.message, trailing_metadata=tuple(metadata))


class JournalServicer(journal_pb2_grpc.JournalServiceServicer):
    def __init__(self, journal: Journal) -> None:
        self._journal = journal

    async def Append(self, request: journal_pb2.AppendRequest,
                     context: grpc.aio.ServicerContext) -> journal_pb2.AppendResponse:
        request_id_var.set(request.request_id)
        try:
            return await self._journal.append(request)
        except NotOwner as err:
            await abort_not_owner(context, err)
            raise  # not reached: abort raises

    async def AppendBatch(self, request: journal_pb2.AppendBatchRequest,
                          context: grpc.aio.ServicerContext) -> journal_pb2.AppendBatchResponse:
        if len(request.requests) > MAX_BATCH_APPENDS:
            raise InvalidRequest(f"a batch holds at most {MAX_BATCH_APPENDS} appends, "
                                 f"got {len(request.requests)}")
        # Concurrently: the appends share group commits and wait for their acks together.
        refused: list[NotOwner] = []
        results = await asyncio.gather(*[self._append_one(r, refused) for r in request.requests])
        if refused:
            context.set_trailing_metadata(owner_metadata(refused))
        return journal_pb2.AppendBatchResponse(results=results)

    async def _append_one(self, request: journal_pb2.AppendRequest,
                          refused: list[NotOwner]) -> journal_pb2.AppendResult:
        request_id_var.set(request.request_id)
        try:
            return journal_pb2.AppendResult(response=await self._journal.append(request))
        except VecraftError as err:
            if isinstance(err, NotOwner):
                refused.append(err)
            return journal_pb2.AppendResult(error=err.wire_name, message=err.message,
                                            retry_after_ms=err.retry_after_ms or 0)
        except Exception:
            log.exception("unhandled error in a batched append")
            return journal_pb2.AppendResult(error=VecraftError.wire_name, message="internal error in Append")

    async def GetOffset(self, request: journal_pb2.GetOffsetRequest,
                        context: grpc.aio.ServicerContext) -> journal_pb2.GetOffsetResponse:
        return await self._journal.get_offsets(request.partitions)

    async def PullWAL(self, request: journal_pb2.PullWALRequest,
                      context: grpc.aio.ServicerContext) -> journal_pb2.PullWALResponse:
        return await self._journal.pull(request)

    async def Subscribe(self, request: journal_pb2.SubscribeRequest,
                        context: grpc.aio.ServicerContext) -> AsyncIterator[journal_pb2.SubscribeEvent]:
        try:
            async for event in self._journal.subscribe(request):
                yield event
        except NotOwner as err:
            await abort_not_owner(context, err)

    async def ReportApplied(self, request: journal_pb2.ReportAppliedRequest,
                            context: grpc.aio.ServicerContext) -> journal_pb2.ReportAppliedResponse:
        try:
            await self._journal.report_applied(request.partition, request.replica_id, request.applied_offset)
        except NotOwner as err:
            await abort_not_owner(context, err)
        return journal_pb2.ReportAppliedResponse()

    async def Leave(self, request: journal_pb2.LeaveRequest,
                    context: grpc.aio.ServicerContext) -> journal_pb2.LeaveResponse:
        try:
            known = await self._journal.leave(request.partition, request.replica_id)
        except NotOwner as err:
            await abort_not_owner(context, err)
            raise  # not reached: abort raises
        return journal_pb2.LeaveResponse(known=known)

    async def LookupRequest(self, request: journal_pb2.LookupRequestRequest,
                            context: grpc.aio.ServicerContext) -> journal_pb2.LookupRequestResponse:
        return await self._journal.lookup(request.request_id)

    async def Stats(self, request: journal_pb2.StatsRequest,
                    context: grpc.aio.ServicerContext) -> journal_pb2.StatsResponse:
        return self._journal.stats()

    async def Trim(self, request: journal_pb2.TrimRequest,
                   context: grpc.aio.ServicerContext) -> journal_pb2.TrimResponse:
        try:
            return await self._journal.trim(request)
        except NotOwner as err:
            await abort_not_owner(context, err)
            raise  # not reached: abort raises
