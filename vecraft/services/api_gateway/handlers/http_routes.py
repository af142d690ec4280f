"""The HTTP routes: parse with :mod:`.http_codec`, run the :class:`Gateway` operation, render.

Each route reads its JSON body itself (orjson, vectors to numpy) and declares
the body's schema for OpenAPI through ``openapi_extra``; responses are
returned ready-made (:class:`~..responses.JSONResponse`), their models are
documentation.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.routing import Route

from vecraft.services.api_gateway.gateway import MAX_JOURNAL_PAGE, Gateway
from vecraft.services.api_gateway.handlers import http_codec as codec
from vecraft.services.api_gateway.handlers import http_schemas as schemas
from vecraft.services.api_gateway.listing import DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT
from vecraft.services.api_gateway.models import DeleteBatch, GetQuery
from vecraft.services.api_gateway.responses import JSONResponse
from vecraft.shared.common.errors import InvalidRequest, NotFound
from vecraft.shared.model.routing import DEFAULT_COLLECTION

#: The fixed paths under /v1/vectors/ (all POST). They are never read as a record id, so
#: ``GET /v1/vectors/search`` is 405, not a read of a record named "search".
VECTOR_ACTIONS = ("batch", "delete", "search", "upsert")


class RecordIdConvertor(PathConvertor):
    """A record id in a path: may hold ``/`` (the id pattern allows it), is never empty and is
    never one of :data:`VECTOR_ACTIONS`."""

    regex = f"(?!(?:{'|'.join(VECTOR_ACTIONS)})$).+"


register_url_convertor("record_id", RecordIdConvertor())

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.ErrorResponse, "description": text}
    for status, text in [(400, "invalid request"), (401, "no valid API key (auth on)"),
                         (403, "the API key's role, tenant or collection scope does not allow it"),
                         (404, "not found"), (409, "conflict"),
                         (413, "payload too large"), (429, "journal back-pressure; see Retry-After"),
                         (503, "a downstream service or consistency level is unavailable"),
                         (504, "deadline exceeded")]
}

# Documented request headers (the middleware and codec read them from the request).
TenantHeader = Annotated[str | None, Header(alias="X-Tenant", description="tenant (default `default`)")]
SessionHeader = Annotated[str | None, Header(alias="X-Session-Token",
                                             description="read-your-writes token of earlier writes")]
RequestIdHeader = Annotated[str | None, Header(alias="X-Request-Id",
                                               description="idempotency key of writes; echoed back")]
AckQuery = Annotated[str | None, Query(description="journal | one | all (default); body `ack` wins")]
CollectionQuery = Annotated[str, Query(description="collection name")]
BodyCollectionQuery = Annotated[str | None, Query(
    alias="collection", description="collection name (default `default`); if the body names one "
                                    "too, they must agree")]


def _body(model: type[BaseModel]) -> dict[str, Any]:
    """``openapi_extra`` declaring a JSON request body of ``model`` (added to the components)."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


async def refuse_unknown_query_params(request: Request) -> None:
    """400 for a query parameter the route does not declare.

    Like an unknown body field: a typo such as ``?colection=docs`` would
    otherwise be ignored, and the write would go to (and create) ``default``.
    """
    route = request.scope.get("route")
    declared = {p.alias for p in route.dependant.query_params} if isinstance(route, APIRoute) else set()
    _refuse_unknown(request, declared)


def _refuse_unknown(request: Request, declared: set[str]) -> None:
    unknown = [name for name in request.query_params if name not in declared]
    if unknown:
        accepted = ", ".join(sorted(declared)) or "none"
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r}; accepted query parameters: "
                             f"{accepted}", details={"unknown_query_parameters": unknown})


async def _search(gateway: Gateway, request: Request, collection: str | None) -> JSONResponse:
    fields = codec.Fields(await codec.read_json(request), codec.SEARCH_FIELDS)
    ctx = codec.request_context(request, fields)
    query = codec.search_query(fields, request.headers, query_collection=collection)
    outcome = await gateway.search(query, ctx)
    return JSONResponse(codec.search_json(outcome, include_documents=query.include_documents),
                        headers=codec.search_headers(outcome))


async def _write_many(gateway: Gateway, request: Request, *, upsert: bool, ack: str | None,
                      collection: str | None) -> JSONResponse:
    """``POST /vectors/batch`` (insert) and ``/vectors/upsert``: one journal entry."""
    fields = codec.Fields(await codec.read_json(request), codec.BATCH_FIELDS)
    ctx = codec.request_context(request, fields)
    batch = codec.write_many(fields, upsert=upsert, query_ack=ack, query_collection=collection)
    return JSONResponse(codec.write_json(await gateway.write(batch, ctx)), status_code=201)


def lean_search_route(gateway: Gateway) -> Route:
    """``POST /v1/vectors/search`` without FastAPI's per-request dependency solving.

    The FastAPI route of :func:`build_router` declares the same endpoint for the OpenAPI
    document; this one is placed before it and answers, so a search skips FastAPI's
    parameter solving and its router (a fifth of the gateway's CPU per search; measured in
    docs/performance.md).
    """
    async def search(request: Request) -> JSONResponse:
        _refuse_unknown(request, {"collection"})
        return await _search(gateway, request, request.query_params.get("collection"))

    return Route("/v1/vectors/search", search, methods=["POST"])


def build_router(gateway: Gateway) -> APIRouter:
    """Every /v1 route, bound to ``gateway``."""
    router = APIRouter(prefix="/v1", responses=_ERRORS, dependencies=[Depends(refuse_unknown_query_params)])

    # --- search --------------------------------------------------------------------------------------
    @router.post("/vectors/search", response_model=schemas.SearchResponse, tags=["search"],
                 openapi_extra=_body(schemas.SearchRequest),
                 summary="Top-k similarity search at a chosen consistency level")
    async def search(
        request: Request,
        x_consistency_level: Annotated[str | None, Header(
            alias="X-Consistency-Level", description="eventual | bounded | read_your_writes | strong")]
        = None,
        x_max_staleness_ms: Annotated[str | None, Header(alias="X-Max-Staleness-Ms")] = None,
        collection: BodyCollectionQuery = None,
        x_tenant: TenantHeader = None, x_session_token: SessionHeader = None,
        x_request_id: RequestIdHeader = None,
    ) -> JSONResponse:
        return await _search(gateway, request, collection)

    # --- writes --------------------------------------------------------------------------------------
    @router.post("/vectors", status_code=201, response_model=schemas.WriteResponse, tags=["vectors"],
                 openapi_extra=_body(schemas.InsertRequest), summary="Insert one vector")
    async def insert(request: Request, ack: AckQuery = None, collection: BodyCollectionQuery = None,
                     x_tenant: TenantHeader = None,
                     x_session_token: SessionHeader = None,
                     x_request_id: RequestIdHeader = None) -> JSONResponse:
        fields = codec.Fields(await codec.read_json(request), codec.INSERT_FIELDS)
        ctx = codec.request_context(request, fields)
        batch = codec.write_one(fields, record_id=None, upsert=False, query_ack=ack,
                                query_collection=collection)
        return JSONResponse(codec.write_json(await gateway.write(batch, ctx)), status_code=201)

    @router.post("/vectors/batch", status_code=201, response_model=schemas.WriteResponse,
                 tags=["vectors"], openapi_extra=_body(schemas.BatchWriteRequest),
                 summary="Insert a batch of vectors as one journal entry")
    async def insert_batch(request: Request, ack: AckQuery = None, collection: BodyCollectionQuery = None,
                           x_tenant: TenantHeader = None,
                           x_session_token: SessionHeader = None,
                           x_request_id: RequestIdHeader = None) -> JSONResponse:
        return await _write_many(gateway, request, upsert=False, ack=ack, collection=collection)

    @router.post("/vectors/upsert", status_code=201, response_model=schemas.WriteResponse,
                 tags=["vectors"], openapi_extra=_body(schemas.BatchWriteRequest),
                 summary="Insert or replace a batch of vectors as one journal entry")
    async def upsert_batch(request: Request, ack: AckQuery = None, collection: BodyCollectionQuery = None,
                           x_tenant: TenantHeader = None,
                           x_session_token: SessionHeader = None,
                           x_request_id: RequestIdHeader = None) -> JSONResponse:
        return await _write_many(gateway, request, upsert=True, ack=ack, collection=collection)

    @router.post("/vectors/delete", response_model=schemas.DeleteResponse, tags=["vectors"],
                 openapi_extra=_body(schemas.DeleteBatchRequest),
                 summary="Delete vectors by id (idempotent)")
    async def delete_batch(request: Request, ack: AckQuery = None, collection: BodyCollectionQuery = None,
                           x_tenant: TenantHeader = None,
                           x_session_token: SessionHeader = None,
                           x_request_id: RequestIdHeader = None) -> JSONResponse:
        fields = codec.Fields(await codec.read_json(request), codec.DELETE_FIELDS)
        ctx = codec.request_context(request, fields)
        batch = codec.delete_batch(fields, query_ack=ack, query_collection=collection)
        return JSONResponse(codec.delete_json(await gateway.delete(batch, ctx)))

    @router.post("/transactions", status_code=201, response_model=schemas.WriteResponse,
                 tags=["vectors"], openapi_extra=_body(schemas.TransactionRequest),
                 summary="Write to several collections atomically (one journal entry)")
    async def transact(request: Request, ack: AckQuery = None, x_tenant: TenantHeader = None,
                       x_session_token: SessionHeader = None,
                       x_request_id: RequestIdHeader = None) -> JSONResponse:
        fields = codec.Fields(await codec.read_json(request), codec.TXN_FIELDS)
        ctx = codec.request_context(request, fields)
        txn = codec.transaction(fields, query_ack=ack)
        return JSONResponse(codec.write_json(await gateway.transact(txn, ctx)), status_code=201)

    @router.put("/vectors/{vector_id:record_id}", response_model=schemas.WriteResponse, tags=["vectors"],
                openapi_extra=_body(schemas.UpsertOneRequest), summary="Insert or replace one vector")
    async def upsert_one(request: Request, vector_id: Annotated[str, Path()], ack: AckQuery = None,
                         collection: BodyCollectionQuery = None,
                         x_tenant: TenantHeader = None, x_session_token: SessionHeader = None,
                         x_request_id: RequestIdHeader = None) -> JSONResponse:
        fields = codec.Fields(await codec.read_json(request), codec.UPSERT_ONE_FIELDS)
        ctx = codec.request_context(request, fields)
        batch = codec.write_one(fields, record_id=vector_id, upsert=True, query_ack=ack,
                                query_collection=collection)
        return JSONResponse(codec.write_json(await gateway.write(batch, ctx)))

    @router.delete("/vectors/{vector_id:record_id}", response_model=schemas.DeleteResponse, tags=["vectors"],
                   summary="Delete one vector (idempotent; `deleted` tells whether it existed)")
    async def delete_one(request: Request, vector_id: Annotated[str, Path()],
                         collection: CollectionQuery = DEFAULT_COLLECTION, ack: AckQuery = None,
                         x_tenant: TenantHeader = None, x_session_token: SessionHeader = None,
                         x_request_id: RequestIdHeader = None) -> JSONResponse:
        ctx = codec.request_context(request)
        batch = DeleteBatch(ids=[vector_id], collection=collection, ack=codec.parse_ack(ack))
        return JSONResponse(codec.delete_json(await gateway.delete(batch, ctx)))

    # --- reads by id ---------------------------------------------------------------------------------
    @router.get("/vectors/{vector_id:record_id}", response_model=schemas.RecordResponse, tags=["vectors"],
                summary="Get one vector by id")
    async def get_vector(
        request: Request, vector_id: Annotated[str, Path()],
        collection: CollectionQuery = DEFAULT_COLLECTION,
        include_vector: Annotated[bool, Query(description="return the vector")] = True,
        consistency_level: Annotated[str | None, Query(
            description="eventual (default) | read_your_writes | strong")] = None,
        x_tenant: TenantHeader = None, x_session_token: SessionHeader = None,
    ) -> JSONResponse:
        ctx = codec.request_context(request)
        query = GetQuery(ids=[vector_id], collection=collection, include_vectors=include_vector,
                         level=codec.level_param(consistency_level))
        record = codec.single_record(await gateway.get(query, ctx))
        if record is None:
            raise NotFound(f"vector {vector_id!r} not found in collection {collection!r}",
                           details={"id": vector_id, "collection": collection})
        return JSONResponse(codec.record_json(record))

    # --- collections ---------------------------------------------------------------------------------
    @router.post("/collections", status_code=201, response_model=schemas.CollectionResponse,
                 tags=["collections"], openapi_extra=_body(schemas.CreateCollectionRequest),
                 summary="Create a collection")
    async def create_collection(request: Request, x_tenant: TenantHeader = None,
                                x_request_id: RequestIdHeader = None) -> JSONResponse:
        fields = codec.Fields(await codec.read_json(request), codec.COLLECTION_FIELDS)
        ctx = codec.request_context(request)
        schema = await gateway.create_collection(codec.collection_spec(fields), ctx)
        return JSONResponse(codec.collection_json(schema), status_code=201)

    @router.get("/collections", response_model=schemas.CollectionListResponse, tags=["collections"],
                summary="List collections")
    async def list_collections(request: Request, x_tenant: TenantHeader = None) -> JSONResponse:
        ctx = codec.request_context(request)
        schemas_ = await gateway.list_collections(ctx)
        return JSONResponse({"collections": [codec.collection_json(s) for s in schemas_]})

    @router.get("/collections/{name}", response_model=schemas.CollectionResponse, tags=["collections"],
                summary="Get a collection")
    async def get_collection(request: Request, name: str, x_tenant: TenantHeader = None) -> JSONResponse:
        return JSONResponse(codec.collection_json(
            await gateway.get_collection(name, codec.request_context(request))))

    @router.get("/collections/{name}/records", response_model=schemas.RecordPageResponse,
                tags=["collections"], summary="List a collection's records in id order, a page at a time")
    async def list_records(
        request: Request, name: str,
        after: Annotated[str | None, Query(
            description="records with an id after this one (the previous page's `next_cursor`)")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIST_LIMIT, description="records per page")]
        = DEFAULT_LIST_LIMIT,
        include_vectors: Annotated[bool, Query(description="return the vectors")] = False,
        include_metadata: Annotated[bool, Query(description="return the metadata")] = True,
        include_documents: Annotated[bool, Query(description="return the documents")] = True,
        filter_text: Annotated[str | None, Query(
            alias="filter", description='metadata filter as JSON, e.g. {"category": "documents"}')] = None,
        consistency_level: Annotated[str | None, Query(
            description="eventual (default) | read_your_writes | strong")] = None,
        min_required_offset: Annotated[int, Query(
            ge=0, le=2**63 - 1, description="read at least this offset of the collection's partition")] = 0,
        x_tenant: TenantHeader = None, x_session_token: SessionHeader = None,
    ) -> JSONResponse:
        ctx = codec.request_context(request)
        query = codec.list_query(name, after=after, limit=limit, include_vectors=include_vectors,
                                 include_metadata=include_metadata, include_documents=include_documents,
                                 filter_text=filter_text, consistency_level=consistency_level,
                                 min_required_offset=min_required_offset)
        return JSONResponse(codec.record_page_json(name, await gateway.list_records(query, ctx)))

    @router.patch("/collections/{name}", response_model=schemas.CollectionResponse, tags=["collections"],
                  openapi_extra=_body(schemas.AlterCollectionRequest),
                  summary="Change a collection's search breadth (hnsw.ef_search)")
    async def alter_collection(request: Request, name: str, x_tenant: TenantHeader = None,
                               x_request_id: RequestIdHeader = None) -> JSONResponse:
        fields = codec.Fields(await codec.read_json(request), ("hnsw",))
        ctx = codec.request_context(request)
        schema = await gateway.alter_collection(name, codec.alter_ef_search(fields), ctx)
        return JSONResponse(codec.collection_json(schema))

    @router.delete("/collections/{name}", response_model=schemas.DropResponse, tags=["collections"],
                   summary="Drop a collection and its records")
    async def drop_collection(request: Request, name: str, x_tenant: TenantHeader = None,
                              x_request_id: RequestIdHeader = None) -> JSONResponse:
        return JSONResponse(codec.drop_json(
            await gateway.drop_collection(name, codec.request_context(request))))

    # --- operations and audit ------------------------------------------------------------------------
    @router.get("/operations/{request_id:path}", response_model=schemas.OperationResponse,
                tags=["operations"], summary="Where a request landed and which replicas applied it")
    async def get_operation(request: Request, request_id: str,
                            x_tenant: TenantHeader = None) -> JSONResponse:
        status = await gateway.operation(request_id, codec.request_context(request))
        return JSONResponse(codec.operation_json(status))

    @router.get("/journal/{partition}", response_model=schemas.JournalPageResponse,
                tags=["operations"], summary="Journal entries of a partition (audit, lineage)")
    async def read_journal(
        request: Request, partition: str,
        from_offset: Annotated[int, Query(ge=1, le=2**63 - 1)] = 1,
        limit: Annotated[int, Query(ge=1, le=MAX_JOURNAL_PAGE)] = 100,
    ) -> JSONResponse:
        page = await gateway.read_journal(partition, from_offset, limit, codec.request_context(request))
        return JSONResponse(codec.journal_json(partition, page, from_offset))

    return router

