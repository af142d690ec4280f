"""Refuse request bodies above the gateway's limit (413) before reading them whole.

A declared ``Content-Length`` above the limit is answered at once; a chunked
body is counted as it streams in and refused as soon as it passes the limit,
so a hostile client cannot make the gateway buffer more than the limit.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vecraft.services.api_gateway.middleware.errors import error_response
from vecraft.shared.common.errors import InvalidRequest, PayloadTooLarge


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"request body is larger than {limit} bytes ({limit / 2**20:g} MiB); split "
                           f"the batch into several requests", details={"max_body_bytes": limit})


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.limit = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await error_response(InvalidRequest(f"Content-Length {declared[:32]!r} is not a "
                                                    f"number"))(scope, receive, send)
                return
            if int(declared) > self.limit:
                await error_response(too_large(self.limit))(scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # Raised inside the handler's body read: the error handlers answer 413.
                    raise too_large(self.limit)
            return message

        await self.app(scope, counting_receive, send)
