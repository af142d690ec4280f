"""Errors the SDK raises: the server's error tree, rebuilt from each response.

::

    VecraftError
    ├── InvalidRequest       400
    ├── Unauthenticated      401  (no API key, a bad or a revoked one; gRPC UNAUTHENTICATED)
    ├── PermissionDenied     403  (the key's role, tenant or collection scope; PERMISSION_DENIED)
    ├── NotFound             404
    ├── Conflict             409
    ├── PayloadTooLarge      413
    ├── RateLimited          429  (.retry_after_ms)
    ├── Unavailable          503  (also: the server cannot be reached)
    ├── Timeout              504  (also: the request timed out on the client)
    └── ClockSkew            503

The classes are the server's own (``vecraft.shared.common.errors``), so an
error raised inside Vecraft arrives in the client as the same class with the
server's message and details. Transport failures are translated once, here.
"""

from __future__ import annotations

from typing import Any

import httpx

from vecraft.services.api_gateway.auth.errors import PermissionDenied, Unauthenticated
from vecraft.shared.common.errors import (
    ClockSkew,
    Conflict,
    DeadlineExceeded,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unavailable,
    VecraftError,
    error_class,
)

#: Client-facing name of the 504 class.
Timeout = DeadlineExceeded

_BY_STATUS: dict[int, type[VecraftError]] = {
    400: InvalidRequest, 401: Unauthenticated, 403: PermissionDenied,
    404: NotFound, 409: Conflict, 413: PayloadTooLarge, 422: InvalidRequest,
    429: RateLimited, 503: Unavailable, 504: DeadlineExceeded,
}

__all__ = ["ClockSkew", "Conflict", "InvalidRequest", "NotFound", "PayloadTooLarge", "PermissionDenied",
           "RateLimited", "Timeout", "Unauthenticated", "Unavailable", "VecraftError", "error_from_http",
           "error_from_transport", "retry_after_ms_of"]


def retry_after_ms_of(headers: httpx.Headers) -> int | None:
    """Retry-After (seconds, possibly fractional) as milliseconds, if present and numeric."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0, int(float(value) * 1000))
    except ValueError:
        return None


def error_from_http(response: httpx.Response) -> VecraftError:
    """The VecraftError an HTTP error response stands for (server message kept)."""
    code: str | None = None
    message = f"HTTP {response.status_code}"
    details: dict[str, Any] = {}
    try:
        body = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        code = error.get("code")
        message = error.get("message") or message
        details = error.get("details") or {}
    except ValueError:
        if response.text:
            message = f"HTTP {response.status_code}: {response.text[:200]}"
    cls = error_class(code) if code else _BY_STATUS.get(response.status_code, VecraftError)
    if cls is VecraftError and response.status_code in _BY_STATUS:
        cls = _BY_STATUS[response.status_code]
    return cls(message, details=details, retry_after_ms=retry_after_ms_of(response.headers))


def error_from_transport(exc: httpx.HTTPError) -> VecraftError:
    """A connection or timeout failure as Unavailable / Timeout; the message names the URL."""
    try:
        url = exc.request.url
        where = f" {url.scheme}://{url.netloc.decode()} ({exc.request.method} {url.raw_path.decode()})"
    except RuntimeError:  # no request attached
        where = ""
    if isinstance(exc, httpx.TimeoutException):
        err: VecraftError = DeadlineExceeded(f"request to{where} timed out: {exc}")
    else:
        err = Unavailable(f"cannot reach the server at{where}: {exc}" if where
                          else f"cannot reach the server: {exc}")
    err.__cause__ = exc
    return err
