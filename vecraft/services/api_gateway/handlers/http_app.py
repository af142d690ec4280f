"""The gateway's FastAPI application: routes, middleware, error mapping and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.responses import HTMLResponse
from starlette.routing import BaseRoute
from starlette.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from vecraft.services.api_gateway.audit import AuditLog
from vecraft.services.api_gateway.auth.keyring import KeyRing
from vecraft.services.api_gateway.console import mount_console
from vecraft.services.api_gateway.console.probe import ClusterProbe
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers.audit_routes import build_audit_router
from vecraft.services.api_gateway.handlers.console_routes import build_console_router
from vecraft.services.api_gateway.handlers.http_routes import build_router, lean_search_route
from vecraft.services.api_gateway.handlers.http_schemas import REQUEST_MODELS
from vecraft.services.api_gateway.handlers.key_routes import CreateKeyRequest, build_key_router
from vecraft.services.api_gateway.handlers.quota_routes import SetQuotaRequest, build_quota_router
from vecraft.services.api_gateway.middleware.access_log import AccessLogMiddleware
from vecraft.services.api_gateway.middleware.auth import AuthMiddleware
from vecraft.services.api_gateway.middleware.body_limit import BodyLimitMiddleware
from vecraft.services.api_gateway.middleware.errors import install_error_handlers
from vecraft.services.api_gateway.middleware.request_id import RequestIdMiddleware
from vecraft.services.api_gateway.quotas.book import QuotaBook
from vecraft.services.api_gateway.responses import JSONResponse
from vecraft.shared.model.limits import MAX_REQUEST_BYTES

#: Default request body limit, the same as gRPC's (a 10,000 x 1,536 float32 batch as base64 is
#: ~82 MB; as JSON text much more), beyond which clients split batches.
DEFAULT_MAX_BODY_BYTES = MAX_REQUEST_BYTES

DESCRIPTION = """\
Vecraft: a journal-based distributed vector database. Every write gets a journal position
(partition, offset, HLC); searches choose their consistency level (eventual, bounded staleness,
read-your-writes, strong). Errors are `{"error": {"code", "message", "details"}}`.
See docs/http-api.md for examples."""

#: Where the Swagger UI files (from the swagger-ui-bundle-v2 package) are served, so /docs
#: works on a machine without internet access.
SWAGGER_ASSETS = "/docs-assets"


def create_app(gateway: Gateway, *, extra_routes: Sequence[BaseRoute] = (),
               max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               cluster_probe: ClusterProbe | None = None, keys: KeyRing | None = None,
               auth: bool = False, quotas: QuotaBook | None = None, audit: AuditLog | None = None) -> FastAPI:
    """The HTTP app over ``gateway``; ``extra_routes`` are the shell's /healthz /readyz /metrics.

    ``cluster_probe`` feeds the web console's cluster overview (nodes, replicas, lag); without
    it the overview says so and shows what the gateway reads itself. ``keys`` adds the key
    management routes (/v1/keys); ``auth`` (needs ``keys``) requires a key on every request
    but the probes and docs (docs/security.md). ``quotas`` adds the quota routes (/v1/quotas,
    docs/quotas.md). ``audit`` adds ``GET /v1/audit`` and records key and quota changes
    (docs/audit.md).
    """
    if auth and keys is None:
        raise ValueError("auth needs the key ring")
    # /docs is served below from local files; FastAPI's own /docs and /redoc load from a CDN.
    app = FastAPI(title="Vecraft API", version="1.0.0", description=DESCRIPTION,
                  default_response_class=JSONResponse, docs_url=None, redoc_url=None)
    _serve_swagger_ui(app)
    # Before the FastAPI routes: the search route that answers (the FastAPI one documents it).
    app.router.routes.append(lean_search_route(gateway))
    app.include_router(build_router(gateway))
    app.include_router(build_console_router(gateway, cluster_probe))
    if keys is not None:
        app.include_router(build_key_router(keys, audit))
    if quotas is not None:
        app.include_router(build_quota_router(quotas, audit))
    if audit is not None:
        app.include_router(build_audit_router(audit))
    mount_console(app)
    app.router.routes.extend(extra_routes)
    install_error_handlers(app)
    # Outermost first at request time: request id (so every answer carries one), access log,
    # the key check (a request without a valid key is answered 401 before its body is read),
    # then the body limit.
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=max_body_bytes)
    if auth and keys is not None:
        app.add_middleware(AuthMiddleware, keys=keys)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(RequestIdMiddleware)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(title=app.title, version=app.version, description=app.description,
                              routes=app.routes)
            # Request bodies are parsed by the codec, so FastAPI does not see their models;
            # add them to the components the routes' openapi_extra refers to.
            models: tuple[type[BaseModel], ...] = (*REQUEST_MODELS, CreateKeyRequest,
                                                       SetQuotaRequest)
            _, defs = models_json_schema([(m, "validation") for m in models],
                                         ref_template="#/components/schemas/{model}")
            doc.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def _serve_swagger_ui(app: FastAPI) -> None:
    """``/docs``: Swagger UI over /openapi.json, its scripts and styles served by the gateway."""
    app.mount(SWAGGER_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui-assets")

    async def docs(request: Request) -> HTMLResponse:
        # Behind a proxy that strips a prefix, every URL the page loads needs it back.
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{SWAGGER_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{SWAGGER_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{SWAGGER_ASSETS}/favicon-32x32.png",
            # No badge from the online validator either.
            swagger_ui_parameters={"validatorUrl": None})

    app.add_route("/docs", docs, include_in_schema=False)
