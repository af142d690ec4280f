"""The snapshot service process (``vecraft up --backup-target``).

- **Continuous archiving**: every ``--archive-interval-ms`` the journal's new
  entries are copied to the target, and the restorable horizon moves to the
  heads the pass read (``vecraft restore --to-*`` may name any moment up to it).
- **Scheduled base backups** every ``--backup-interval-s`` (0 = only on
  request), then the retention policy (``--keep-backups``, ``--keep-days``).
- **Admin HTTP API** on its HTTP port: ``POST /v1/backups`` (202 + an
  operation), ``GET /v1/backups``, ``GET|DELETE /v1/backups/{id}``,
  ``POST /v1/backups/{id}/verify``, ``GET /v1/operations[/{id}]`` with
  progress. ``vecraft backup create --data-dir`` goes through it when the
  cluster runs one, so the service stays the only writer of its target.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.services.snapshot_service.archive import CorruptBackup, archive_partitions
from vecraft.services.snapshot_service.backups import (
    BaseBackup,
    Retention,
    create_backup,
    delete_backup,
    get_backup,
    list_backups,
    prune,
    verify,
)
from vecraft.services.snapshot_service.operations import Operation, Operations
from vecraft.services.snapshot_service.settings import SnapshotSettings
from vecraft.services.snapshot_service.target import BackupTarget, open_target
from vecraft.shared.common.config import load_settings
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.metrics import counter, gauge, latency_histogram
from vecraft.shared.common.service import Service, run_service
from vecraft.shared.model.audit import audit_payload, audit_request_id
from vecraft.shared.model.routing import SYSTEM_PARTITION
from vecraft.shared.rpc.v1 import journal_pb2

log = logging.getLogger(__name__)

_ARCHIVED = gauge("snapshot", "archived_offset", "entries", "last archived offset", ["partition"])
_ARCHIVE_LAG = gauge("snapshot", "archive_lag", "entries", "journal entries not archived yet", ["partition"])
_BACKUPS = counter("snapshot", "backups", "base backups taken, by outcome", ["outcome"])
_BACKUP_SECONDS = latency_histogram("snapshot", "backup", "time to take a base backup",
                                    buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200))
_LAST_BACKUP = gauge("snapshot", "last_backup", "unix_seconds", "when the newest base backup was taken")


def _error(exc: VecraftError) -> JSONResponse:
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


class SnapshotService(Service):
    role = "snapshot"

    def __init__(self, settings: SnapshotSettings) -> None:
        super().__init__(settings)
        self.cfg = settings
        if not settings.journal_address or not settings.target:
            raise ValueError("--journal-address and --target are required")
        self.target: BackupTarget = open_target(settings.target)
        self.journal = JournalClient(settings.journal_address)
        self.meta = MetaClient(settings.meta_address, timeout_s=30.0) if settings.meta_address else None
        self.operations = Operations()
        self.retention = Retention(settings.keep_backups, settings.keep_days)
        self._last_backup_at = time.monotonic()

    async def on_start(self) -> None:
        self.spawn(self._loop(), "archive", forever=True)
        self.set_ready()

    async def on_stop(self) -> None:
        await self.operations.cancel_all()
        await self.journal.close()
        if self.meta is not None:
            await self.meta.close()

    def health_payload(self) -> dict[str, Any]:
        running = self.operations.running()
        return {"target": self.target.describe(), "operation": running.as_dict() if running else None}

    # ---- background -------------------------------------------------------------------
    async def _loop(self) -> None:
        interval_s = self.cfg.archive_interval_ms / 1000 if self.cfg.archive_interval_ms else 1.0
        while True:
            await asyncio.sleep(interval_s)
            due = self.cfg.backup_interval_s and \
                time.monotonic() - self._last_backup_at >= self.cfg.backup_interval_s
            if due and self.operations.running() is None:
                self._last_backup_at = time.monotonic()
                self.operations.start("backup", lambda op: self._backup(op, trigger="schedule"))
            elif self.cfg.archive_interval_ms and not self.operations.writer.locked():
                try:
                    async with self.operations.writer:
                        await self._archive()
                except (VecraftError, CorruptBackup) as exc:
                    # The next pass retries; the lag gauge shows how far behind archiving is.
                    log.warning("archiving pass failed", extra={"error": str(exc)})

    async def _archive(self) -> None:
        heads = await self.journal.get_offsets()
        done = await archive_partitions(self.journal, self.target)
        for partition, (offset, _) in done.items():
            _ARCHIVED.labels(partition).set(offset)
            _ARCHIVE_LAG.labels(partition).set(max(0, heads.get(partition, (0, 0))[0] - offset))

    async def _backup(self, op: Operation, *, trigger: str = "api") -> dict[str, Any]:
        began = time.perf_counter()
        try:
            backup = await create_backup(self.journal, self.target, location=self.cfg.target, meta=self.meta,
                                         default_shards=self.cfg.default_shards or None, progress=op.progress)
        except BaseException as exc:
            _BACKUPS.labels("failed").inc()
            await self._audit("backup.create", op.id, exc.wire_name if isinstance(exc, VecraftError)
                              else "internal", {"trigger": trigger})
            raise
        _BACKUPS.labels("done").inc()
        _BACKUP_SECONDS.observe(time.perf_counter() - began)
        _LAST_BACKUP.set(time.time())
        pruned = prune(self.target, self.retention)
        await self._audit("backup.create", backup.id, "ok", {"trigger": trigger, "hlc": backup.max_hlc})
        for gone in pruned:
            await self._audit("backup.delete", gone.id, "ok", {"by": "retention"})
        log.info("base backup taken", extra={"backup": backup.id, "hlc": backup.max_hlc,
                                             "shards": len(backup.shards), "pruned": [b.id for b in pruned]})
        return {"backup": _describe(backup), "pruned": [b.id for b in pruned]}

    async def _audit(self, action: str, target: str, outcome: str, details: dict[str, Any]) -> None:
        """Record a backup action in the audit log (docs/audit.md); never raises: the action stands."""
        try:
            await self.journal.append(SYSTEM_PARTITION, audit_payload(
                action, actor_key_name="snapshot service", target=target, outcome=outcome, details=details),
                request_id=audit_request_id(), ack=journal_pb2.ACK_JOURNAL, timeout_s=10.0)
        except VecraftError as exc:
            log.warning("audit entry not appended: %s", exc.message,
                        extra={"action": action, "target": target})

    # ---- admin API --------------------------------------------------------------------
    def http_app(self) -> Starlette:
        return Starlette(routes=[
            *self.health_routes(),
            Route("/v1/backups", self._list_or_create, methods=["GET", "POST"]),
            Route("/v1/backups/{backup_id}", self._get_or_delete, methods=["GET", "DELETE"]),
            Route("/v1/backups/{backup_id}/verify", self._verify, methods=["POST"]),
            Route("/v1/operations", self._operations, methods=["GET"]),
            Route("/v1/operations/{op_id}", self._operation, methods=["GET"]),
        ])

    async def _list_or_create(self, request: Request) -> Response:
        try:
            if request.method == "GET":
                backups = await asyncio.to_thread(list_backups, self.target)
                return JSONResponse({"backups": [_describe(b) for b in backups]})
            op = self.operations.start("backup", self._backup)
            return JSONResponse({"operation": op.as_dict()}, status_code=202)
        except VecraftError as exc:
            return _error(exc)

    async def _get_or_delete(self, request: Request) -> Response:
        backup_id = request.path_params["backup_id"]
        try:
            if request.method == "GET":
                return JSONResponse(_describe(await asyncio.to_thread(get_backup, self.target, backup_id)))
            async with self.operations.writer:
                gone = await asyncio.to_thread(delete_backup, self.target, backup_id)
            await self._audit("backup.delete", gone.id, "ok", {"by": "api"})
            return JSONResponse({"deleted": gone.id})
        except VecraftError as exc:
            return _error(exc)

    async def _verify(self, request: Request) -> Response:
        backup_id = request.path_params["backup_id"]

        async def work(op: Operation) -> dict[str, Any]:
            op.progress("verify", 0, 1)
            problems = await asyncio.to_thread(verify, self.target, backup_id)
            op.progress("verify", 1, 1)
            return {"backup": backup_id, "ok": not problems, "problems": problems}

        try:
            await asyncio.to_thread(get_backup, self.target, backup_id)
            op = self.operations.start("verify", work)
            return JSONResponse({"operation": op.as_dict()}, status_code=202)
        except VecraftError as exc:
            return _error(exc)

    async def _operations(self, _: Request) -> Response:
        return JSONResponse({"operations": [op.as_dict() for op in self.operations.all()]})

    async def _operation(self, request: Request) -> Response:
        try:
            return JSONResponse(self.operations.get(request.path_params["op_id"]).as_dict())
        except VecraftError as exc:
            return _error(exc)


def _describe(backup: BaseBackup) -> dict[str, Any]:
    return asdict(backup) | {"hlc": backup.max_hlc}


def build(argv: list[str] | None = None) -> SnapshotService:
    """The service of ``argv`` (flags as for ``main``), not started."""
    return SnapshotService(load_settings(SnapshotSettings, argv, section="snapshot"))


def main(argv: list[str] | None = None) -> None:
    service = build(argv)
    setup_logging("snapshot", service.settings.log_level)
    run_service(service)
