"""Errors -> HTTP responses: the one place where the gateway maps errors to HTTP.

Every error body is ``{"error": {"code", "message", "details"}}`` with the
status of the :class:`~vecraft.shared.common.errors.VecraftError` class.
Rate limiting adds ``Retry-After`` (whole seconds, rounded up) and the exact
``details.retry_after_ms``. Framework errors are mapped too, so a client
mistake never surfaces as FastAPI's 422 or a bare 500:

- request validation (query, path, header parameters) -> 400 naming the field;
- unknown route -> 404, wrong method -> 405 with ``Allow``, both in the same JSON shape;
- anything unexpected -> 500 ``internal`` (logged with its traceback).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from vecraft.services.api_gateway.responses import JSONResponse
from vecraft.shared.common.errors import InvalidRequest, NotFound, VecraftError

log = logging.getLogger(__name__)


def error_response(err: VecraftError, headers: dict[str, str] | None = None) -> Response:
    """The HTTP response of ``err`` (with extra ``headers``)."""
    headers = dict(headers or {})
    body = err.to_dict()
    if err.retry_after_ms is not None:
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after_ms / 1000)))
        body["error"]["details"] = {**body["error"]["details"], "retry_after_ms": err.retry_after_ms}
    return JSONResponse(body, status_code=err.http_status, headers=headers)


def describe_validation_errors(errors: Sequence[Any]) -> InvalidRequest:
    """One InvalidRequest naming every bad parameter of a FastAPI validation failure."""
    problems: list[dict[str, Any]] = []
    for item in errors:
        loc = [str(part) for part in item.get("loc", ()) if part != "body"]
        where = ".".join(loc) or "request"
        if loc and loc[0] in ("query", "path", "header"):
            where = f"{loc[0]} parameter {'.'.join(loc[1:])!r}"
        problems.append({"field": where, "problem": item.get("msg", "invalid"),
                         "input": _short(item.get("input"))})
    first = problems[0] if problems else {"field": "request", "problem": "invalid"}
    message = f"{first['field']}: {first['problem']}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem(s), see details)"
    return InvalidRequest(message, details={"problems": problems})


def _short(value: Any) -> Any:
    """Echo small inputs back; never a huge one."""
    if isinstance(value, str | int | float | bool) or value is None:
        return value if not isinstance(value, str) or len(value) <= 100 else value[:100] + "..."
    return None


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every error into the JSON error shape."""

    async def on_vecraft_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, VecraftError)
        if exc.http_status >= 500:
            log.warning("request failed: %s", exc.message, extra={"error": exc.wire_name})
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(describe_validation_errors(exc.errors()))

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            err: VecraftError = NotFound(f"no route {request.method} {request.url.path}; the API is "
                                         f"described at /docs and /openapi.json",
                                         details={"path": request.url.path})
        elif exc.status_code == 405:
            allowed = allowed_methods(request)
            err = _MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}; "
                                    f"allowed: {', '.join(allowed)}",
                                    details={"method": request.method, "path": request.url.path,
                                             "allowed": allowed})
            return error_response(err, {"Allow": ", ".join(allowed)})
        elif exc.status_code < 500:
            err = InvalidRequest(str(exc.detail))
        else:
            err = VecraftError(str(exc.detail))
        return error_response(err)

    async def on_unexpected(_: Request, exc: Exception) -> Response:
        log.error("unhandled error", exc_info=exc)
        return error_response(VecraftError("internal error; the gateway log has the details"))

    app.add_exception_handler(VecraftError, on_vecraft_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)


#: The methods :func:`allowed_methods` probes for.
_METHODS = ("DELETE", "GET", "HEAD", "PATCH", "POST", "PUT")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path.

    Starlette's own ``Allow`` names only the first route that matched the path;
    routes are probed per method instead (included routers hide their routes).
    """
    routes = request.app.router.routes
    return [method for method in _METHODS
            if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)]


class _MethodNotAllowed(InvalidRequest):
    """405: the path exists, the method does not (HTTP-only; no gRPC twin)."""

    http_status = 405
    wire_name = "method_not_allowed"
