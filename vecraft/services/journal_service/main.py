"""The journal service process: ``python -m vecraft.services.journal_service``."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import grpc

from vecraft.services.journal_service.distribution import BackPressure, ReplicaRegistry, Thresholds
from vecraft.services.journal_service.journal import Journal, JournalLimits
from vecraft.services.journal_service.ownership import Ownership
from vecraft.services.journal_service.partition_map import PartitionMap
from vecraft.services.journal_service.servicer import JournalServicer
from vecraft.services.journal_service.settings import JournalSettings
from vecraft.services.journal_service.wal import JournalBackend
from vecraft.services.journal_service.wal.local import LocalJournalBackend
from vecraft.services.journal_service.wal.request_ids import RequestIdRetention
from vecraft.shared.common.config import load_settings
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.service import Service, run_service
from vecraft.shared.hlc import HybridLogicalClock
from vecraft.shared.rpc.v1 import journal_pb2_grpc

if TYPE_CHECKING:
    from vecraft.clients.meta import MetaClient

log = logging.getLogger(__name__)


def build_backend(settings: JournalSettings, partition_map: PartitionMap) -> JournalBackend:
    """The log backend ``settings.backend`` names, with the HLC persisted in the data directory."""
    clock = HybridLogicalClock(max_clock_offset_ms=settings.max_clock_offset_ms,
                               persist_path=settings.data_dir / "hlc.json")
    retention = RequestIdRetention(count=settings.request_id_retention_count,
                                   seconds=settings.request_id_retention_s)
    if settings.backend == "jetstream":
        # Imported here: nats-py comes with the cluster extra, which local mode does not need.
        from vecraft.services.journal_service.wal.jetstream import JetStreamJournalBackend

        return JetStreamJournalBackend(settings.nats_urls, partition_map.names, clock=clock,
                                       replicas=settings.nats_replicas,
                                       stream_prefix=settings.nats_stream_prefix,
                                       request_id_retention=retention, fenced=settings.partition_ownership)
    return LocalJournalBackend(settings.data_dir, partition_map.names, clock=clock,
                               segment_bytes=settings.segment_bytes, fsync=settings.fsync,
                               request_id_retention=retention)


class JournalService(Service):
    """Serves ``vecraft.v1.JournalService``; ready once every partition is recovered.

    Not ready while any partition's writer has failed (it answers its appends
    ``UNAVAILABLE`` until a restart): a journal that cannot write one of its
    partitions must not look healthy behind its probe.

    With partition ownership (``settings.partition_ownership``) it is ready once the
    streams are read, owning a partition or not: every instance serves reads, and
    a non-owner redirects writes to the owner.
    """

    role = "journal"

    def __init__(self, settings: JournalSettings) -> None:
        super().__init__(settings)
        self.settings: JournalSettings = settings
        self.partition_map = PartitionMap(settings.data_partitions)
        self.backend = build_backend(settings, self.partition_map)
        self.journal = Journal(
            self.backend, self.partition_map, ReplicaRegistry(settings.replica_liveness_ms),
            BackPressure(Thresholds(settings.backpressure_lag_ms, settings.backpressure_lag_ops,
                                    settings.backpressure_lag_bytes)),
            JournalLimits(max_entry_bytes=settings.max_entry_bytes,
                          write_ack_timeout_ms=settings.write_ack_timeout_ms,
                          heartbeat_ms=settings.heartbeat_ms, pull_max_entries=settings.pull_max_entries,
                          pull_max_bytes=settings.pull_max_bytes,
                          keep_entries_s=settings.request_id_retention_s))
        self.ownership: Ownership = self.journal.ownership
        self._meta: MetaClient | None = None

    def register(self, server: grpc.aio.Server) -> None:
        journal_pb2_grpc.add_JournalServiceServicer_to_server(JournalServicer(self.journal), server)

    async def journal_call(self, method: str, request: Any) -> Any:
        """``GetOffset`` / ``PullWAL`` for a client in this process (standalone mode,
        :mod:`vecraft.shared.common.in_process`), as the servicer answers them."""
        if method == "GetOffset":
            return await self.journal.get_offsets(request.partitions)
        if method == "PullWAL":
            return await self.journal.pull(request)
        raise ValueError(f"{method} is not served in process")

    async def on_start(self) -> None:
        await self.backend.open()
        if self.settings.partition_ownership:
            await self._start_ownership()
        self.spawn(self.journal.monitor(), "monitor", forever=True)
        if not self.settings.fsync:
            log.warning("fsync is off: acknowledged entries can be lost on a crash")
        self.set_ready()

    async def _start_ownership(self) -> None:
        # Imported here: the jetstream backend needs nats-py (the cluster extra).
        from vecraft.clients.meta import MetaClient
        from vecraft.services.journal_service.ownership.leased import LeasedOwnership
        from vecraft.services.journal_service.wal.jetstream import JetStreamJournalBackend

        assert isinstance(self.backend, JetStreamJournalBackend)
        ttl_ms = self.settings.partition_lease_ttl_ms
        # A renewal that has not come back within a third of the TTL is retried, not waited for.
        self._meta = MetaClient(self.settings.meta_address, timeout_s=max(0.1, ttl_ms / 3000))
        leased = LeasedOwnership(self.backend, self._meta, node_id=self.node_id, address=self.grpc_address,
                                 http_address=self.http_address, lease_ttl_ms=ttl_ms,
                                 node_ttl_ms=self.settings.node_ttl_ms,
                                 stream_prefix=self.settings.nats_stream_prefix)
        self.ownership = self.journal.ownership = leased
        self.spawn(leased.run(), "ownership", forever=True)

    async def shutdown(self, grace: float = 5.0) -> None:
        # Subscribe streams never end by themselves; without this the gRPC server would wait
        # the whole grace period for them.
        self.journal.end_streams()
        await super().shutdown(grace)

    async def on_stop(self) -> None:
        await self.backend.close()
        if self._meta is not None:
            # After the last write: another instance takes the partitions over at once.
            await self.ownership.release_all()
            await self._meta.close()

    @property
    def ready(self) -> bool:
        return super().ready and not self.backend.failed_partitions()

    def health_payload(self) -> dict[str, object]:
        if self.state.value != "ready":
            return {}
        payload: dict[str, object] = {
            "partitions": {p: self.backend.partition(p).head[0] for p in self.backend.partitions()},
            **self.ownership.describe()}
        failed = self.backend.failed_partitions()
        if failed:
            payload["failed_partitions"] = failed
        return payload


def build(argv: list[str] | None = None) -> JournalService:
    """The service of ``argv`` (flags as for ``main``), not started."""
    return JournalService(load_settings(JournalSettings, argv, section="journal"))


def main(argv: list[str] | None = None) -> None:
    service = build(argv)
    setup_logging("journal", service.settings.log_level)
    run_service(service)
