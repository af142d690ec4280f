"""401 before anything else: every HTTP request but the probes and the API docs needs an API key.

Installed only with ``--auth``. The key of ``Authorization: Bearer <key>`` is checked
against the gateway's :class:`~vecraft.services.api_gateway.auth.keyring.KeyRing`; its
:class:`~vecraft.services.api_gateway.auth.principal.Principal` is stored in
``scope["state"]["principal"]`` for the handlers, which check role, scope and tenant.
Without the middleware every request runs as ``OPEN``.

Open without a key: ``/healthz``, ``/readyz``, ``/metrics`` (probes and scrapers), ``/docs``,
``/docs-assets/``, ``/openapi.json`` (the API's description, no data) and ``/console/`` (the
web console's static files; the console sends the key the user enters with each API call).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from vecraft.services.api_gateway.auth.keyring import KeyRing
from vecraft.services.api_gateway.middleware.errors import error_response
from vecraft.shared.common.errors import VecraftError

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/docs", "/openapi.json", "/console"})
OPEN_PREFIXES = ("/docs-assets/", "/console/")


def is_open_path(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


class AuthMiddleware:
    def __init__(self, app: ASGIApp, keys: KeyRing) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        try:
            principal = self.keys.authenticate(header)
        except VecraftError as err:
            await error_response(err, {"WWW-Authenticate": "Bearer"} if err.http_status == 401 else None)(
                scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)
