"""Storage node process: hosts one or more shard replicas (shard ``s`` of every collection, per hosted s).

``python -m vecraft.services.storage_node --shards 0,2 --replica R --journal-address H:P
--data-partitions P --data-dir D [--apply-delay-ms N] [--meta-address H:P]``

The process owns what its replicas share: the gRPC server and probes, one
journal client, the meta manager registration. Each hosted shard is a
:class:`~.replica.ShardReplica` with its own files in ``<data-dir>/shard-<s>/``
(:mod:`.layout`; a single-shard data dir of the previous layout is moved there
at start), its own apply engine, followers, applied reporter (journal replica id
``storage-<s>-r<R>``) and halts.

Start-up: every replica opens and checks its local stores, loads its index
snapshot and replays the local records after it; their followers start; each
catches up to the journal head as of start by pulling; the node reports ready
once all have. A replica with an empty directory therefore rebuilds itself from
the journal. A halted replica makes the node not ready, while the other hosted
replicas keep answering. Shutdown writes a final snapshot per replica.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import faiss
import grpc
from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from vecraft.services.journal_service.client import JournalClient
from vecraft.services.storage_node.layout import LayoutError, migrate_single_shard_dir, replica_dir
from vecraft.services.storage_node.registration import register_with_meta
from vecraft.services.storage_node.replica import ReplicaConfig, ShardReplica, replica_id
from vecraft.services.storage_node.servicer import StorageNodeServicer, status_payload
from vecraft.shared.common.config import (
    ServiceSettings,
    add_settings_arguments,
    settings_from_namespace,
)
from vecraft.shared.common.errors import InvalidRequest, Unavailable
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.service import Service, ServiceState, run_service
from vecraft.shared.model.routing import data_partition
from vecraft.shared.rpc.v1 import storage_pb2_grpc

log = logging.getLogger(__name__)


class ShardNotHosted(Unavailable):
    """A request for a shard this node does not host.

    UNAVAILABLE (503) rather than NOT_FOUND: the shard exists, only not here, so a
    caller with several replicas of the shard tries the next one.
    """


class StorageNodeSettings(ServiceSettings):
    """Storage node settings (flags, VECRAFT_* environment, [storage] in the TOML file)."""

    shards: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [0], description="shards hosted (of every collection): 0,2 or 0 2")
    replica: int = Field(0, ge=0, description="replica number of every hosted shard")
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

    @field_validator("shards", mode="before")
    @classmethod
    def _parse_shards(cls, value: Any) -> list[int]:
        """``"0,2"``, ``[0, 2]``, ``["0,2"]`` or ``["0", "2"]`` -> ``[0, 2]`` (sorted, each once)."""
        items = value if isinstance(value, list | tuple) else [value]
        out: list[int] = []
        for item in items:
            parts = str(item).strip("[] ").split(",") if isinstance(item, str) else [item]
            for part in parts:
                text = str(part).strip()
                if not text:
                    continue
                try:
                    shard = int(text)
                except ValueError:
                    raise ValueError(f"shards: {text!r} is not a shard number") from None
                if shard < 0:
                    raise ValueError(f"shards: {shard} is negative")
                out.append(shard)
        if not out:
            raise ValueError("shards: at least one shard must be hosted")
        if len(set(out)) != len(out):
            raise ValueError(f"shards: {value!r} names a shard twice")
        return sorted(out)


def default_node_id(shards: list[int], replica: int) -> str:
    """Stable across restarts (the journal and the meta manager know the node by it).

    A node hosting one shard keeps the id it always had, its replica id.
    """
    if len(shards) == 1:
        return replica_id(shards[0], replica)
    return f"storage-node-{'-'.join(str(s) for s in shards)}-r{replica}"


class StorageNode(Service):
    role = "storage"

    def __init__(self, settings: StorageNodeSettings) -> None:
        super().__init__(settings)
        self.cfg = settings
        self.shards = list(settings.shards)
        self.replica = settings.replica
        self.node_id = settings.node_id or default_node_id(self.shards, settings.replica)
        self.partitions = [data_partition(i) for i in range(settings.data_partitions)]
        config = ReplicaConfig(partitions=tuple(self.partitions), apply_delay_ms=settings.apply_delay_ms,
                               snapshot_every_ops=settings.snapshot_every_ops,
                               snapshot_every_s=settings.snapshot_every_s, head_poll_ms=settings.head_poll_ms)
        # A halted partition of any replica takes the node's readiness with it.
        self.replicas = {s: ShardReplica(s, settings.replica, replica_dir(settings.data_dir, s), config,
                                         on_halt=lambda _partition, _err: self.set_ready(False))
                         for s in self.shards}
        self._journal: JournalClient | None = None

    # ---- used by the servicer ---------------------------------------------------------------
    @property
    def is_ready(self) -> bool:
        return self.state is ServiceState.READY

    def replica_for(self, shard: int | None) -> ShardReplica:
        """The hosted replica a request is for (``None``: the request named no shard).

        Raises:
            InvalidRequest: no shard named, and the node hosts several.
            ShardNotHosted: the node does not host ``shard`` (503: try another replica).
        """
        hosted = ", ".join(str(s) for s in self.shards)
        if shard is None:
            if len(self.shards) == 1:
                return self.replicas[self.shards[0]]
            raise InvalidRequest(f"storage node {self.node_id} hosts shards {hosted}; the request must "
                                 f"name one (field shard)", details={"hosted_shards": self.shards})
        found = self.replicas.get(shard)
        if found is None:
            raise ShardNotHosted(f"shard {shard} is not hosted by storage node {self.node_id}; it hosts "
                                 f"shards {hosted}", details={"shard": shard, "hosted_shards": self.shards})
        return found

    # ---- Service hooks -------------------------------------------------------------------
    def register(self, server: grpc.aio.Server) -> None:
        storage_pb2_grpc.add_StorageNodeServiceServicer_to_server(StorageNodeServicer(self), server)

    def health_payload(self) -> dict[str, Any]:
        return status_payload(self)

    async def on_start(self) -> None:
        await asyncio.to_thread(migrate_single_shard_dir, Path(self.cfg.data_dir), self.shards)
        for replica in self.replicas.values():
            await replica.open()
        self._journal = JournalClient(self.cfg.journal_address)
        for replica in self.replicas.values():
            replica.start(self._journal, self.spawn)
        self.spawn(self._catch_up(), "catch-up")
        if self.settings.meta_address:
            self.spawn(register_with_meta(self, self.settings.meta_address, self.cfg.node_ttl_ms),
                       "meta-registration", forever=True)

    async def _catch_up(self) -> None:
        """Every replica pulls to the journal head as of now; then the node reports ready."""
        await asyncio.gather(*(r.catch_up() for r in self.replicas.values()))
        halted = {r.replica_id: r.halts.reasons() for r in self.replicas.values() if r.halts.any}
        if halted:
            log.critical("shard replicas are halted; the node stays not ready", extra={"halted": halted})
            return
        self.set_ready()

    async def on_stop(self) -> None:
        for replica in self.replicas.values():
            await replica.close()
        if self._journal is not None:
            await self._journal.close()


def parse_settings(argv: list[str] | None = None) -> StorageNodeSettings:
    """Settings from flags, environment and TOML; ``--shards`` takes ``0,2`` or ``0 2`` (or repeats)."""
    parser = argparse.ArgumentParser(description=StorageNodeSettings.__doc__, conflict_handler="resolve")
    add_settings_arguments(parser, StorageNodeSettings)
    parser.add_argument("--shards", dest="shards", type=str, action="extend", nargs="+", default=None,
                        help="shards hosted (of every collection): 0,2 or 0 2")
    return settings_from_namespace(StorageNodeSettings, parser.parse_args(argv), section="storage")


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    setup_logging("storage", settings.log_level)
    if settings.index_threads:
        # Measured (docs/storage-node.md): with OpenMP's default of one thread per
        # core, HNSW inserts of apply-sized batches on a busy 2-core host ran 10x
        # slower than single-threaded (threads spin against each other and the
        # other processes); applies and searches already run in parallel threads.
        faiss.omp_set_num_threads(settings.index_threads)
    log.info("starting storage node", extra={"shards": settings.shards, "replica": settings.replica,
                                             "pid": os.getpid()})
    try:
        run_service(StorageNode(settings))
    except LayoutError as exc:
        # The data dir does not fit the hosted shards: say so plainly (no traceback) and exit.
        log.critical("refusing to start: %s", exc)
        print(f"storage node: refusing to start: {exc}", file=sys.stderr)
        sys.exit(2)
