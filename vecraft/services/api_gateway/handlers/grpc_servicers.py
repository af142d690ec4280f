"""The public gRPC services: the spec's VectorSearchService and the CollectionService,
VectorService and OperationService twins of the HTTP API.

Each method converts with :mod:`.grpc_codec` and calls the same :class:`Gateway`
operation as the HTTP route; VecraftErrors become gRPC statuses in the shell's
``ErrorInterceptor``. With auth on, every call needs the metadata
``authorization: Bearer <key>`` (UNAUTHENTICATED otherwise), checked before the
request is looked at; the domain layer checks the key's role and scope.
"""

from __future__ import annotations

from typing import TypeAlias

import grpc
from google.protobuf.message import Message

from vecraft.services.api_gateway.auth.keyring import KeyRing
from vecraft.services.api_gateway.auth.principal import OPEN
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers import grpc_codec as codec
from vecraft.services.api_gateway.models import RequestContext
from vecraft.shared.common.logging import request_id_var
from vecraft.shared.model.routing import DEFAULT_COLLECTION
from vecraft.shared.rpc.convert import schema_to_proto
from vecraft.shared.rpc.v1 import (
    collection_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    journal_pb2,
    search_pb2,
    search_pb2_grpc,
)

Context: TypeAlias = grpc.aio.ServicerContext


class _Authenticated:
    """What every servicer shares: the gateway and the key check of each call."""

    def __init__(self, gateway: Gateway, keys: KeyRing | None = None) -> None:
        self._gateway = gateway
        self._keys = keys

    def _context(self, context: Context, message: Message, **fields: str) -> RequestContext:
        """The context of a call whose request is ``message`` (its size counts for quotas)."""
        metadata = context.invocation_metadata() or ()
        principal = OPEN
        if self._keys is not None:
            header = next((v for k, v in metadata if k == "authorization" and isinstance(v, str)), None)
            principal = self._keys.authenticate(header)
        ctx = codec.request_context(metadata, principal=principal, request_bytes=message.ByteSize(),
                                    **fields)
        request_id_var.set(ctx.request_id)
        return ctx


class VectorSearchServicer(_Authenticated, search_pb2_grpc.VectorSearchServiceServicer):

    async def Search(self, request: search_pb2.SearchRequest, context: Context) -> search_pb2.SearchResponse:
        ctx = self._context(context, request, session_token=request.session_token)
        outcome = await self._gateway.search(codec.search_query(request), ctx)
        return codec.search_response(outcome)


class VectorServicer(_Authenticated, gateway_pb2_grpc.VectorServiceServicer):

    async def Insert(self, request: gateway_pb2.WriteVectorsRequest,
                     context: Context) -> gateway_pb2.WriteVectorsResponse:
        return await self._write(request, context, upsert=False)

    async def Upsert(self, request: gateway_pb2.WriteVectorsRequest,
                     context: Context) -> gateway_pb2.WriteVectorsResponse:
        return await self._write(request, context, upsert=True)

    async def _write(self, request: gateway_pb2.WriteVectorsRequest, context: Context, *,
                     upsert: bool) -> gateway_pb2.WriteVectorsResponse:
        ctx = self._context(context, request, request_id=request.request_id, tenant=request.tenant,
                       session_token=request.session_token)
        outcome = await self._gateway.write(codec.write_batch(request, upsert=upsert), ctx)
        return codec.write_response(outcome)

    async def Delete(self, request: gateway_pb2.DeleteVectorsRequest,
                     context: Context) -> gateway_pb2.WriteVectorsResponse:
        ctx = self._context(context, request, request_id=request.request_id, tenant=request.tenant,
                       session_token=request.session_token)
        return codec.delete_response(await self._gateway.delete(codec.delete_batch(request), ctx))

    async def Get(self, request: gateway_pb2.GetVectorsRequest,
                  context: Context) -> gateway_pb2.GetVectorsResponse:
        ctx = self._context(context, request, tenant=request.tenant, session_token=request.session_token)
        return codec.get_response(await self._gateway.get(codec.get_query(request), ctx))

    async def ListRecords(self, request: gateway_pb2.ListRecordsRequest,
                          context: Context) -> gateway_pb2.ListRecordsResponse:
        ctx = self._context(context, request, tenant=request.tenant, session_token=request.session_token)
        return codec.list_response(await self._gateway.list_records(codec.list_query(request), ctx))


class CollectionServicer(_Authenticated, gateway_pb2_grpc.CollectionServiceServicer):

    async def CreateCollection(self, request: collection_pb2.CreateCollectionRequest,
                               context: Context) -> collection_pb2.CollectionSchema:
        ctx = self._context(context, request, request_id=request.request_id, tenant=request.tenant)
        schema = await self._gateway.create_collection(codec.collection_spec(request), ctx)
        return schema_to_proto(schema)

    async def GetCollection(self, request: collection_pb2.GetCollectionRequest,
                            context: Context) -> collection_pb2.CollectionSchema:
        ctx = self._context(context, request, tenant=request.tenant)
        return schema_to_proto(await self._gateway.get_collection(request.name or DEFAULT_COLLECTION, ctx))

    async def ListCollections(self, request: collection_pb2.ListCollectionsRequest,
                              context: Context) -> collection_pb2.ListCollectionsResponse:
        ctx = self._context(context, request, tenant=request.tenant)
        schemas = await self._gateway.list_collections(ctx)
        return collection_pb2.ListCollectionsResponse(collections=[schema_to_proto(s) for s in schemas])

    async def DropCollection(self, request: collection_pb2.DropCollectionRequest,
                             context: Context) -> collection_pb2.DropCollectionResponse:
        ctx = self._context(context, request, request_id=request.request_id, tenant=request.tenant)
        return codec.drop_response(await self._gateway.drop_collection(request.name, ctx))

    async def AlterCollection(self, request: collection_pb2.AlterCollectionRequest,
                              context: Context) -> collection_pb2.CollectionSchema:
        ctx = self._context(context, request, request_id=request.request_id, tenant=request.tenant)
        schema = await self._gateway.alter_collection(request.name, request.hnsw.ef_search, ctx)
        return schema_to_proto(schema)


class OperationServicer(_Authenticated, gateway_pb2_grpc.OperationServiceServicer):

    async def GetOperation(self, request: gateway_pb2.GetOperationRequest,
                           context: Context) -> journal_pb2.LookupRequestResponse:
        ctx = self._context(context, request)
        return codec.operation_response(await self._gateway.operation(request.request_id, ctx))

    async def ReadJournal(self, request: gateway_pb2.ReadJournalRequest,
                          context: Context) -> gateway_pb2.ReadJournalResponse:
        ctx = self._context(context, request)
        partition, from_offset, limit = codec.journal_request(request)
        return codec.journal_response(await self._gateway.read_journal(partition, from_offset, limit, ctx))


def add_servicers(server: grpc.aio.Server, gateway: Gateway, keys: KeyRing | None = None) -> None:
    """Register every public gRPC service of the gateway on ``server``; ``keys``: auth on."""
    search_pb2_grpc.add_VectorSearchServiceServicer_to_server(VectorSearchServicer(gateway, keys), server)
    gateway_pb2_grpc.add_VectorServiceServicer_to_server(VectorServicer(gateway, keys), server)
    gateway_pb2_grpc.add_CollectionServiceServicer_to_server(CollectionServicer(gateway, keys), server)
    gateway_pb2_grpc.add_OperationServiceServicer_to_server(OperationServicer(gateway, keys), server)
