"""The API gateway process: ``python -m vecraft.services.api_gateway``.

Serves the HTTP API (FastAPI, with /healthz /readyz /metrics and the OpenAPI
document at /docs) and the public gRPC services on the shell's two ports.
The collection schema cache and the routing table follow the meta manager's
Watch streams in the background. Ready once the first snapshot of the node
registry arrived (before it, no search could be routed) and, with ``--auth``, the
API key records (before them, no key could be checked); a later meta manager
outage keeps it ready, routing from the last table and checking the last keys.

Without ``--auth`` it refuses to bind an address other than loopback unless given
``--insecure`` (docs/security.md).
"""

from __future__ import annotations

import asyncio
import logging
import sys

import grpc
from starlette.applications import Starlette

from vecraft.clients.meta import MetaClient
from vecraft.services.api_gateway.audit import AuditLog
from vecraft.services.api_gateway.auth.bootstrap import check_bind, ensure_admin_key
from vecraft.services.api_gateway.auth.keyring import KeyRing
from vecraft.services.api_gateway.console.overview import record_counts
from vecraft.services.api_gateway.console.probe import GrpcClusterProbe
from vecraft.services.api_gateway.downstream import Downstream
from vecraft.services.api_gateway.downstream_grpc import GrpcDownstream
from vecraft.services.api_gateway.gateway import Gateway, GatewayLimits
from vecraft.services.api_gateway.handlers.grpc_servicers import add_servicers
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.quotas.book import QuotaBook
from vecraft.services.api_gateway.quotas.counts import StoredVectors
from vecraft.services.api_gateway.quotas.limiter import Quotas
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.services.api_gateway.settings import GatewaySettings
from vecraft.shared.common.config import load_settings
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.service import Service, run_service

log = logging.getLogger(__name__)


class GatewayService(Service):
    role = "gateway"
    #: Public ports: a client certificate is asked for only with --tls-client-ca (docs/security.md#tls).
    tls_public = True

    def __init__(self, settings: GatewaySettings, downstream: Downstream | None = None) -> None:
        super().__init__(settings)
        self.settings: GatewaySettings = settings
        if not settings.meta_address:
            raise ValueError("--meta-address is required: the gateway reads schemas and the node registry "
                             "from the meta manager")
        self.downstream = downstream or GrpcDownstream(
            journal_address=settings.journal_address, meta_address=settings.meta_address,
            data_partitions=settings.data_partitions)
        self.schemas = SchemaCache(self.downstream)
        self.keys = KeyRing(MetaClient(settings.meta_address))
        self.quota_book = QuotaBook(MetaClient(settings.meta_address))
        # Stored vector counts (max_vectors) from the storage nodes, as the console reads them.
        self._counts_probe = GrpcClusterProbe(journal_address=settings.journal_address,
                                              meta_address=settings.meta_address)
        self.quotas = Quotas(self.quota_book, collection_names=self._collection_names,
                             stored=StoredVectors(self._live_counts))
        self.audit = AuditLog(self.downstream, key_name=self.keys.name_of)
        self.gateway = Gateway(self.downstream, self.schemas, limits=GatewayLimits(
            default_timeout_ms=settings.search_timeout_ms,
            default_max_staleness_ms=settings.default_max_staleness_ms), quotas=self.quotas,
            audit=self.audit)

    async def _collection_names(self, tenant: str) -> set[str]:
        return {s.name for s in await self.downstream.list_collections(tenant)}

    async def _live_counts(self) -> dict[str, int]:
        snapshot = await self._counts_probe.snapshot()
        return {label: live for label, (live, _) in record_counts(snapshot).items()}

    def register(self, server: grpc.aio.Server) -> None:
        add_servicers(server, self.gateway, self.keys if self.settings.auth else None)

    def http_app(self) -> Starlette:
        return create_app(self.gateway, extra_routes=self.health_routes(),
                          max_body_bytes=self.settings.max_body_bytes, keys=self.keys,
                          auth=self.settings.auth, quotas=self.quota_book, audit=self.audit)

    async def on_start(self) -> None:
        await self.downstream.start()
        self.spawn(self.schemas.run_watch(), "schema-watch", forever=True)
        self.spawn(self.downstream.follow_registry(), "registry-watch", forever=True)
        self.spawn(self.quota_book.run_watch(), "quota-watch", forever=True)
        if self.settings.auth:
            self.spawn(self.keys.run_watch(), "key-watch", forever=True)
            admin_key = self.spawn(ensure_admin_key(self.keys, self.settings.bootstrap_admin_key_file),
                                   "admin-key")
        self.spawn(self._ready_when_routable(admin_key if self.settings.auth else None), "routing-ready")

    async def _ready_when_routable(self, admin_key: asyncio.Task[None] | None) -> None:
        await self.downstream.wait_routable()
        if admin_key is not None:
            await self.keys.wait_loaded()
            # Ready only once the first admin key exists (and its file is written): `vecraft up
            # --auth` points the user at that file as soon as the gateway is ready.
            await asyncio.shield(admin_key)
        self.set_ready()
        log.info("routing table received from the node registry; ready")

    async def on_stop(self) -> None:
        await self.downstream.stop()
        await self.keys.meta.close()
        if self.quota_book.meta is not None:
            await self.quota_book.meta.close()
        await self._counts_probe.close()

    def health_payload(self) -> dict[str, object]:
        return {"schema_watch": self.schemas.watching, "data_partitions": self.settings.data_partitions,
                "routing": self.downstream.routing_health(),
                "auth": {"enabled": self.settings.auth, "keys_loaded": self.keys.loaded},
                "quotas": {"loaded": self.quota_book.loaded, "records": len(self.quota_book.records())}}


def build(argv: list[str] | None = None) -> GatewayService:
    """The gateway of ``argv`` (flags as for ``main``), not started.

    Raises:
        ValueError: it would listen on a non-loopback address without ``--auth`` or ``--insecure``.
    """
    settings = load_settings(GatewaySettings, argv, section="gateway")
    check_bind(settings.host, auth=settings.auth, insecure=settings.insecure)
    return GatewayService(settings)


def main(argv: list[str] | None = None) -> None:
    settings = load_settings(GatewaySettings, argv, section="gateway")
    setup_logging("gateway", settings.log_level)
    try:
        service = build(argv)
    except ValueError as exc:
        log.error("%s", exc)
        sys.exit(f"vecraft gateway: {exc}")
    run_service(service)
