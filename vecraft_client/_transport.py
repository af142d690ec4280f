"""Transports: run a :class:`Call` over HTTP or gRPC, sync or async, with retries.

Retries: a call marked idempotent (reads, searches, and writes, which always
carry a request id the journal deduplicates) is retried on 429 / 503 and on
connection failures, with exponential backoff and full jitter, never sooner
than the server's Retry-After. Everything else is raised at once.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlparse

import grpc
import httpx

from vecraft.shared.common.errors import RateLimited, Unavailable, VecraftError
from vecraft.shared.common.grpc_errors import from_rpc_error
from vecraft_client._calls import Call, dumps
from vecraft_client._errors import error_from_http, error_from_transport

T = TypeVar("T")

_GRPC_OPTIONS = [("grpc.max_send_message_length", 256 * 1024 * 1024),
                 ("grpc.max_receive_message_length", 256 * 1024 * 1024)]


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """How the client retries 429 / 503 / connection failures."""

    #: Total tries of one call, the first included (1 = never retry).
    max_attempts: int = 5
    #: Backoff before the first retry, doubled each time (seconds).
    initial_backoff: float = 0.05
    #: Upper bound of one backoff (seconds).
    max_backoff: float = 5.0

    def delay(self, attempt: int, err: VecraftError) -> float:
        """Seconds to wait before retry number ``attempt`` (0-based): full jitter, >= Retry-After."""
        cap = min(self.max_backoff, self.initial_backoff * (2 ** attempt))
        backoff = random.uniform(0, cap)
        if err.retry_after_ms is not None:
            backoff = max(backoff, err.retry_after_ms / 1000.0)
        return backoff


def retry_delay(call: Call[Any], err: VecraftError, attempt: int, retry: RetryConfig) -> float | None:
    """Seconds to wait before trying ``call`` again, or None to raise ``err``."""
    if not call.idempotent or attempt + 1 >= retry.max_attempts:
        return None
    if isinstance(err, (RateLimited, Unavailable)):
        return retry.delay(attempt, err)
    return None


def run_with_retries(call: Call[T], retry: RetryConfig, send: Callable[[], T]) -> T:
    """``send()`` until it succeeds or :func:`retry_delay` says to give up."""
    attempt = 0
    while True:
        try:
            return send()
        except VecraftError as err:
            wait = retry_delay(call, err, attempt, retry)
            if wait is None:
                raise
            time.sleep(wait)
            attempt += 1


async def run_with_retries_async(call: Call[T], retry: RetryConfig, send: Callable[[], Awaitable[T]]) -> T:
    """The asyncio twin of :func:`run_with_retries`."""
    attempt = 0
    while True:
        try:
            return await send()
        except VecraftError as err:
            wait = retry_delay(call, err, attempt, retry)
            if wait is None:
                raise
            await asyncio.sleep(wait)
            attempt += 1


def _http_request_args(call: Call[Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"params": call.params or None, "headers": dict(call.headers)}
    if call.json is not None:
        args["content"] = dumps(call.json)
        args["headers"]["Content-Type"] = "application/json"
    return args


def _http_result(call: Call[T], response: httpx.Response) -> T:
    if response.is_success:
        body = response.json() if response.content else None
        return call.finish(call.parse_http(body))
    raise error_from_http(response)


def _auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


HTTP_FORMS = "'http://host:port' or 'https://host:port'"
GRPC_FORMS = "'grpc://host:port' or 'host:port'"


def http_base_url(endpoint: str) -> str:
    """The base URL of an HTTP endpoint, checked at once (a typo is no outage to retry).

    Raises:
        ValueError: not ``http(s)://host[:port]``; the message names the expected form.
    """
    parsed = urlparse(endpoint) if "://" in endpoint else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        hint = ""
        if parsed is not None and parsed.scheme == "grpc":
            hint = " (for gRPC pass transport='grpc')"
        elif parsed is None:
            hint = f" (did you mean 'http://{endpoint}'?)"
        raise ValueError(f"endpoint {endpoint!r} is not an HTTP URL: use {HTTP_FORMS} with "
                         f"transport='http'{hint}, or {GRPC_FORMS} with transport='grpc'")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"endpoint {endpoint!r} has an invalid port: use {HTTP_FORMS}") from exc
    return endpoint.rstrip("/")


class HttpTransport:
    def __init__(self, endpoint: str, *, api_key: str | None, timeout: float, retry: RetryConfig) -> None:
        self.endpoint = http_base_url(endpoint)
        self._client = httpx.Client(base_url=self.endpoint, timeout=timeout, headers=_auth_headers(api_key))
        self._retry = retry

    def execute(self, call: Call[T]) -> T:
        args = _http_request_args(call)  # serialized once, outside the retries

        def send() -> T:
            try:
                response = self._client.request(call.method, call.path, **args)
            except httpx.HTTPError as exc:
                raise error_from_transport(exc) from exc
            return _http_result(call, response)

        return run_with_retries(call, self._retry, send)

    def close(self) -> None:
        self._client.close()


class AsyncHttpTransport:
    def __init__(self, endpoint: str, *, api_key: str | None, timeout: float, retry: RetryConfig) -> None:
        self.endpoint = http_base_url(endpoint)
        self._client = httpx.AsyncClient(base_url=self.endpoint, timeout=timeout,
                                         headers=_auth_headers(api_key))
        self._retry = retry

    async def execute(self, call: Call[T]) -> T:
        args = _http_request_args(call)

        async def send() -> T:
            try:
                response = await self._client.request(call.method, call.path, **args)
            except httpx.HTTPError as exc:
                raise error_from_transport(exc) from exc
            return _http_result(call, response)

        return await run_with_retries_async(call, self._retry, send)

    async def close(self) -> None:
        await self._client.aclose()


def grpc_target(endpoint: str) -> str:
    """``grpc://host:port``, ``http://host:port`` or ``host:port`` -> ``host:port``.

    Raises:
        ValueError: no host, or a port that is not a number; the message names the expected form.
    """
    parsed = urlparse(endpoint if "://" in endpoint else f"grpc://{endpoint}")
    try:
        port = parsed.port
    except ValueError:
        port = -1
    if not parsed.hostname or port == -1 or parsed.path not in ("", "/"):
        raise ValueError(f"endpoint {endpoint!r} is not a gRPC address: use {GRPC_FORMS} with "
                         f"transport='grpc', or {HTTP_FORMS} with transport='http'")
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return f"{host}:{port or 50051}"


def _grpc_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def _grpc_parse(call: Call[T], response: Any) -> T:
    assert call.parse_grpc is not None
    return call.finish(call.parse_grpc(response))


class GrpcTransport:
    def __init__(self, endpoint: str, *, api_key: str | None, timeout: float, retry: RetryConfig) -> None:
        self.endpoint = f"grpc://{grpc_target(endpoint)}"
        self._target = grpc_target(endpoint)
        self._channel = grpc.insecure_channel(self._target, options=_GRPC_OPTIONS)
        self._timeout = timeout
        self._metadata = _grpc_metadata(api_key)
        self._retry = retry

    def execute(self, call: Call[T]) -> T:
        assert call.grpc_request is not None and call.grpc_response is not None
        method = self._channel.unary_unary(call.grpc_method,
                                           request_serializer=type(call.grpc_request).SerializeToString,
                                           response_deserializer=call.grpc_response.FromString)

        def send() -> T:
            try:
                response = method(call.grpc_request, timeout=self._timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc
            return _grpc_parse(call, response)

        return run_with_retries(call, self._retry, send)

    def close(self) -> None:
        self._channel.close()


class AsyncGrpcTransport:
    def __init__(self, endpoint: str, *, api_key: str | None, timeout: float, retry: RetryConfig) -> None:
        # The aio channel binds to the running loop, so it is opened on first use.
        self._target = grpc_target(endpoint)
        self.endpoint = f"grpc://{self._target}"
        self._channel: grpc.aio.Channel | None = None
        self._timeout = timeout
        self._metadata = _grpc_metadata(api_key)
        self._retry = retry

    async def execute(self, call: Call[T]) -> T:
        assert call.grpc_request is not None and call.grpc_response is not None
        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self._target, options=_GRPC_OPTIONS)
        method = self._channel.unary_unary(call.grpc_method,
                                           request_serializer=type(call.grpc_request).SerializeToString,
                                           response_deserializer=call.grpc_response.FromString)

        async def send() -> T:
            try:
                response = await method(call.grpc_request, timeout=self._timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from exc
            return _grpc_parse(call, response)

        return await run_with_retries_async(call, self._retry, send)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
