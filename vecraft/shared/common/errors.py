"""The one error tree of Vecraft.

::

    VecraftError                      500  INTERNAL
    ├── InvalidRequest                400  INVALID_ARGUMENT
    ├── NotFound                      404  NOT_FOUND
    ├── Conflict                      409  ALREADY_EXISTS
    ├── PayloadTooLarge               413  INVALID_ARGUMENT
    ├── RateLimited                   429  RESOURCE_EXHAUSTED   (retry_after_ms)
    ├── Unavailable                   503  UNAVAILABLE          (retry_after_ms)
    ├── DeadlineExceeded              504  DEADLINE_EXCEEDED
    ├── ClockSkew                     503  FAILED_PRECONDITION
    └── HistoryMismatch               503  FAILED_PRECONDITION

Every class knows its HTTP status, gRPC status code (by name: this module does not
load grpc, so the SDK's HTTP client and the CLI start without it) and a stable wire name, so
the gateway maps errors to HTTP in one place, gRPC servers map them in one
place (`vecraft.shared.common.grpc_errors`), and the SDK rebuilds the same class
from a response.
"""

from __future__ import annotations

from typing import Any


class VecraftError(Exception):
    """Root of every error Vecraft raises on purpose."""

    http_status: int = 500
    grpc_status: str = "INTERNAL"  #: the name of its gRPC StatusCode
    wire_name: str = "internal"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 retry_after_ms: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        self.retry_after_ms = retry_after_ms

    def to_dict(self) -> dict[str, Any]:
        """The JSON error body: ``{"error": {"code", "message", "details"}}``."""
        return {"error": {"code": self.wire_name, "message": self.message, "details": self.details}}


class InvalidRequest(VecraftError):
    """The request is malformed or violates a limit; nothing was changed."""

    http_status = 400
    grpc_status = "INVALID_ARGUMENT"
    wire_name = "invalid_request"


class NotFound(VecraftError):
    http_status = 404
    grpc_status = "NOT_FOUND"
    wire_name = "not_found"


class Conflict(VecraftError):
    http_status = 409
    grpc_status = "ALREADY_EXISTS"
    wire_name = "conflict"


class PayloadTooLarge(VecraftError):
    http_status = 413
    grpc_status = "INVALID_ARGUMENT"
    wire_name = "payload_too_large"


class RateLimited(VecraftError):
    """Back-pressure: retry after ``retry_after_ms``."""

    http_status = 429
    grpc_status = "RESOURCE_EXHAUSTED"
    wire_name = "rate_limited"


class Unavailable(VecraftError):
    """A needed service or replica cannot answer now (or a consistency level cannot be met)."""

    http_status = 503
    grpc_status = "UNAVAILABLE"
    wire_name = "unavailable"


class DeadlineExceeded(VecraftError):
    http_status = 504
    grpc_status = "DEADLINE_EXCEEDED"
    wire_name = "deadline_exceeded"


class ClockSkew(VecraftError):
    """A peer's hybrid logical clock is further ahead than max_clock_offset_ms allows."""

    http_status = 503
    grpc_status = "FAILED_PRECONDITION"
    wire_name = "clock_skew"


class HistoryMismatch(VecraftError):
    """A journal subscriber resumes after an entry the journal holds with another HLC.

    The journal's history is not the one the subscriber followed (it lost or
    re-used offsets); the subscriber must stop applying it (docs/consistency.md).
    """

    http_status = 503
    grpc_status = "FAILED_PRECONDITION"
    wire_name = "history_mismatch"


class FencedOut(VecraftError):
    """A write by a lease holder that is no longer the holder (its fencing token is stale).

    The caller was deposed (its lease expired and someone else took it): it must
    stop acting as the holder, not retry.
    """

    http_status = 409
    grpc_status = "FAILED_PRECONDITION"
    wire_name = "fenced_out"


class Trimmed(VecraftError):
    """A journal read below the partition's first stored offset: the compactor trimmed those entries.

    Not retryable: the reader must rebuild from a copy that covers them (a backup, a peer replica).
    """

    http_status = 410
    grpc_status = "OUT_OF_RANGE"
    wire_name = "trimmed"


class Unauthenticated(VecraftError):
    """401: no API key, or one that is not valid (unknown, malformed or revoked)."""

    http_status = 401
    grpc_status = "UNAUTHENTICATED"
    wire_name = "unauthenticated"


class PermissionDenied(VecraftError):
    """403: the key is valid but its role or scope does not allow the request."""

    http_status = 403
    grpc_status = "PERMISSION_DENIED"
    wire_name = "permission_denied"


class NotOwner(Unavailable):
    """A journal instance was asked to write (or track) a partition another instance owns.

    Nothing was written. Retry at the owner: its address is in ``details["owner_address"]`` when
    known (the journal also sends it as the ``vecraft-journal-owner`` trailing metadata), else at
    another instance (docs/journal.md, "Fail-over"). A subclass of ``Unavailable``: a caller that
    does not know it retries it like any unavailable journal.
    """

    wire_name = "not_owner"


#: Every error class by wire name: any process (a service, the SDK) rebuilds the class a
#: server raised from the name it sent.
ERROR_CLASSES: dict[str, type[VecraftError]] = {
    cls.wire_name: cls
    for cls in (VecraftError, InvalidRequest, NotFound, Conflict, PayloadTooLarge, RateLimited,
                Unavailable, DeadlineExceeded, ClockSkew, HistoryMismatch, FencedOut, Trimmed,
                Unauthenticated, PermissionDenied, NotOwner)
}

# gRPC codes that arrive without Vecraft metadata (from grpc itself).
_BY_GRPC_STATUS: dict[str, type[VecraftError]] = {
    "INVALID_ARGUMENT": InvalidRequest,
    "OUT_OF_RANGE": InvalidRequest,
    "NOT_FOUND": NotFound,
    "ALREADY_EXISTS": Conflict,
    "RESOURCE_EXHAUSTED": RateLimited,
    "UNAVAILABLE": Unavailable,
    "DEADLINE_EXCEEDED": DeadlineExceeded,
    "FAILED_PRECONDITION": ClockSkew,
}


def error_class(wire_name: str | None, grpc_status: str | None = None) -> type[VecraftError]:
    """The class for a wire name, else for a gRPC status code's name, else the root."""
    if wire_name and wire_name in ERROR_CLASSES:
        return ERROR_CLASSES[wire_name]
    if grpc_status is not None and grpc_status in _BY_GRPC_STATUS:
        return _BY_GRPC_STATUS[grpc_status]
    return VecraftError

