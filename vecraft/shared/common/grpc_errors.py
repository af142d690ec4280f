"""VecraftError <-> gRPC status, in exactly one place per direction.

Servers: add :class:`ErrorInterceptor` to ``grpc.aio.server(interceptors=...)``;
a handler raises a ``VecraftError`` and the client sees its gRPC code, message
and the trailing metadata ``vecraft-error`` (wire name),
``vecraft-error-details`` (the details as JSON, when small) and
``retry-after-ms``. Anything else becomes INTERNAL with the exception logged.

Clients: wrap calls with :func:`translate_rpc_error` (context manager) or call
:func:`from_rpc_error` to rebuild the VecraftError subclass.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import grpc

from vecraft.shared.common.errors import (
    DeadlineExceeded,
    PayloadTooLarge,
    Unavailable,
    VecraftError,
    error_class,
)

log = logging.getLogger(__name__)

ERROR_KEY = "vecraft-error"
DETAILS_KEY = "vecraft-error-details"
RETRY_AFTER_KEY = "retry-after-ms"
#: Details larger than this (as JSON) stay on the server: metadata is meant to be small.
MAX_DETAILS_BYTES = 2048


def _metadata(err: VecraftError) -> tuple[tuple[str, str], ...]:
    md: list[tuple[str, str]] = [(ERROR_KEY, err.wire_name)]
    if err.retry_after_ms is not None:
        md.append((RETRY_AFTER_KEY, str(int(err.retry_after_ms))))
    if err.details:
        with contextlib.suppress(TypeError, ValueError):
            encoded = json.dumps(err.details, separators=(",", ":"), default=str)
            if len(encoded) <= MAX_DETAILS_BYTES:
                md.append((DETAILS_KEY, encoded))
    return tuple(md)


def _details(md: dict[str, str]) -> dict[str, Any] | None:
    try:
        decoded = json.loads(md[DETAILS_KEY]) if DETAILS_KEY in md else None
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def status_code(err: VecraftError) -> grpc.StatusCode:
    """The gRPC status of ``err``'s class."""
    return grpc.StatusCode[err.grpc_status]


async def abort_with(context: grpc.aio.ServicerContext, err: VecraftError) -> None:
    """Abort the current RPC with the status and metadata of ``err``."""
    context.set_trailing_metadata(_metadata(err))
    await context.abort(status_code(err), err.message)


@contextlib.asynccontextmanager
async def _as_status(context: grpc.aio.ServicerContext, method: str) -> AsyncIterator[None]:
    """Abort with a VecraftError's status, or INTERNAL (logged) for anything unexpected."""
    try:
        yield
    except VecraftError as err:
        await abort_with(context, err)
    except (grpc.aio.AbortError, grpc.aio.AioRpcError, KeyboardInterrupt):
        raise
    except Exception:
        log.exception("unhandled error in %s", method)
        await context.abort(grpc.StatusCode.INTERNAL, f"internal error in {method}")


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Turns VecraftError raised by any handler into its gRPC status."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        if handler.unary_unary:
            inner_uu = handler.unary_unary

            async def unary_unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                async with _as_status(context, method):
                    return await inner_uu(request, context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, handler.request_deserializer, handler.response_serializer)
        if handler.unary_stream:
            inner_us = handler.unary_stream

            async def unary_stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async with _as_status(context, method):
                    async for item in inner_us(request, context):
                        yield item

            return grpc.unary_stream_rpc_method_handler(
                unary_stream, handler.request_deserializer, handler.response_serializer)
        return handler


def from_rpc_error(exc: grpc.RpcError) -> VecraftError:
    """Rebuild the VecraftError a server raised (or the best match for a transport error)."""
    code = exc.code() if hasattr(exc, "code") else None
    md: dict[str, str] = {}
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in trailing or ():
        md[key] = value if isinstance(value, str) else value.decode()
    cls = error_class(md.get(ERROR_KEY), code.name if code is not None else None)
    details = exc.details() if hasattr(exc, "details") else str(exc)
    retry = int(md[RETRY_AFTER_KEY]) if RETRY_AFTER_KEY in md else None
    if cls is Unavailable and ERROR_KEY not in md:
        details = f"service unavailable: {details}"
    if cls is DeadlineExceeded and ERROR_KEY not in md:
        details = f"deadline exceeded: {details}"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and ERROR_KEY not in md and "larger than max" in details:
        # gRPC's own message-size refusal: the request is too big, not a server under load.
        cls = PayloadTooLarge
        details = f"message too large: {details} (split the request; see docs/operations.md)"
    err = cls(details or code.name if code else "rpc failed", retry_after_ms=retry, details=_details(md))
    err.__cause__ = exc
    return err


def _raised_on_purpose(exc: grpc.RpcError) -> bool:
    """True when the server raised the error itself (it carries Vecraft's metadata)."""
    trailing = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    return any(key == ERROR_KEY for key, _ in trailing or ())


def from_call_error(exc: grpc.RpcError, service: str | None = None) -> VecraftError:
    """:func:`from_rpc_error`; with ``service`` (e.g. "meta manager at host:port"), a transport failure
    (unavailable or timed out, not raised by the server) says which service could not be reached."""
    err = from_rpc_error(exc)
    if service and type(err) in (Unavailable, DeadlineExceeded) and not _raised_on_purpose(exc):
        verb = "is unavailable" if isinstance(err, Unavailable) else "timed out"
        err = type(err)(f"{service} {verb}: {exc.details() or exc.code().name}", details={"service": service})
        err.__cause__ = exc
    return err


@contextlib.contextmanager
def translate_rpc_error(service: str | None = None) -> Iterator[None]:
    """``with translate_rpc_error(): await stub.X(...)`` raises VecraftError, never grpc.RpcError
    (see :func:`from_call_error` for ``service``)."""
    try:
        yield
    except grpc.RpcError as exc:
        raise from_call_error(exc, service) from exc
