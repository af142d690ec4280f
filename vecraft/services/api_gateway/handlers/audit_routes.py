"""``GET /v1/audit``: the audit log of admin actions, a page at a time (admin keys only; docs/audit.md).

An admin key for every tenant reads every entry; an admin key of one tenant reads its
tenant's entries (with a collection scope: actions on its collections). Paging is by
``cursor`` (an offset of the journal's ``system`` partition, from the previous page's
``next_cursor``); ``action`` (``key.create`` or a family such as ``key``) and
``since_ms`` / ``until_ms`` (unix milliseconds, compared with each entry's HLC) filter.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from vecraft.services.api_gateway.audit import MAX_PAGE, AuditFilter, AuditLog
from vecraft.services.api_gateway.auth.principal import Role
from vecraft.services.api_gateway.handlers import http_codec as codec
from vecraft.services.api_gateway.handlers.http_routes import refuse_unknown_query_params
from vecraft.services.api_gateway.handlers.http_schemas import ErrorResponse
from vecraft.services.api_gateway.responses import JSONResponse
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.audit import ACTIONS
from vecraft.shared.model.validation import validate_name

_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": text}
    for status, text in [(400, "invalid request"), (401, "no valid API key"),
                         (403, "only admin keys read the audit log"), (503, "the journal is unavailable")]
}
_FAMILIES = sorted({a.split(".")[0] for a in ACTIONS})


class AuditActorModel(BaseModel):
    key_id: str = Field(description="the API key's id (\"\" with auth off)")
    key_name: str


class AuditEntryModel(BaseModel):
    offset: int = Field(description="offset in the journal's system partition")
    hlc: int
    unix_ms: int = Field(description="when, from the entry's HLC")
    action: str
    actor: AuditActorModel
    tenant: str
    target: str
    outcome: str = Field(description="ok, or the error's code")
    details: dict[str, Any]


class AuditPageModel(BaseModel):
    entries: list[AuditEntryModel]
    next_cursor: int = Field(description="the cursor of the next page")
    more: bool = Field(description="entries after next_cursor exist already")


def build_audit_router(audit: AuditLog) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["audit"], responses=_ERRORS,
                       dependencies=[Depends(refuse_unknown_query_params)])

    @router.get("/audit", response_model=AuditPageModel, summary="Admin actions, oldest first")
    async def read_audit(
        request: Request,
        cursor: Annotated[int, Query(ge=1, le=2**63 - 1, description="start here (next_cursor)")] = 1,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="entries per page")] = 100,
        action: Annotated[str | None, Query(description="an action (key.create) or a family (key)")] = None,
        since_ms: Annotated[int, Query(ge=0, description="entries at or after this unix time (ms)")] = 0,
        until_ms: Annotated[int, Query(ge=0, description="entries at or before this unix time (ms)")] = 0,
        tenant: Annotated[str | None, Query(description="only this tenant's entries")] = None,
    ) -> JSONResponse:
        principal = codec.principal_of(request)
        principal.require(Role.ADMIN, "reading the audit log")
        codec.request_context(request)  # an X-Tenant other than the key's: 403
        if action is not None and action not in ACTIONS and action not in _FAMILIES:
            raise InvalidRequest(f"action {action[:64]!r} is not one of {', '.join(ACTIONS)} or a family "
                                 f"({', '.join(_FAMILIES)})", details={"actions": list(ACTIONS)})
        if tenant is not None and tenant != "*":
            validate_name(tenant, "tenant")
        page = await audit.read(principal, cursor=cursor, limit=limit, tenant=tenant,
                                where=AuditFilter(action=action or "", since_ms=since_ms, until_ms=until_ms))
        return JSONResponse({"entries": [e.to_json() for e in page.entries], "next_cursor": page.next_cursor,
                             "more": page.more})

    return router
