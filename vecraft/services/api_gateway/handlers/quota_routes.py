"""``/v1/quotas``: set, read and clear the quotas of tenants and API keys (docs/quotas.md).

Only an admin key for every tenant (``*``, no collection scope) sets and clears quotas: a
tenant's own admin must not raise its tenant's limits. An admin key of one tenant reads
its tenant's quotas (its own limits); other tenants' quotas are answered as if they did not
exist (404, or left out of the listing). With auth off every request may do everything.

The records live in the meta manager (both backends), which publishes them to every
gateway (Watch topic ``quotas``); the gateway that set one applies it at once.
"""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from vecraft.services.api_gateway.audit import AuditLog
from vecraft.services.api_gateway.auth.principal import Principal, Role
from vecraft.services.api_gateway.handlers import http_codec as codec
from vecraft.services.api_gateway.handlers.http_routes import refuse_unknown_query_params
from vecraft.services.api_gateway.handlers.http_schemas import ErrorResponse
from vecraft.services.api_gateway.quotas.book import QuotaBook
from vecraft.services.api_gateway.responses import JSONResponse
from vecraft.services.meta_manager.quotas import (
    LIMITS,
    MAX_VALUES,
    no_quota_message,
    validate_quota,
    validate_subject,
)
from vecraft.shared.common.errors import NotFound, PermissionDenied, Unavailable
from vecraft.shared.rpc.v1 import meta_pb2

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in [(400, "invalid request"), (401, "no valid API key"),
                         (403, "only an admin key for every tenant sets quotas; a tenant's admin reads "
                               "its own"), (404, "no such quota"), (503, "the meta manager is unavailable")]
}

KeyIdQuery = Annotated[str, Query(description="an API key's id: that key's quota within the tenant "
                                                "(default: the tenant's own quota)")]


class QuotaModel(BaseModel):
    tenant: str
    key_id: str = Field("", description="\"\" = the tenant's quota")
    write_requests_per_s: int = Field(0, description="write requests (inserts, upserts, deletes, "
                                                     "transactions, DDL) per second per gateway; 0 = none")
    write_vectors_per_s: int = Field(0, description="rows written (vectors inserted or upserted, ids "
                                                    "deleted) per second per gateway")
    read_requests_per_s: int = Field(0, description="searches, reads by id, listings and other reads per "
                                                    "second per gateway")
    max_collections: int = Field(0, description="live collections of the tenant (tenant quotas only)")
    max_vectors: int = Field(0, description="stored vectors of the tenant (tenant quotas only)")
    max_request_bytes: int = Field(0, description="largest request body / gRPC message")
    updated_unix_ms: int = 0


class QuotaListModel(BaseModel):
    quotas: list[QuotaModel]


class SetQuotaRequest(BaseModel):
    """The limits of a quota; a limit left out or 0 is no limit (the record is replaced whole)."""

    write_requests_per_s: int | None = None
    write_vectors_per_s: int | None = None
    read_requests_per_s: int | None = None
    max_collections: int | None = None
    max_vectors: int | None = None
    max_request_bytes: int | None = None


def quota_json(quota: meta_pb2.Quota) -> dict[str, Any]:
    return {"tenant": quota.tenant, "key_id": quota.key_id,
            **{name: int(getattr(quota, name)) for name in LIMITS}, "updated_unix_ms": quota.updated_unix_ms}


def _may_read(principal: Principal, tenant: str) -> bool:
    return principal.open or principal.all_tenants or principal.tenant == tenant


def _require_setter(principal: Principal) -> None:
    principal.require(Role.ADMIN, "managing quotas")
    if not principal.unrestricted:
        raise PermissionDenied("only an admin key for every tenant (tenant *, no collection scope) sets and "
                               "clears quotas")


def build_quota_router(book: QuotaBook, audit: AuditLog | None = None) -> APIRouter:
    """``GET /v1/quotas`` and ``PUT/GET/DELETE /v1/quotas/{tenant}`` over the meta manager's records;
    sets and clears are recorded in ``audit`` (docs/audit.md)."""

    def audited(principal: Principal, action: str, tenant: str, key_id: str,
                details: dict[str, Any] | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        if audit is None:
            return contextlib.nullcontext()
        return audit.action(principal, action, tenant=tenant, target=key_id, details=details)

    router = APIRouter(prefix="/v1", tags=["quotas"], responses=_ERRORS,
                       dependencies=[Depends(refuse_unknown_query_params)])

    def meta() -> Any:
        if book.meta is None:
            raise Unavailable("this gateway has no meta manager to store quotas in")
        return book.meta

    @router.put("/quotas/{tenant}", response_model=QuotaModel, summary="Set a tenant's or a key's quota",
                openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/SetQuotaRequest"}}}}})
    async def set_quota(request: Request, tenant: str, key_id: KeyIdQuery = "") -> JSONResponse:
        principal = codec.principal_of(request)
        _require_setter(principal)
        codec.request_context(request)  # an X-Tenant other than the key's: 403
        validate_subject(tenant, key_id)
        fields = codec.Fields(await codec.read_json(request), LIMITS)
        quota = meta_pb2.Quota(tenant=tenant, key_id=key_id)
        for name in LIMITS:
            setattr(quota, name, fields.int(name, 0, high=MAX_VALUES[name]) or 0)
        validate_quota(quota)
        async with audited(principal, "quota.set", tenant, key_id, {n: getattr(quota, n) for n in LIMITS}):
            stored = await meta().set_quota(quota)
        book.put(stored)
        return JSONResponse(quota_json(stored))

    @router.get("/quotas", response_model=QuotaListModel, summary="List quotas")
    async def list_quotas(request: Request, tenant: Annotated[str | None, Query(
            description="only this tenant's quotas")] = None) -> JSONResponse:
        principal = codec.principal_of(request)
        principal.require(Role.ADMIN, "reading quotas")
        codec.request_context(request)
        if tenant is not None:
            validate_subject(tenant, "")
        listed = await meta().list_quotas(tenant or "")
        return JSONResponse({"quotas": [quota_json(q) for q in listed if _may_read(principal, q.tenant)]})

    @router.get("/quotas/{tenant}", response_model=QuotaModel, summary="Get a tenant's or a key's quota")
    async def get_quota(request: Request, tenant: str, key_id: KeyIdQuery = "") -> JSONResponse:
        principal = codec.principal_of(request)
        principal.require(Role.ADMIN, "reading quotas")
        codec.request_context(request)
        validate_subject(tenant, key_id)
        found = None
        if _may_read(principal, tenant):
            found = next((q for q in await meta().list_quotas(tenant) if q.key_id == key_id), None)
        if found is None:
            raise NotFound(no_quota_message(tenant, key_id), details={"tenant": tenant, "key_id": key_id})
        return JSONResponse(quota_json(found))

    @router.delete("/quotas/{tenant}", response_model=QuotaModel,
                   summary="Clear a tenant's or a key's quota (no limits)")
    async def delete_quota(request: Request, tenant: str, key_id: KeyIdQuery = "") -> JSONResponse:
        principal = codec.principal_of(request)
        _require_setter(principal)
        codec.request_context(request)
        validate_subject(tenant, key_id)
        async with audited(principal, "quota.clear", tenant, key_id):
            removed = await meta().delete_quota(tenant, key_id)
        book.remove(tenant, key_id)
        return JSONResponse(quota_json(removed))

    return router
