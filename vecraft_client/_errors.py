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

from collections.abc import Mapping
from typing import Any

import httpx
import orjson
import urllib3

from vecraft.shared.common.errors import (
    ClockSkew,
    Conflict,
    DeadlineExceeded,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
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
           "error_from_transport", "error_from_urllib3", "retry_after_ms_of"]


def retry_after_ms_of(headers: Mapping[str, str]) -> int | None:
    """Retry-After (seconds, possibly fractional) as milliseconds, if present and numeric."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0, int(float(value) * 1000))
    except ValueError:
        return None


def error_from_http(status: int, headers: Mapping[str, str], content: bytes) -> VecraftError:
    """The VecraftError an HTTP error response stands for (server message kept); ``headers``
    must look names up case-insensitively (httpx's and urllib3's both do)."""
    code: str | None = None
    message = f"HTTP {status}"
    details: dict[str, Any] = {}
    try:
        body = orjson.loads(content)
        error = body.get("error", {}) if isinstance(body, dict) else {}
        code = error.get("code")
        message = error.get("message") or message
        details = error.get("details") or {}
    except orjson.JSONDecodeError:
        text = content.decode("utf-8", "replace")
        if text:
            message = f"HTTP {status}: {text[:200]}"
    cls = error_class(code) if code else _BY_STATUS.get(status, VecraftError)
    if cls is VecraftError and status in _BY_STATUS:
        cls = _BY_STATUS[status]
    return cls(message, details=details, retry_after_ms=retry_after_ms_of(headers))


def error_from_transport(exc: httpx.HTTPError) -> VecraftError:
    """A connection or timeout failure as Unavailable / Timeout; the message names the URL."""
    try:
        url = exc.request.url
        where = f" {url.scheme}://{url.netloc.decode()} ({exc.request.method} {url.raw_path.decode()})"
    except RuntimeError:  # no request attached
        where = ""
    return _transport_error(exc, where, timed_out=isinstance(exc, httpx.TimeoutException))


def error_from_urllib3(exc: urllib3.exceptions.HTTPError, method: str, base_url: str,
                       path: str) -> VecraftError:
    """:func:`error_from_transport` for the sync client's urllib3 failures."""
    # NewConnectionError (refused, unreachable) subclasses ConnectTimeoutError in urllib3 2.
    timed_out = (isinstance(exc, urllib3.exceptions.TimeoutError)
                 and not isinstance(exc, urllib3.exceptions.NewConnectionError))
    return _transport_error(exc, f" {base_url} ({method} {path})", timed_out=timed_out)


def _transport_error(exc: Exception, where: str, *, timed_out: bool) -> VecraftError:
    if timed_out:
        err: VecraftError = DeadlineExceeded(f"request to{where} timed out: {exc}")
    else:
        err = Unavailable(f"cannot reach the server at{where}: {exc}" if where
                          else f"cannot reach the server: {exc}")
    err.__cause__ = exc
    return err
