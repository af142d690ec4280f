"""Storage node process: one replica of one shard (of every collection).

``python -m vecraft.services.storage_node --shard S --replica R --journal-address H:P
--data-partitions P --data-dir D [--apply-delay-ms N] [--meta-address H:P]``

Start-up: open and check the local stores, load the index snapshot and
replay the local records after it (:mod:`.journal_replay.recovery`), start one
push follower per data partition (``data-0..data-{P-1}``: every write
and a copy of every DDL of a collection reach the node through its tenant's
one), catch up to the journal head as of
start by pulling, then report ready. A node with an empty data dir therefore
rebuilds itself from the journal, and a restarted node is ready only once it
is current. Shutdown writes a final snapshot so the next start replays little.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import faiss
import grpc
from pydantic import Field

from vecraft.services.journal_service.client import JournalClient
from vecraft.services.storage_node import metrics
from vecraft.services.storage_node.indexes.registry import CollectionRegistry
from vecraft.services.storage_node.journal_replay.applier import Applier
from vecraft.services.storage_node.journal_replay.engine import ApplyEngine
from vecraft.services.storage_node.journal_replay.follower import (
    HeadWatch,
    PartitionFollower,
    storage_follower,
)
from vecraft.services.storage_node.journal_replay.recovery import LocalState, open_local_state
from vecraft.services.storage_node.journal_replay.reporter import AppliedReporter
from vecraft.services.storage_node.mmap import LocationIndex, RecordFile
from vecraft.services.storage_node.registration import register_with_meta
from vecraft.services.storage_node.servicer import StorageNodeServicer, status_payload
from vecraft.shared.common.config import ServiceSettings, load_settings
from vecraft.shared.common.errors import InvalidRequest, Unavailable
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.service import Service, ServiceState, run_service
from vecraft.shared.model.routing import data_partition
from vecraft.shared.replica import PartitionHalts
from vecraft.shared.rpc.v1 import storage_pb2_grpc

log = logging.getLogger(__name__)

_CATCH_UP_RETRY_S = 0.5


class StorageNodeSettings(ServiceSettings):
    """Storage node settings (flags, VECRAFT_* environment, [storage] in the TOML file)."""

    shard: int = Field(0, ge=0, description="shard index this node serves (of every collection)")
    replica: int = Field(0, ge=0, description="replica number within the shard group")
    journal_address: str = Field("127.0.0.1:7100", description="journal service gRPC address")
    data_partitions: int = Field(1, ge=1, description="number of journal data partitions")
    apply_delay_ms: int = Field(0, ge=0, description="test knob: delay the push stream (storage lag); "
                                                      "pull-before-read is never delayed")
    snapshot_every_ops: int = Field(50_000, ge=0, description="index snapshot after this many applied "
                                                              "records (0 = only at shutdown)")
    snapshot_every_s: float = Field(300.0, ge=0, description="... or after this many seconds of applies")
    node_ttl_ms: int = Field(10_000, ge=1000, description="lease of the meta manager registration")
    head_poll_ms: int = Field(100, ge=10, description="interval of journal head reads (staleness bound)")
    index_threads: int = Field(1, ge=0, description="OpenMP threads for faiss (0 = library default)")


class StorageNode(Service):
    role = "storage"

    def __init__(self, settings: StorageNodeSettings) -> None:
        super().__init__(settings)
        self.cfg = settings
        self.shard = settings.shard
        self.replica = settings.replica
        self.replica_id = f"storage-{settings.shard}-r{settings.replica}"
        # Stable across restarts (the journal tracks acks by it), unlike the port-based default.
        self.node_id = settings.node_id or self.replica_id
        self.partitions = [data_partition(i) for i in range(settings.data_partitions)]
        self.followers: dict[str, PartitionFollower] = {}
        self._local: LocalState | None = None
        self._journal: JournalClient | None = None
        self.engine: ApplyEngine | None = None
        # A halted partition (apply failure, diverged journal) takes readiness with it.
        self.halts = PartitionHalts(on_halt=lambda _partition, _err: self.set_ready(False))

    # ---- accessors used by the servicer ---------------------------------------------------
    @property
    def is_ready(self) -> bool:
        return self.state is ServiceState.READY

    @property
    def local(self) -> LocalState:
        if self._local is None:
            raise Unavailable("storage node is starting")
        return self._local

    @property
    def registry(self) -> CollectionRegistry:
        return self.local.registry

    @property
    def locations(self) -> LocationIndex:
        return self.local.locations

    @property
    def records(self) -> RecordFile:
        return self.local.records

    def follower(self, partition: str) -> PartitionFollower:
        follower = self.followers.get(partition)
        if follower is None:
            raise InvalidRequest(f"partition {partition!r} is not followed by this node; "
                                 f"it follows {', '.join(self.partitions)}")
        return follower

    # ---- Service hooks -------------------------------------------------------------------
    def register(self, server: grpc.aio.Server) -> None:
        storage_pb2_grpc.add_StorageNodeServiceServicer_to_server(StorageNodeServicer(self), server)

    def health_payload(self) -> dict[str, Any]:
        if self._local is None:
            return {"shard": self.shard, "replica": self.replica}
        return status_payload(self)

    async def on_start(self) -> None:
        self._local = await asyncio.to_thread(open_local_state, self.cfg.data_dir, self.shard)
        state = self._local
        for partition, (offset, _hlc) in state.applied.items():
            metrics.APPLIED_OFFSET.labels(partition).set(offset)
        for coll in state.registry.collections():
            metrics.INDEX_RECORDS.labels(coll.label).set(len(coll.index))
        self._journal = JournalClient(self.cfg.journal_address)
        reporter = AppliedReporter(self._journal, self.replica_id)
        applier = Applier(self.shard, state.records, state.locations, state.registry, state.applied)
        engine = ApplyEngine(applier, state.registry, state.snapshots, on_applied=reporter.applied,
                             snapshot_every_ops=self.cfg.snapshot_every_ops,
                             snapshot_every_s=self.cfg.snapshot_every_s, halts=self.halts)
        self.engine = engine
        for partition in self.partitions:
            self.followers[partition] = storage_follower(
                partition, engine, self._journal, replica_id=self.replica_id, shard=self.shard,
                apply_delay_ms=self.cfg.apply_delay_ms)
        # The loops run until shutdown (forever=True: one that returns fails the node like one
        # that raises); the catch-up is a step that ends once the node is current.
        self.spawn(reporter.run(), "report-applied", forever=True)
        for partition, follower in self.followers.items():
            self.spawn(follower.run(), f"follow:{partition}", forever=True)
        self.spawn(HeadWatch(self._journal, self.followers, interval_s=self.cfg.head_poll_ms / 1000.0).run(),
                   "head-watch", forever=True)
        self.spawn(self._catch_up(), "catch-up")
        if self.settings.meta_address:
            self.spawn(register_with_meta(self, self.settings.meta_address, self.cfg.node_ttl_ms),
                       "meta-registration", forever=True)

    async def _catch_up(self) -> None:
        """Pull every partition to the journal head as of now, then report ready."""
        while True:
            try:
                await asyncio.gather(*(self._catch_up_one(f) for p, f in self.followers.items()
                                       if not self.halts.halted(p)))
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure is retried until caught up
                log.warning("catch-up failed; retrying", extra={"error": str(exc)})
                await asyncio.sleep(_CATCH_UP_RETRY_S)
        log.info("caught up", extra={"applied": {p: f.applied_offset for p, f in self.followers.items()}})
        if self.halts.any:
            log.critical("partitions are halted; the node stays not ready",
                         extra={"halted": self.halts.reasons()})
            return
        self.set_ready()

    @staticmethod
    async def _catch_up_one(follower: PartitionFollower) -> None:
        # A journal that lost or re-used what the disk holds halts the partition here.
        await follower.verify_history()
        await follower.sync(None)

    async def on_stop(self) -> None:
        if self._local is None:
            return
        if self.engine is not None:
            await self.engine.wait_snapshot()
            await self.engine.snapshot()
        if self._journal is not None:
            await self._journal.close()
        self._local.close()


def main(argv: list[str] | None = None) -> None:
    settings = load_settings(StorageNodeSettings, argv, section="storage")
    setup_logging("storage", settings.log_level)
    if settings.index_threads:
        # Measured (docs/storage-node.md): with OpenMP's default of one thread per
        # core, HNSW inserts of apply-sized batches on a busy 2-core host ran 10x
        # slower than single-threaded (threads spin against each other and the
        # other processes); applies and searches already run in parallel threads.
        faiss.omp_set_num_threads(settings.index_threads)
    log.info("starting storage node", extra={"shard": settings.shard, "replica": settings.replica,
                                             "pid": os.getpid()})
    run_service(StorageNode(settings))
