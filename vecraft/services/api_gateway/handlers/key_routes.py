"""``/v1/keys``: create, list and revoke API keys (admin keys only; docs/security.md).

An admin key for every tenant (``*``) manages every key. An admin key of one tenant
manages the keys of its tenant only: it creates keys for its tenant (within its own
collection scope, if it has one), and lists and revokes only those; other keys are
answered as if they did not exist (404), so their ids and tenants never show.

The key itself is in the answer of ``POST /v1/keys`` only; it is stored nowhere
(the meta manager keeps its SHA-256).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field

from vecraft.services.api_gateway.audit import AuditLog
from vecraft.services.api_gateway.auth.keyring import KeyRing
from vecraft.services.api_gateway.auth.principal import ALL_TENANTS, Principal, Role
from vecraft.services.api_gateway.handlers import http_codec as codec
from vecraft.services.api_gateway.handlers.http_routes import refuse_unknown_query_params
from vecraft.services.api_gateway.handlers.http_schemas import ErrorResponse
from vecraft.services.api_gateway.responses import JSONResponse
from vecraft.services.meta_manager.api_keys import key_sha256
from vecraft.shared.common.errors import InvalidRequest, NotFound, PermissionDenied, VecraftError
from vecraft.shared.rpc.v1 import meta_pb2

TenantHeader = Annotated[str | None, Header(alias="X-Tenant", description="tenant (keys for every "
                                                                          "tenant choose one)")]
KEY_FIELDS = ("role", "tenant", "collections", "name")

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in [(400, "invalid request"), (401, "no valid API key"),
                         (403, "the key's role or scope does not allow it"), (404, "no such key"),
                         (503, "the meta manager is unavailable")]
}


class ApiKeyModel(BaseModel):
    id: str
    name: str
    role: str = Field(description="admin | write | read")
    tenant: str = Field(description="a tenant, or * for every tenant")
    collections: list[str] = Field(description="collections the key may name; empty = all")
    created_unix_ms: int
    revoked: bool
    revoked_unix_ms: int = 0


class CreatedKeyModel(BaseModel):
    key: str = Field(description="the API key, shown this once")
    info: ApiKeyModel


class KeyListModel(BaseModel):
    keys: list[ApiKeyModel]


class CreateKeyRequest(BaseModel):
    role: str = Field(description="admin | write | read")
    tenant: str | None = Field(None, description="a tenant or *; default: the request's tenant")
    collections: list[str] | None = Field(None, description="collection scope; default: all")
    name: str | None = Field(None, description="a label for people")


def key_json(info: meta_pb2.ApiKeyInfo) -> dict[str, Any]:
    return {"id": info.id, "name": info.name, "role": info.role, "tenant": info.tenant,
            "collections": list(info.collections), "created_unix_ms": info.created_unix_ms,
            "revoked": info.revoked, "revoked_unix_ms": info.revoked_unix_ms}


def _manages(principal: Principal, info: meta_pb2.ApiKeyInfo) -> bool:
    """Whether ``principal`` (an admin) may see and revoke ``info``."""
    if principal.unrestricted:
        return True
    if info.tenant != principal.tenant and not principal.all_tenants:
        return False
    return set(info.collections) <= principal.collections if principal.collections else True


def _grant(principal: Principal, fields: codec.Fields, request_tenant: str) -> tuple[str, list[str]]:
    """The tenant and collection scope of a key ``principal`` asks to create."""
    tenant = fields.str("tenant") or request_tenant
    if tenant == ALL_TENANTS and not (principal.open or principal.all_tenants):
        raise PermissionDenied("only an admin key for every tenant creates keys for every tenant")
    if tenant != ALL_TENANTS:
        tenant = principal.resolve_tenant(tenant)
    raw = fields.list("collections") or []
    if not all(isinstance(c, str) for c in raw):
        raise InvalidRequest("collections must be a list of collection names")
    collections = sorted(set(raw))
    if principal.collections and not principal.open:
        if not collections:
            raise PermissionDenied("this API key has a collection scope: a key it creates needs one "
                                   "within it (collections)")
        principal.check_collections(Role.ADMIN, "creating an API key", collections)
    return tenant, collections


def build_key_router(keys: KeyRing, audit: AuditLog | None = None) -> APIRouter:
    """``POST/GET /v1/keys`` and ``DELETE /v1/keys/{id}`` over the meta manager's key records; creations
    and revocations are recorded in ``audit`` (docs/audit.md)."""

    async def record(principal: Principal, action: str, tenant: str, target: str, outcome: str,
                     details: dict[str, Any] | None = None) -> None:
        if audit is not None:
            await audit.record(principal, action, tenant=tenant, target=target, outcome=outcome,
                               details=details)

    router = APIRouter(prefix="/v1", tags=["keys"], responses=_ERRORS,
                       dependencies=[Depends(refuse_unknown_query_params)])

    @router.post("/keys", status_code=201, response_model=CreatedKeyModel,
                 openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/CreateKeyRequest"}}}}},
                 summary="Create an API key (returned this once)")
    async def create_key(request: Request, x_tenant: TenantHeader = None) -> JSONResponse:
        principal = codec.principal_of(request)
        principal.require(Role.ADMIN, "managing API keys")
        fields = codec.Fields(await codec.read_json(request), KEY_FIELDS)
        ctx = codec.request_context(request)
        role = fields.str("role")
        if role is None:
            raise InvalidRequest("role is required: admin, write or read")
        tenant, collections = _grant(principal, fields, ctx.tenant)
        grant = {"role": role, "collections": collections, "name": fields.str("name") or ""}
        try:
            created = await keys.meta.create_api_key(role=role, tenant=tenant, collections=collections,
                                                     name=fields.str("name") or "")
        except VecraftError as err:
            await record(principal, "key.create", tenant, "", err.wire_name, grant)
            raise
        await record(principal, "key.create", tenant, created.info.id, "ok", grant)
        # Usable on this gateway at once, before the meta manager's event arrives.
        info = meta_pb2.ApiKeyInfo()
        info.CopyFrom(created.info)
        info.key_sha256 = key_sha256(created.key)
        keys.put(info)
        return JSONResponse({"key": created.key, "info": key_json(created.info)}, status_code=201)

    @router.get("/keys", response_model=KeyListModel, summary="List API keys (never the keys themselves)")
    async def list_keys(request: Request, include_revoked: Annotated[bool, Query(
            description="also list revoked keys")] = False, x_tenant: TenantHeader = None) -> JSONResponse:
        principal = codec.principal_of(request)
        principal.require(Role.ADMIN, "managing API keys")
        codec.request_context(request)  # a tenant other than the key's: 403
        listed = await keys.meta.list_api_keys(include_revoked=include_revoked)
        return JSONResponse({"keys": [key_json(k) for k in listed if _manages(principal, k)]})

    @router.delete("/keys/{key_id}", response_model=ApiKeyModel, summary="Revoke an API key (at once)")
    async def revoke_key(request: Request, key_id: str, x_tenant: TenantHeader = None) -> JSONResponse:
        principal = codec.principal_of(request)
        principal.require(Role.ADMIN, "managing API keys")
        ctx = codec.request_context(request)  # a tenant other than the key's: 403
        if not principal.unrestricted:
            visible = {k.id for k in await keys.meta.list_api_keys(include_revoked=True)
                       if _manages(principal, k)}
            if key_id not in visible:
                raise NotFound(f"no API key has id {key_id[:64]!r}", details={"id": key_id[:64]})
        try:
            info = await keys.meta.revoke_api_key(key_id)
        except VecraftError as err:
            await record(principal, "key.revoke", ctx.tenant, key_id[:64], err.wire_name)
            raise
        await record(principal, "key.revoke", info.tenant, info.id, "ok")
        keys.put(info)
        return JSONResponse(key_json(info))

    return router
