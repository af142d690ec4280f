"""Transports: run a :class:`Call` over HTTP or gRPC, sync or async, with retries.

TLS: ``https://`` (HTTP) and ``grpcs://`` (gRPC) endpoints verify the server's certificate,
with the system's CAs or ``ca_cert`` (:class:`TlsConfig`). A plaintext endpoint whose server
answers in TLS fails at once with a message that says so (:func:`tls_mismatch`), instead of
being retried as an outage.

Retries: a call marked idempotent (reads, searches, and writes, which always
carry a request id the journal deduplicates) is retried on 429 / 503 and on
connection failures, with exponential backoff and full jitter, never sooner
than the server's Retry-After. Everything else is raised at once.
"""

from __future__ import annotations

import asyncio
import random
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlencode, urlparse

import grpc
import httpx
import orjson
import urllib3

from vecraft.shared.common.errors import InvalidRequest, RateLimited, Unavailable, VecraftError
from vecraft.shared.common.grpc_errors import ERROR_KEY, from_rpc_error
from vecraft_client._calls import Call, dumps
from vecraft_client._errors import error_from_http, error_from_transport, error_from_urllib3

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


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Certificates of a TLS connection to the gateway (paths to PEM files)."""

    #: CA that signed the gateway's certificate (default: the system's trust store).
    ca_cert: str | None = None
    #: A client certificate and its key, for a gateway that requires one (--tls-client-ca).
    client_cert: str | None = None
    client_key: str | None = None

    @property
    def given(self) -> bool:
        return any((self.ca_cert, self.client_cert, self.client_key))

    def check(self) -> None:
        if bool(self.client_cert) != bool(self.client_key):
            raise ValueError("client_cert and client_key go together (one of them is missing)")

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the server's certificate and host name; presents the client certificate if any."""
        context = ssl.create_default_context(cafile=self.ca_cert)
        if self.client_cert:
            context.load_cert_chain(self.client_cert, self.client_key)
        return context

    def grpc_credentials(self) -> grpc.ChannelCredentials:
        def read(path: str | None) -> bytes | None:
            if path is None:
                return None
            with open(path, "rb") as f:
                return f.read()

        return grpc.ssl_channel_credentials(root_certificates=read(self.ca_cert),
                                            private_key=read(self.client_key),
                                            certificate_chain=read(self.client_cert))


def _speaks_tls(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether the server at host:port completes a TLS handshake (its certificate unchecked)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, port), timeout=timeout) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            return True
    except (OSError, ValueError):
        return False


def tls_mismatch(host: str, port: int, endpoint: str, use: str) -> InvalidRequest | None:
    """The error for a plaintext endpoint whose server speaks TLS, or None if it does not.

    Called after a connection failure only (the probe costs one handshake).
    """
    if not _speaks_tls(host.strip("[]"), port):
        return None
    return InvalidRequest(f"the gateway at {endpoint} speaks TLS: use {use} (with ca_cert= if its "
                          "certificate is not signed by a CA this machine trusts)",
                          details={"reason": "tls_required"})


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


def _http_result(call: Call[T], status: int, headers: Any, content: bytes) -> T:
    if 200 <= status < 300:
        body = orjson.loads(content) if content else None
        return call.finish(call.parse_http(body))
    raise error_from_http(status, headers, content)


def _auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


HTTP_FORMS = "'http://host:port' or 'https://host:port'"
GRPC_FORMS = "'grpc://host:port', 'grpcs://host:port' (TLS) or 'host:port'"


def http_base_url(endpoint: str, tls: TlsConfig | None = None) -> str:
    """The base URL of an HTTP endpoint, checked at once (a typo is no outage to retry).

    Raises:
        ValueError: not ``http(s)://host[:port]``; the message names the expected form.
    """
    parsed = urlparse(endpoint) if "://" in endpoint else None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.hostname:
        hint = ""
        if parsed is not None and parsed.scheme in ("grpc", "grpcs"):
            hint = " (for gRPC pass transport='grpc')"
        elif parsed is None:
            hint = f" (did you mean 'http://{endpoint}'?)"
        raise ValueError(f"endpoint {endpoint!r} is not an HTTP URL: use {HTTP_FORMS} with "
                         f"transport='http'{hint}, or {GRPC_FORMS} with transport='grpc'")
    try:
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"endpoint {endpoint!r} has an invalid port: use {HTTP_FORMS}") from exc
    if tls is not None:
        tls.check()
        if tls.given and parsed.scheme != "https":
            raise ValueError(f"ca_cert/client_cert are for TLS: use 'https://{parsed.netloc}', "
                             f"not {endpoint!r}")
    return endpoint.rstrip("/")


def _http_client_args(endpoint: str, api_key: str | None, timeout: float, tls: TlsConfig) -> dict[str, Any]:
    args: dict[str, Any] = {"base_url": endpoint, "timeout": timeout, "headers": _auth_headers(api_key)}
    if tls.given:
        args["verify"] = tls.ssl_context()
    return args


def _plaintext_to_tls(endpoint: str, exc: Exception) -> InvalidRequest | None:
    """An ``http://`` endpoint that failed below HTTP: the TLS error if the server speaks TLS."""
    url = urlparse(endpoint)
    below_http = (httpx.TimeoutException, httpx.ConnectError, urllib3.exceptions.TimeoutError,
                  urllib3.exceptions.NewConnectionError)
    if url.scheme != "http" or isinstance(exc, below_http):
        return None
    return tls_mismatch(url.hostname or "", url.port or 80, endpoint,
                        "https://" + endpoint.removeprefix("http://"))


class HttpTransport:
    """The sync client's HTTP: urllib3's connection pool.

    Not httpx's sync client, which costs ~0.23 ms more per request on this
    project's machine (a search over a kept-alive connection: 2.0 vs 2.3 ms P50;
    docs/performance.md); the async client stays on httpx.
    """

    #: Kept-alive connections per client (threads sharing one client each take one).
    POOL_SIZE = 16

    def __init__(self, endpoint: str, *, api_key: str | None, timeout: float, retry: RetryConfig,
                 tls: TlsConfig = TlsConfig()) -> None:
        self.endpoint = http_base_url(endpoint, tls)
        self._headers = _auth_headers(api_key)
        pool_args: dict[str, Any] = {"maxsize": self.POOL_SIZE,
                                     "timeout": urllib3.Timeout(connect=timeout, read=timeout)}
        if tls.given:
            pool_args["ssl_context"] = tls.ssl_context()
        self._pool = urllib3.PoolManager(num_pools=1, **pool_args)
        self._retry = retry

    def execute(self, call: Call[T]) -> T:
        # Serialized once, outside the retries.
        url = self.endpoint + call.path
        if call.params:
            url += "?" + urlencode(call.params)
        headers = {**self._headers, **call.headers}
        body: bytes | None = None
        if call.json is not None:
            body = dumps(call.json)
            headers["Content-Type"] = "application/json"

        def send() -> T:
            try:
                response = self._pool.request(call.method, url, body=body, headers=headers, retries=False,
                                              redirect=False)
            except urllib3.exceptions.HTTPError as exc:
                raise (_plaintext_to_tls(self.endpoint, exc)
                       or error_from_urllib3(exc, call.method, self.endpoint, call.path)) from exc
            return _http_result(call, response.status, response.headers, response.data)

        return run_with_retries(call, self._retry, send)

    def close(self) -> None:
        self._pool.clear()


class AsyncHttpTransport:
    def __init__(self, endpoint: str, *, api_key: str | None, timeout: float, retry: RetryConfig,
                 tls: TlsConfig = TlsConfig()) -> None:
        self.endpoint = http_base_url(endpoint, tls)
        self._client = httpx.AsyncClient(**_http_client_args(self.endpoint, api_key, timeout, tls))
        self._retry = retry

    async def execute(self, call: Call[T]) -> T:
        args = _http_request_args(call)

        async def send() -> T:
            try:
                response = await self._client.request(call.method, call.path, **args)
            except httpx.HTTPError as exc:
                mismatch = await asyncio.to_thread(_plaintext_to_tls, self.endpoint, exc)
                raise (mismatch or error_from_transport(exc)) from exc
            return _http_result(call, response.status_code, response.headers, response.content)

        return await run_with_retries_async(call, self._retry, send)

    async def close(self) -> None:
        await self._client.aclose()


def grpc_target(endpoint: str) -> str:
    """``grpc://host:port``, ``grpcs://``, ``http(s)://host:port`` or ``host:port`` -> ``host:port``.

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


def grpc_endpoint(endpoint: str, tls: TlsConfig) -> tuple[str, bool]:
    """(``host:port``, whether to use TLS): TLS for ``grpcs://`` and ``https://``.

    Raises:
        ValueError: see :func:`grpc_target`; TLS files with a plaintext endpoint.
    """
    target = grpc_target(endpoint)
    secure = endpoint.startswith(("grpcs://", "https://"))
    tls.check()
    if tls.given and not secure:
        raise ValueError(f"ca_cert/client_cert are for TLS: use 'grpcs://{target}', not {endpoint!r}")
    return target, secure


def _grpc_mismatch(exc: grpc.RpcError, target: str, secure: bool) -> InvalidRequest | None:
    """A plaintext channel refused at the connection: the TLS error if the server speaks TLS."""
    if secure or not isinstance(exc, grpc.Call) or exc.code() is not grpc.StatusCode.UNAVAILABLE:
        return None
    if any(key == ERROR_KEY for key, _ in exc.trailing_metadata() or ()):
        return None  # the gateway itself answered "unavailable": it speaks plaintext
    host, _, port = target.rpartition(":")
    return tls_mismatch(host, int(port), f"grpc://{target}", f"grpcs://{target}")


def _grpc_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def _grpc_parse(call: Call[T], response: Any) -> T:
    assert call.parse_grpc is not None
    return call.finish(call.parse_grpc(response))


class GrpcTransport:
    def __init__(self, endpoint: str, *, api_key: str | None, timeout: float, retry: RetryConfig,
                 tls: TlsConfig = TlsConfig()) -> None:
        self._target, self._secure = grpc_endpoint(endpoint, tls)
        self.endpoint = f"{'grpcs' if self._secure else 'grpc'}://{self._target}"
        self._channel = (grpc.secure_channel(self._target, tls.grpc_credentials(), options=_GRPC_OPTIONS)
                         if self._secure else grpc.insecure_channel(self._target, options=_GRPC_OPTIONS))
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
                raise (_grpc_mismatch(exc, self._target, self._secure) or from_rpc_error(exc)) from exc
            return _grpc_parse(call, response)

        return run_with_retries(call, self._retry, send)

    def close(self) -> None:
        self._channel.close()


class AsyncGrpcTransport:
    def __init__(self, endpoint: str, *, api_key: str | None, timeout: float, retry: RetryConfig,
                 tls: TlsConfig = TlsConfig()) -> None:
        # The aio channel binds to the running loop, so it is opened on first use.
        self._target, self._secure = grpc_endpoint(endpoint, tls)
        self.endpoint = f"{'grpcs' if self._secure else 'grpc'}://{self._target}"
        self._credentials = tls.grpc_credentials() if self._secure else None
        self._channel: grpc.aio.Channel | None = None
        self._timeout = timeout
        self._metadata = _grpc_metadata(api_key)
        self._retry = retry

    async def execute(self, call: Call[T]) -> T:
        assert call.grpc_request is not None and call.grpc_response is not None
        if self._channel is None:
            self._channel = (
                grpc.aio.secure_channel(self._target, self._credentials, options=_GRPC_OPTIONS)
                if self._credentials is not None
                else grpc.aio.insecure_channel(self._target, options=_GRPC_OPTIONS))
        method = self._channel.unary_unary(call.grpc_method,
                                           request_serializer=type(call.grpc_request).SerializeToString,
                                           response_deserializer=call.grpc_response.FromString)

        async def send() -> T:
            try:
                response = await method(call.grpc_request, timeout=self._timeout, metadata=self._metadata)
            except grpc.RpcError as exc:
                mismatch = await asyncio.to_thread(_grpc_mismatch, exc, self._target, self._secure)
                raise (mismatch or from_rpc_error(exc)) from exc
            return _grpc_parse(call, response)

        return await run_with_retries_async(call, self._retry, send)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
