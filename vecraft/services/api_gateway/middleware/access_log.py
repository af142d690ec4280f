"""One log line and Prometheus samples per HTTP request.

Requests are labelled by route template (``/v1/vectors/{vector_id}``), not by
raw path, so ids never explode the metrics' label sets; unmatched paths are
counted as ``unmatched``.
"""

from __future__ import annotations

import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vecraft.shared.common.metrics import counter, latency_histogram

log = logging.getLogger("vecraft.gateway.access")

_REQUESTS = counter("gateway", "http_requests", "HTTP requests by route, method and status",
                    ["route", "method", "status"])
_LATENCY = latency_histogram("gateway", "http_request", "HTTP request latency by route and method",
                             ["route", "method"])
#: Health probes are polled constantly; they are counted but not logged.
_QUIET = {"/healthz", "/readyz", "/metrics"}


class AccessLogMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            elapsed = time.perf_counter() - began
            # The template without convertors: /v1/vectors/{vector_id}, not {vector_id:record_id}.
            route = getattr(scope.get("route"), "path_format", "unmatched")
            method = scope["method"]
            _REQUESTS.labels(route, method, str(status)).inc()
            _LATENCY.labels(route, method).observe(elapsed)
            if scope["path"] not in _QUIET:
                log.info("%s %s %s", method, scope["path"], status, extra={
                    "route": route, "status": status, "duration_ms": round(elapsed * 1000, 2)})
