"""One shard replica hosted by a storage node: shard ``s`` of every collection, fed by journal replay.

A :class:`ShardReplica` owns everything that is per replica: its local state in
``<data-dir>/shard-<s>/`` (record file, location index, index snapshots), its
apply engine, one follower per data partition, the reporter of what it applied
(under its journal replica id ``storage-<s>-r<r>``, so the journal's ``ack=all``
accounting counts each hosted replica), its head watch, its halts and its
start-up catch-up. The process (:mod:`.main`) owns what is shared: the gRPC
server, probes, the journal client and the meta manager registration.

Lifecycle: :meth:`open` (start-up recovery, in a worker thread), :meth:`start`
(background loops, spawned by the process so one that dies takes the process
with it), :meth:`catch_up` (pull to the journal head as of now), :meth:`close`
(final snapshot, close the stores). A halted partition makes this replica's
reads of it answer 503 and calls ``on_halt`` (the process then reports not
ready); the node's other replicas keep answering.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from vecraft.shared.common.errors import InvalidRequest, Unavailable, VecraftError
from vecraft.shared.replica import PartitionHalts

log = logging.getLogger(__name__)

_CATCH_UP_RETRY_S = 0.5

#: How the process starts a background loop: ``spawn(coro, name, forever=...)`` (Service.spawn).
Spawn = Callable[..., "asyncio.Task[Any]"]


def replica_id(shard: int, replica: int) -> str:
    """The journal's name of a storage replica (its acks and subscriptions are counted under it)."""
    return f"storage-{shard}-r{replica}"


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """What a replica needs of the node's settings."""

    partitions: tuple[str, ...]
    apply_delay_ms: int = 0
    snapshot_every_ops: int = 50_000
    snapshot_every_s: float = 300.0
    head_poll_ms: int = 100


class ShardReplica:
    """Replica ``replica`` of shard ``shard``: local state, apply engine, followers, reporter, halts."""

    def __init__(self, shard: int, replica: int, data_dir: Path, config: ReplicaConfig, *,
                 on_halt: Callable[[str, VecraftError], None] | None = None) -> None:
        self.shard = shard
        self.replica = replica
        self.replica_id = replica_id(shard, replica)
        self.data_dir = data_dir
        self.config = config
        self.partitions = list(config.partitions)
        self.followers: dict[str, PartitionFollower] = {}
        self.engine: ApplyEngine | None = None
        #: True once the start-up catch-up reached the journal head.
        self.caught_up = False
        self._local: LocalState | None = None
        self._on_halt = on_halt
        self.halts = PartitionHalts(on_halt=self._halted)

    def _halted(self, partition: str, err: VecraftError) -> None:
        log.critical("shard %d replica halted %s", self.shard, partition,
                     extra={"shard": self.shard, "replica_id": self.replica_id, "partition": partition})
        if self._on_halt is not None:
            self._on_halt(partition, err)

    # ---- state read by the servicer -------------------------------------------------------
    @property
    def ready(self) -> bool:
        """Caught up since start and no partition halted."""
        return self.caught_up and not self.halts.any

    @property
    def local(self) -> LocalState:
        if self._local is None:
            raise Unavailable(f"shard {self.shard} of this storage node is starting")
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

    def applied(self) -> dict[str, int]:
        """Applied offset per followed partition."""
        return {p: f.applied_offset for p, f in self.followers.items()}

    # ---- lifecycle ------------------------------------------------------------------------
    async def open(self) -> None:
        """Open, check and rebuild the local state (:mod:`.journal_replay.recovery`)."""
        self._local = await asyncio.to_thread(open_local_state, self.data_dir, self.shard)
        shard = str(self.shard)
        for partition, (offset, _hlc) in self._local.applied.items():
            metrics.APPLIED_OFFSET.labels(shard, partition).set(offset)
        for coll in self._local.registry.collections():
            metrics.INDEX_RECORDS.labels(shard, coll.label).set(len(coll.index))

    def start(self, journal: JournalClient, spawn: Spawn) -> None:
        """Build the engine and followers and spawn this replica's loops (after :meth:`open`)."""
        state = self.local
        reporter = AppliedReporter(journal, self.replica_id)
        applier = Applier(self.shard, state.records, state.locations, state.registry, state.applied)
        engine = ApplyEngine(applier, state.registry, state.snapshots, on_applied=reporter.applied,
                             snapshot_every_ops=self.config.snapshot_every_ops,
                             snapshot_every_s=self.config.snapshot_every_s, halts=self.halts)
        self.engine = engine
        for partition in self.partitions:
            self.followers[partition] = storage_follower(
                partition, engine, journal, replica_id=self.replica_id, shard=self.shard,
                apply_delay_ms=self.config.apply_delay_ms)
        # The loops run until shutdown (forever=True: one that returns fails the process like one
        # that raises); the catch-up (catch_up) is a step that ends once the replica is current.
        tag = f"shard-{self.shard}"
        spawn(reporter.run(), f"report-applied:{tag}", forever=True)
        for partition, follower in self.followers.items():
            spawn(follower.run(), f"follow:{tag}:{partition}", forever=True)
        watch = HeadWatch(journal, self.followers, interval_s=self.config.head_poll_ms / 1000.0)
        spawn(watch.run(), f"head-watch:{tag}", forever=True)

    async def catch_up(self) -> None:
        """Pull every partition that is not halted to the journal head as of now (retried until done)."""
        while True:
            try:
                await asyncio.gather(*(self._catch_up_one(f) for p, f in self.followers.items()
                                       if not self.halts.halted(p)))
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure is retried until caught up
                log.warning("catch-up failed; retrying", extra={"shard": self.shard, "error": str(exc)})
                await asyncio.sleep(_CATCH_UP_RETRY_S)
        self.caught_up = True
        log.info("caught up", extra={"shard": self.shard, "applied": self.applied()})

    @staticmethod
    async def _catch_up_one(follower: PartitionFollower) -> None:
        # A journal that lost or re-used what the disk holds halts the partition here.
        await follower.verify_history()
        await follower.sync(None)

    async def close(self) -> None:
        """Write a final snapshot (so the next start replays little) and close the stores."""
        if self._local is None:
            return
        if self.engine is not None:
            await self.engine.wait_snapshot()
            await self.engine.snapshot()
        self._local.close()
        self._local = None

