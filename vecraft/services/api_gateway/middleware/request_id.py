"""X-Request-Id: taken from the client (the idempotency key of writes) or generated.

The id is stored in ``scope["state"]["request_id"]`` for the handlers, set as
the logging context (:data:`~vecraft.shared.common.logging.request_id_var`)
and echoed in the response's ``X-Request-Id``. A handler may replace it (a
body ``request_id`` wins over the header); the echoed header follows.

A header that is not a usable id (too long, control characters) is not
echoed; the handlers refuse the request with a 400 naming the problem
(``scope["state"]["request_id_error"]``).
"""

from __future__ import annotations

import re
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vecraft.shared.common.logging import request_id_var

HEADER = "x-request-id"
#: Printable ASCII without spaces, 1..128 characters.
REQUEST_ID_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
REQUEST_ID_RULE = "1..128 printable ASCII characters without spaces"


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Pure ASGI middleware (no per-request task, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        given = Headers(scope=scope).get(HEADER)
        if given is not None and not REQUEST_ID_RE.match(given):
            state["request_id_error"] = f"X-Request-Id must be {REQUEST_ID_RULE}"
            given = None
        state["request_id"] = given or new_request_id()
        token = request_id_var.set(state["request_id"])

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-Id"] = state["request_id"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)
