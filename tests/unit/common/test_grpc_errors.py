"""The server interceptor and the client translation of errors, over a real gRPC server (raw bytes,
no generated stubs): a VecraftError arrives as its class with its message, details and Retry-After;
anything else as INTERNAL; a stream keeps the items sent before its error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from vecraft.shared.common.errors import NotFound, Unavailable, VecraftError
from vecraft.shared.common.grpc_errors import ErrorInterceptor, from_rpc_error

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


async def _unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    if request == b"missing":
        raise NotFound("no such thing", details={"name": "thing"})
    if request == b"busy":
        raise Unavailable("come back later", retry_after_ms=250)
    if request == b"bug":
        raise ValueError("a programming error")
    return request


async def _stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    yield b"first"
    if request == b"bug":
        raise KeyError("boom")
    raise NotFound("gone mid-stream")


@pytest.fixture
async def channel() -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[ErrorInterceptor()])
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("test.Errors", {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary),
        "Stream": grpc.unary_stream_rpc_method_handler(_stream)})])
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as chan:
        yield chan
    await server.stop(None)


async def _unary_error(channel: grpc.aio.Channel, request: bytes) -> tuple[grpc.StatusCode, VecraftError]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await channel.unary_unary("/test.Errors/Unary")(request)
    return info.value.code(), from_rpc_error(info.value)


async def test_a_vecraft_error_arrives_as_its_class_with_details_and_retry_after(
        channel: grpc.aio.Channel) -> None:
    assert await channel.unary_unary("/test.Errors/Unary")(b"ok") == b"ok"
    code, err = await _unary_error(channel, b"missing")
    assert code is grpc.StatusCode.NOT_FOUND and type(err) is NotFound
    assert err.message == "no such thing" and err.details == {"name": "thing"}
    code, err = await _unary_error(channel, b"busy")
    assert code is grpc.StatusCode.UNAVAILABLE and type(err) is Unavailable and err.retry_after_ms == 250


async def test_anything_else_is_internal_without_its_text(channel: grpc.aio.Channel) -> None:
    code, err = await _unary_error(channel, b"bug")
    assert code is grpc.StatusCode.INTERNAL and type(err) is VecraftError
    assert "programming error" not in err.message and "/test.Errors/Unary" in err.message


@pytest.mark.parametrize(("request_", "code", "cls"), [(b"x", grpc.StatusCode.NOT_FOUND, NotFound),
                                                       (b"bug", grpc.StatusCode.INTERNAL, VecraftError)])
async def test_a_stream_keeps_what_it_sent_before_its_error(
        channel: grpc.aio.Channel, request_: bytes, code: grpc.StatusCode, cls: type[VecraftError]) -> None:
    got = []
    with pytest.raises(grpc.aio.AioRpcError) as info:
        async for item in channel.unary_stream("/test.Errors/Stream")(request_):
            got.append(item)
    assert got == [b"first"] and info.value.code() is code and type(from_rpc_error(info.value)) is cls
