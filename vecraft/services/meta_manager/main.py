"""The meta manager process: ``python -m vecraft.services.meta_manager``.

Catalog (collections and their schemas), placement, tenant -> partition map,
node registry with leases, watch streams and HLC coordination, over one
:class:`~vecraft.services.meta_manager.store.MetaStore` chosen by
``--backend sqlite|etcd``. DDL is ordered through the journal's ``system``
partition (``--journal-address``); without a journal the catalog is read-only.
See docs/meta-manager.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import grpc

from vecraft.services.meta_manager.ddl import DdlCoordinator
from vecraft.services.meta_manager.hlc_sync import HlcCoordinator
from vecraft.services.meta_manager.placement import TenantMap
from vecraft.services.meta_manager.restore_audit import record_restore
from vecraft.services.meta_manager.servicer import MetaServicer
from vecraft.services.meta_manager.settings import MetaSettings
from vecraft.services.meta_manager.store import MetaStore, open_store
from vecraft.shared.common import tls
from vecraft.shared.common.config import load_settings
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.service import Service, run_service
from vecraft.shared.rpc.v1 import meta_pb2, meta_pb2_grpc

log = logging.getLogger(__name__)


class MetaManager(Service):
    """The meta manager service."""

    role = "meta"

    def __init__(self, settings: MetaSettings) -> None:
        super().__init__(settings)
        self.settings: MetaSettings = settings
        endpoints = [e for e in settings.etcd_endpoints.split(",") if e.strip()]
        # etcd is reached with this service's own certificate and CA, as its internal calls are.
        etcd_tls = tls.files_of(settings.tls_cert, settings.tls_key, settings.tls_ca)
        self.store: MetaStore = open_store(settings.backend, data_dir=settings.data_dir,
                                           etcd_endpoints=endpoints, etcd_prefix=settings.etcd_prefix,
                                           etcd_tls=etcd_tls)
        self.tenants = TenantMap(self.store, settings.data_partitions)
        self.hlc = HlcCoordinator(settings.max_clock_offset_ms)
        self._journal: Any = None
        self.ddl = DdlCoordinator(self.store, self.tenants, default_shards=settings.default_shards,
                                  default_replicas=settings.default_replicas)
        self.servicer = MetaServicer(self.store, self.ddl, self.tenants, self.hlc,
                                     default_ttl_ms=settings.lease_ttl_ms)

    def register(self, server: grpc.aio.Server) -> None:
        meta_pb2_grpc.add_MetaManagerServiceServicer_to_server(self.servicer, server)

    async def on_start(self) -> None:
        await self.store.start()
        if self.settings.journal_address:
            # Imported here: the journal package is only needed when DDL is enabled.
            from vecraft.clients.journal import JournalClient

            self._journal = JournalClient(self.settings.journal_address)
            self.ddl.journal = self._journal
            # Materialize DDL left behind by a crash (or by other managers) in the background:
            # readiness must not wait for the journal, which may be starting too.
            self.spawn(self.ddl.follow(self.settings.ddl_follow_interval_ms / 1000), "ddl-follow",
                       forever=True)
            self.spawn(self._record_restore(), "restore-audit")
        self.spawn(self._stay_registered(), "self-registration", forever=True)
        self.set_ready()

    async def _stay_registered(self) -> None:
        """Register this manager as a "meta" node and keep its lease alive."""
        ttl = self.settings.lease_ttl_ms
        lease_id = ""
        while True:
            try:
                if not lease_id or not await self.store.heartbeat(self.node_id, lease_id):
                    node = meta_pb2.NodeInfo(node_id=self.node_id, role=self.role, address=self.grpc_address,
                                             http_address=self.http_address, pid=os.getpid())
                    lease_id, ttl = await self.store.register_node(node, self.settings.lease_ttl_ms)
            except VecraftError as exc:
                log.warning("self-registration failed: %s", exc.message)
                lease_id = ""
            await asyncio.sleep(ttl / 3000)

    async def _record_restore(self) -> None:
        """A restored cluster's first start records the restore in the audit log (docs/backup.md).

        ``vecraft up`` puts this manager's files in ``<data-dir>/meta``; the restore's
        ``restored-from.json`` is in ``<data-dir>``. Retried until the journal takes the entry: the
        request id makes a retry (or a start after a crash before the marker) append nothing new.
        """
        while True:
            try:
                await record_restore(self._journal, self.settings.data_dir.parent)
                return
            except VecraftError as exc:
                log.warning("restore audit entry not appended yet: %s", exc.message)
                await asyncio.sleep(1.0)

    async def shutdown(self, grace: float = 5.0) -> None:
        # Watch streams never end by themselves: close them so the gRPC drain is quick.
        self.servicer.close_streams()
        await super().shutdown(grace)

    async def on_stop(self) -> None:
        if self._journal is not None:
            await self._journal.close()
        await self.store.stop()

    def health_payload(self) -> dict[str, Any]:
        return {"backend": self.store.backend, "journal": self.settings.journal_address or None,
                "flagged_clocks": self.hlc.flagged_nodes()}


def build(argv: list[str] | None = None) -> MetaManager:
    """The meta manager of ``argv`` (flags as for ``main``), not started."""
    return MetaManager(load_settings(MetaSettings, argv, section="meta", description="Vecraft meta manager"))


def main(argv: list[str] | None = None) -> None:
    service = build(argv)
    setup_logging("meta", service.settings.log_level)
    run_service(service)
