"""One shard replica hosted by a storage node: shard ``s`` of every collection, fed by journal replay.

A :class:`ShardReplica` owns everything that is per replica: its local state in
``<data-dir>/shard-<s>/`` (record file, location index, index snapshots), its
apply engine, one follower per data partition, the reporter of what it applied
(under its journal replica id, :func:`replica_id`, so the journal's ``ack=all``
accounting counts each hosted replica), its head watch, its halts and its
catch-up, its index optimizer (:mod:`vecraft.shared.index.optimizer`: a
collection whose graph is mostly tombstones is rebuilt in the background) and
its record compactor (:mod:`.record_compaction`: the record file rewritten
without its dead blocks, tombstone rows collected once a snapshot covers them).
The process (:mod:`.main`) owns what is shared: the gRPC server, probes, the
journal client, the meta manager registration and which shards are hosted
(:mod:`.hosting`).

Lifecycle: :meth:`open` (recovery from the local files, in a worker thread),
:meth:`start` (background loops, spawned by the process so one that dies takes
the process with it, and the catch-up to the journal head as of now; the
replica is *catching up* until it reached it, then *serving*), then to drop
it: :meth:`leave_journal` (the journal stops counting it for acks at once),
:meth:`drain` (wait for the requests using it), :meth:`stop` (cancel its
loops), :meth:`close` (final snapshot, close the stores; the files stay). A
halted partition makes this replica's reads of it answer 503 and calls
``on_halt`` (the process then reports not ready); the node's other replicas
keep answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vecraft.clients.journal import JournalClient
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
from vecraft.services.storage_node.mmap import (
    STATUS_LIVE,
    CorruptRecord,
    LocationIndex,
    RecordFile,
    RecordView,
)
from vecraft.services.storage_node.record_compaction import CHECK_INTERVAL_S as COMPACT_INTERVAL_S
from vecraft.services.storage_node.record_compaction import (
    DEFAULT_DEAD_FRACTION,
    DEFAULT_MIN_DEAD_BYTES,
    CompactionPolicy,
    RecordCompactor,
)
from vecraft.services.storage_node.scan import ScanOptions, ScanPage, scan
from vecraft.shared.common.errors import InvalidRequest, Unavailable, VecraftError
from vecraft.shared.index.optimizer import (
    CHECK_INTERVAL_S,
    DEFAULT_THRESHOLD,
    MIN_DEAD_ROWS,
    IndexOptimizer,
    OptimizeMetrics,
    OptimizePolicy,
)
from vecraft.shared.replica import PartitionHalted, PartitionHalts

log = logging.getLogger(__name__)

_CATCH_UP_RETRY_S = 0.5
#: How long telling the journal that a replica leaves may take; past it the node goes on without (the
#: journal then stops counting the replica --replica-liveness-ms after its streams closed, as for a
#: killed node).
LEAVE_TIMEOUT_S = 1.0

#: How the process starts a background loop: ``spawn(coro, name, forever=...)`` (Service.spawn).
Spawn = Callable[..., "asyncio.Task[Any]"]


def replica_id(node_id: str, shard: int) -> str:
    """The journal's name of the replica of ``shard`` on node ``node_id``: ``<node_id>/shard-<s>``.

    Its acks and subscriptions are counted under it. Unique per (shard, node), since node ids are
    unique, whichever nodes the placement map puts a shard on; stable across restarts, since the
    node id is (``--node-id``, or derived from the flags); and it names the replica's directory.
    """
    return f"{node_id}/shard-{shard}"


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    """What a replica needs of the node's settings."""

    partitions: tuple[str, ...]
    apply_delay_ms: int = 0
    snapshot_every_ops: int = 50_000
    snapshot_every_s: float = 300.0
    head_poll_ms: int = 100
    #: Rebuild a collection's index once this share of its graph is tombstones (0 = never).
    optimize_threshold: float = DEFAULT_THRESHOLD
    optimize_min_dead_rows: int = MIN_DEAD_ROWS
    optimize_interval_s: float = CHECK_INTERVAL_S
    #: Compact the record file once this share of it is dead blocks (0 = never) ...
    compact_dead_fraction: float = DEFAULT_DEAD_FRACTION
    #: ... and at least this many bytes are.
    compact_min_dead_bytes: int = DEFAULT_MIN_DEAD_BYTES
    compact_interval_s: float = COMPACT_INTERVAL_S


class ShardReplica:
    """Replica ``replica`` of shard ``shard``: local state, apply engine, followers, reporter, halts."""

    def __init__(self, shard: int, replica: int, data_dir: Path, config: ReplicaConfig, *, node_id: str,
                 on_halt: Callable[[str, VecraftError], None] | None = None) -> None:
        self.shard = shard
        self.replica = replica
        self.replica_id = replica_id(node_id, shard)
        self.data_dir = data_dir
        self.config = config
        self.partitions = list(config.partitions)
        self.followers: dict[str, PartitionFollower] = {}
        self.engine: ApplyEngine | None = None
        #: True once the catch-up after :meth:`start` reached the journal head (then it serves).
        self.caught_up = False
        self._local: LocalState | None = None
        self._on_halt = on_halt
        self.halts = PartitionHalts(on_halt=self._halted)
        self._tasks: list[asyncio.Task[Any]] = []
        self._journal: JournalClient | None = None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        #: Requests in flight per epoch (:meth:`quiesce` starts a new epoch and waits for the older).
        self._epoch = 0
        self._users: Counter[int] = Counter()
        self._epoch_ended = asyncio.Event()

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
    def state(self) -> str:
        """``"serving"`` once caught up, ``"catching-up"`` before."""
        return "serving" if self.caught_up else "catching-up"

    def lag(self) -> tuple[int, int]:
        """(entries behind the journal heads heard of, summed over partitions; worst staleness ms)."""
        ops = sum(max(0, f.head() - f.applied_offset) for f in self.followers.values())
        staleness = max((f.staleness_ms() for f in self.followers.values()), default=0)
        return ops, staleness

    @contextlib.contextmanager
    def use(self) -> Iterator[ShardReplica]:
        """Mark a request using this replica's stores for its duration (:meth:`drain` and
        :meth:`quiesce` wait for it)."""
        self._in_flight += 1
        self._idle.clear()
        epoch = self._epoch
        self._users[epoch] += 1
        try:
            yield self
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
            self._users[epoch] -= 1
            if not self._users[epoch]:
                del self._users[epoch]
                self._epoch_ended.set()

    async def quiesce(self) -> None:
        """Return once every request that uses this replica now has ended (later ones do not count).

        After a record file compaction: such a request may have looked up a location in the old
        file, which stays mapped until then. New requests keep coming meanwhile; they only see the
        new file's locations.
        """
        mark = self._epoch
        self._epoch += 1
        while any(epoch <= mark for epoch in self._users):
            self._epoch_ended.clear()
            await self._epoch_ended.wait()

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

    def read_live(self, collection_id: str, ids: Sequence[str], *,
                  skip_corrupt: bool = False) -> dict[str, RecordView]:
        """The live records of ``ids`` from the record file (absent and deleted ids left out).

        Raises CorruptRecord for a record whose bytes fail their check, unless ``skip_corrupt``
        (then it is left out too).
        """
        out: dict[str, RecordView] = {}
        for rid, loc in self.locations.lookup(collection_id, ids).items():
            if loc.status != STATUS_LIVE:
                continue
            try:
                out[rid] = self.records.read(loc.file_offset, loc.length)
            except CorruptRecord:
                if not skip_corrupt:
                    raise
        return out

    def scan(self, collection_id: str, after: str, limit: int, options: ScanOptions) -> ScanPage:
        """One page of the collection's live records in id order after ``after`` (:func:`.scan.scan`)."""
        return scan(self.locations, self.records, collection_id, after, limit, options)

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

    def start(self, journal: JournalClient, spawn: Spawn,
              on_caught_up: Callable[[ShardReplica], None] | None = None) -> None:
        """Build the engine and followers, spawn this replica's loops and its catch-up (after :meth:`open`).

        ``on_caught_up(self)`` is called once the catch-up reached the journal head as of now.
        """
        state = self.local
        self._journal = journal
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
        # The replica keeps its tasks so that dropping it (stop) cancels them; a cancelled task is
        # no failure of the process.
        tag = f"shard-{self.shard}"
        self._tasks.append(spawn(reporter.run(), f"report-applied:{tag}", forever=True))
        for partition, follower in self.followers.items():
            self._tasks.append(spawn(follower.run(), f"follow:{tag}:{partition}", forever=True))
        watch = HeadWatch(journal, self.followers, interval_s=self.config.head_poll_ms / 1000.0)
        self._tasks.append(spawn(watch.run(), f"head-watch:{tag}", forever=True))
        tag_shard = str(self.shard)
        # Rebuilds run beside the applies (which go on meanwhile); stop() stops one in progress.
        optimizer = IndexOptimizer(
            lambda: [((tag_shard, c.label), c.index) for c in state.registry.collections()],
            OptimizePolicy(self.config.optimize_threshold, self.config.optimize_min_dead_rows),
            OptimizeMetrics(metrics.INDEX_DEAD_FRACTION, metrics.INDEX_REBUILDS,
                            metrics.INDEX_REBUILD_DROPPED, metrics.INDEX_REBUILD_LATENCY),
            interval_s=self.config.optimize_interval_s, name=tag)
        self._tasks.append(spawn(optimizer.run(), f"optimize-indexes:{tag}", forever=True))
        compactor = RecordCompactor(
            self.shard, state.records, state.locations, state.snapshots, engine,
            CompactionPolicy(self.config.compact_dead_fraction, self.config.compact_min_dead_bytes),
            self.quiesce, interval_s=self.config.compact_interval_s)
        self._tasks.append(spawn(compactor.run(), f"compact-records:{tag}", forever=True))
        self._tasks.append(spawn(self._catch_up(on_caught_up), f"catch-up:{tag}"))

    async def _catch_up(self, on_caught_up: Callable[[ShardReplica], None] | None) -> None:
        await self.catch_up()
        if on_caught_up is not None:
            on_caught_up(self)

    async def catch_up(self) -> None:
        """Pull every partition to the journal head as of now (each retried until done, or halted)."""
        await asyncio.gather(*(self._catch_up_one(p, f) for p, f in self.followers.items()))
        self.caught_up = True
        log.info("caught up", extra={"shard": self.shard, "replica_id": self.replica_id,
                                     "applied": self.applied()})

    async def _catch_up_one(self, partition: str, follower: PartitionFollower) -> None:
        while not self.halts.halted(partition):
            try:
                # A journal that lost or re-used what the disk holds halts the partition here.
                await follower.verify_history()
                await follower.sync(None)
                return
            except PartitionHalted:
                return  # its reads answer 503 with the reason; the other partitions go on
            except Exception as exc:  # noqa: BLE001 - any other failure is retried until caught up
                log.warning("catch-up failed; retrying", extra={"shard": self.shard, "partition": partition,
                                                                "error": str(exc)})
                await asyncio.sleep(_CATCH_UP_RETRY_S)

    async def leave_journal(self) -> None:
        """Tell the journal this replica stops consuming its partitions on purpose (after :meth:`start`).

        The journal forgets it at once: ``ack=one|all`` writes stop waiting for it and no longer
        count it, rather than for ``--replica-liveness-ms`` after its streams close. Its loops may
        still run (a drop announces this before it waits for requests): what they report meanwhile
        is ignored, and a stream that reconnects joins again, so the caller leaves once more after
        :meth:`stop`. Best effort, each partition within :data:`LEAVE_TIMEOUT_S`; a failure is logged.
        """
        journal = self._journal
        if journal is None:
            return

        async def leave(partition: str) -> None:
            await journal.leave(partition, self.replica_id, timeout_s=LEAVE_TIMEOUT_S)

        # Any failure is only logged: neither a drop nor a shutdown may fail for want of it.
        results = await asyncio.gather(*(leave(p) for p in self.partitions), return_exceptions=True)
        failed = {p: repr(r) for p, r in zip(self.partitions, results, strict=True)
                  if isinstance(r, BaseException)}
        if failed:
            log.warning("could not tell the journal that shard %d's replica leaves; it stops counting "
                        "for acks once its liveness runs out", self.shard,
                        extra={"shard": self.shard, "replica_id": self.replica_id, "errors": failed})

    async def drain(self) -> None:
        """Wait until no request uses this replica (the caller stopped routing new ones to it)."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Cancel this replica's loops (followers, reporter, head watch, catch-up) and wait for them."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Write a final snapshot (so the next open replays little) and close the stores.

        Its files stay where they are. An apply still in flight (a pull no request waits for any
        more) finishes first; one started afterwards is refused without halting anything.
        """
        if self._local is None:
            return
        collections = [c.label for c in self._local.registry.collections()]
        if self.engine is not None:
            await self.engine.close()
        self._local.close()
        self._local = None
        metrics.forget_shard(self.shard, self.partitions, collections)

