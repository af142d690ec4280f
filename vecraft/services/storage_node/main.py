"""Storage node process: hosts shard replicas (shard ``s`` of every collection, per hosted s).

``python -m vecraft.services.storage_node --shards 0,2 --replica R --journal-address H:P
--data-partitions P --data-dir D [--apply-delay-ms N] [--meta-address H:P] [--node-id ID]``

The process owns what its replicas share: the gRPC server and probes, one
journal client, the meta manager registration and placement watch, and which
shards it hosts. Each hosted shard is a :class:`~.replica.ShardReplica` with its
own files in ``<data-dir>/shard-<s>/`` (:mod:`.layout`; a single-shard data dir
of the previous layout is moved there at start), its own apply engine,
followers, applied reporter (journal replica id ``<node-id>/shard-<s>``) and
halts.

Which shards: those of ``--shards``, until a placement map exists in the meta
manager (``--meta-address``); from then on exactly those whose assignment lists
this node's id (:mod:`.placement`, followed by :mod:`.hosting`, one load or drop
at a time). A loaded replica catches up from its files and the journal before
it serves; a dropped one is snapshotted and closed, its files stay.

Start-up: the initial replicas (the map's, if the meta manager answers at once
with one, else the flag's) open and check their local stores, load their index
snapshot and replay the local records after it; their followers start; each
catches up to the journal head as of then by pulling; the node reports ready
once all have. A replica with an absent or empty directory is first seeded
from a copy: the newest base backup's (``--backup-target``), else a live peer
replica's (``CopyShard``); only when neither can be had does it rebuild itself
from the journal, and if the journal was trimmed (it can no longer rebuild the
replica) the replica is not opened: it waits for a seed source (a peer that
serves the shard, a backup), tried again as a failed load is, and the node's
other replicas serve meanwhile. Later loads do not make the node unready; a halted replica
does, while the other hosted replicas keep answering. A replica dropped, or every
replica at a shutdown on purpose, tells the journal it leaves (the journal stops
counting it for acks at once; a killed node's replicas age out over the journal's
``--replica-liveness-ms``). Shutdown writes a final snapshot per replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import grpc

from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient, assigned_shards
from vecraft.services.storage_node import metrics
from vecraft.services.storage_node.hosting import ShardHosting
from vecraft.services.storage_node.layout import LayoutError, migrate_single_shard_dir, replica_dir
from vecraft.services.storage_node.peer_seeding import seed_from_peer
from vecraft.services.storage_node.placement import follow_placement
from vecraft.services.storage_node.registration import register_with_meta
from vecraft.services.storage_node.replica import ReplicaConfig, ShardReplica
from vecraft.services.storage_node.seeding import NoSeedSource, seed_from_backup
from vecraft.services.storage_node.servicer import StorageNodeServicer, status_payload
from vecraft.services.storage_node.settings import StorageNodeSettings, parse_settings
from vecraft.shared.common.errors import InvalidRequest, Trimmed, Unavailable, VecraftError
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.service import Service, ServiceState, run_service
from vecraft.shared.model.routing import data_partition
from vecraft.shared.rpc.v1 import meta_pb2, storage_pb2, storage_pb2_grpc

log = logging.getLogger(__name__)

#: How long the start waits for the meta manager's placement map before hosting ``--shards``.
PLACEMENT_AT_START_S = 2.0
#: A drop waiting this long for a replica's requests says so (and keeps waiting).
DRAIN_WARN_S = 10.0


class ShardNotHosted(Unavailable):
    """A request for a shard this node does not serve: not hosted, or still catching up.

    UNAVAILABLE (503) rather than NOT_FOUND: the shard exists, only not served here
    (now), so a caller with several replicas of the shard tries the next one.
    """


def default_node_id(shards: list[int], replica: int) -> str:
    """Stable across restarts (the journal and the meta manager know the node by it).

    Derived from the flags only: ``storage-<s>-r<R>`` for one shard (what a one-shard node
    always was), ``storage-node-<s1>-<s2>...-r<R>`` for several.
    """
    if len(shards) == 1:
        return f"storage-{shards[0]}-r{replica}"
    return f"storage-node-{'-'.join(str(s) for s in shards)}-r{replica}"


class StorageNode(Service):
    role = "storage"

    def __init__(self, settings: StorageNodeSettings) -> None:
        super().__init__(settings)
        self.cfg = settings
        self.servicer = StorageNodeServicer(self)
        self.replica = settings.replica
        self.node_id = settings.node_id or default_node_id(settings.shards, settings.replica)
        self.partitions = [data_partition(i) for i in range(settings.data_partitions)]
        self._config = ReplicaConfig(partitions=tuple(self.partitions),
                                     apply_delay_ms=settings.apply_delay_ms,
                                     snapshot_every_ops=settings.snapshot_every_ops,
                                     snapshot_every_s=settings.snapshot_every_s,
                                     head_poll_ms=settings.head_poll_ms,
                                     optimize_threshold=settings.optimize_threshold,
                                     compact_dead_fraction=settings.compact_dead_fraction,
                                     compact_min_dead_bytes=settings.compact_min_dead_bytes)
        #: Hosted replicas, catching up or serving, by shard.
        self.replicas: dict[int, ShardReplica] = {s: self._new_replica(s) for s in settings.shards}
        #: The shards hosted from the start: the node is ready once these caught up.
        self._initial = set(self.replicas)
        self._initial_done = False
        #: Dropped replicas not closing yet, and closes under way (shutdown finishes both).
        self._leaving: set[ShardReplica] = set()
        self._closing: set[asyncio.Task[None]] = set()
        self.hosting = ShardHosting(self)
        #: Version of the placement map followed (0: none, the node hosts its --shards).
        self.placement_version = 0
        #: Set whenever what the node declares to the meta manager changed (it registers again).
        self.registration_changed = asyncio.Event()
        self._journal: JournalClient | None = None
        self._meta: MetaClient | None = None

    def _new_replica(self, shard: int) -> ShardReplica:
        # A halted partition of any hosted replica takes the node's readiness with it.
        return ShardReplica(shard, self.replica, replica_dir(Path(self.cfg.data_dir), shard), self._config,
                            node_id=self.node_id, on_halt=lambda _partition, _err: self._update_readiness())

    # ---- used by the servicer and the registration -----------------------------------------
    @property
    def is_ready(self) -> bool:
        return self.state is ServiceState.READY

    def serving_shards(self) -> list[int]:
        """Hosted shards that caught up (they answer reads)."""
        return sorted(s for s, r in self.replicas.items() if r.caught_up)

    def loading_shards(self) -> list[int]:
        """Hosted shards still catching up (reads of them answer 503)."""
        return sorted(s for s, r in self.replicas.items() if not r.caught_up)

    def replica_for(self, shard: int | None) -> ShardReplica:
        """The serving replica a request is for (``None``: the request named no shard).

        Raises:
            InvalidRequest: no shard named, and the node hosts several.
            ShardNotHosted: the node does not host ``shard``, or it is still catching up
                (503: try another replica).
        """
        serving = self.serving_shards()
        hosted = ", ".join(str(s) for s in serving) or "none"
        details: dict[str, Any] = {"hosted_shards": serving, "loading_shards": self.loading_shards()}
        if shard is None:
            if len(self.replicas) != 1:
                if not self.replicas:
                    raise ShardNotHosted(f"storage node {self.node_id} hosts no shard", details=details)
                raise InvalidRequest(f"storage node {self.node_id} hosts shards {hosted}; the request must "
                                     f"name one (field shard)", details=details)
            shard = next(iter(self.replicas))
        found = self.replicas.get(shard)
        if found is None:
            raise ShardNotHosted(f"shard {shard} is not hosted by storage node {self.node_id}; it hosts "
                                 f"shards {hosted}", details={"shard": shard, **details})
        if not found.caught_up:
            raise ShardNotHosted(f"shard {shard} is still catching up on storage node {self.node_id} (not "
                                 f"serving yet); it serves shards {hosted}",
                                 details={"shard": shard, "state": found.state, **details})
        return found

    @contextlib.contextmanager
    def serving(self, shard: int | None) -> Iterator[ShardReplica]:
        """The replica of :meth:`replica_for`, marked in use until the block ends (a drop waits)."""
        with self.replica_for(shard).use() as replica:
            yield replica

    # ---- Service hooks -------------------------------------------------------------------
    def register(self, server: grpc.aio.Server) -> None:
        storage_pb2_grpc.add_StorageNodeServiceServicer_to_server(self.servicer, server)

    async def storage_search_in_process(self, request: storage_pb2.ShardSearchRequest
                                        ) -> storage_pb2.ShardSearchResponse:
        """``Search`` for a query node of this process (standalone mode,
        :mod:`vecraft.shared.common.in_process`)."""
        return await self.servicer.search(request)

    def health_payload(self) -> dict[str, Any]:
        return status_payload(self)

    async def on_start(self) -> None:
        await asyncio.to_thread(migrate_single_shard_dir, Path(self.cfg.data_dir), self.cfg.shards)
        self._journal = JournalClient(self.cfg.journal_address)
        if self.settings.meta_address:
            self._meta = MetaClient(self.settings.meta_address)
            placed = await self._placement_at_start(self._meta)
            if placed is not None and placed != set(self.replicas):
                self.replicas = {s: self._new_replica(s) for s in sorted(placed)}
                self._initial = set(placed)
            # Registered before opening: the shards show as loading meanwhile.
            self.spawn(register_with_meta(self, self._meta, self.cfg.node_ttl_ms, self.registration_changed),
                       "meta-registration", forever=True)
        waiting: dict[int, str] = {}
        for replica in list(self.replicas.values()):
            try:
                await self._seed(replica)
            except NoSeedSource as exc:
                del self.replicas[replica.shard]  # not hosted: loaded once a seed source appears
                waiting[replica.shard] = f"could not load it: {exc.message}"
                continue
            await replica.open()
        for replica in self.replicas.values():
            replica.start(self._journal, self.spawn, self._caught_up)
        self._check_initial()
        if waiting:
            self.hosting.want(set(self.replicas) | set(waiting))
            self.hosting.failed.update(waiting)
        self.spawn(self.hosting.run(), "hosting", forever=True)
        if self._meta is not None:
            self.spawn(follow_placement(self._meta, self._on_placement), "placement-watch", forever=True)

    async def _placement_at_start(self, meta: MetaClient) -> set[int] | None:
        """This node's shards in the current placement map (None: no map, or no answer in time)."""
        try:
            placement = await asyncio.wait_for(meta.get_placement_map(), PLACEMENT_AT_START_S)
        except (VecraftError, TimeoutError) as exc:
            log.info("no placement map at start (%s); hosting --shards until one arrives",
                     getattr(exc, "message", None) or type(exc).__name__)
            return None
        if placement.version == 0:
            return None
        self.placement_version = placement.version
        shards = set(assigned_shards(placement, self.node_id, "storage"))
        log.info("hosting the shards of placement map version %d", placement.version,
                 extra={"shards": sorted(shards), "flag_shards": self.cfg.shards})
        return shards

    def _on_placement(self, placement: meta_pb2.PlacementMap) -> None:
        """A placement map arrived (the watch's snapshot or a new version): host what it assigns."""
        if placement.version == self.placement_version:
            return
        self.placement_version = placement.version
        shards = set(assigned_shards(placement, self.node_id, "storage"))
        log.info("placement map version %d assigns this node shards %s", placement.version,
                 ", ".join(map(str, sorted(shards))) or "none", extra={"shards": sorted(shards)})
        self.hosting.want(shards)

    # ---- hosting (ReplicaHost of .hosting) -------------------------------------------------
    def hosted(self) -> set[int]:
        return set(self.replicas)

    async def load(self, shard: int) -> None:
        """Open the replica of ``shard`` and start it; it serves once its catch-up is done."""
        assert self._journal is not None, "loads start after on_start"
        replica = self._new_replica(shard)
        self.replicas[shard] = replica
        self.registration_changed.set()
        try:
            await self._seed(replica)
            await replica.open()
        except BaseException:
            if self.replicas.get(shard) is replica:
                del self.replicas[shard]
            self.registration_changed.set()
            raise
        replica.start(self._journal, self.spawn, self._caught_up)

    async def _seed(self, replica: ShardReplica) -> None:
        """Start a replica without files from a copy instead of the whole journal: the newest
        backed-up copy first (it costs the cluster nothing, :mod:`.seeding`), else a live peer's
        (:mod:`.peer_seeding`). A failed attempt leaves no files: the journal is the last resort.

        Raises:
            NoSeedSource: no copy could be had and the journal was trimmed, so replaying it
                cannot rebuild the replica (its follower would halt with ``trimmed``).
        """
        if replica.data_dir.exists() and any(replica.data_dir.iterdir()):
            return
        if self.cfg.backup_target and await self._seed_from_backup(replica):
            return
        if await self._seed_from_peer(replica):
            return
        trimmed = await self._trimmed_partitions(replica)
        if trimmed:
            metrics.SEEDS.labels("journal", "trimmed").inc()
            raise NoSeedSource(
                f"shard {replica.shard} has no files, the journal no longer holds the start of "
                f"{', '.join(trimmed)}, and no backup or serving peer replica could seed it; waiting for "
                f"one (tried again every {self.hosting.retry_s:g} s)",
                details={"shard": replica.shard, "trimmed": trimmed})

    async def _trimmed_partitions(self, replica: ShardReplica) -> list[str]:
        """The partitions of ``replica`` whose first entries the journal no longer holds (a journal
        that does not answer now is left to the replica's follower, as for any replica)."""
        assert self._journal is not None
        trimmed = []
        for partition in replica.partitions:
            try:
                await self._journal.pull(partition, 1, 1, timeout_s=PLACEMENT_AT_START_S)
            except Trimmed:
                trimmed.append(partition)
            except VecraftError as exc:
                log.warning("could not ask the journal whether %s was trimmed: %s", partition, exc.message,
                            extra={"shard": replica.shard})
        return trimmed

    async def _seed_from_backup(self, replica: ShardReplica) -> bool:
        """Seed from the newest backed-up copy, if its history is the journal's: the entry it last
        applied must be the journal's entry there."""
        seeded = await asyncio.to_thread(seed_from_backup, self.cfg.backup_target, replica.shard,
                                         replica.data_dir)
        if seeded is None:
            metrics.SEEDS.labels("backup", "failed").inc()
            return False
        assert self._journal is not None
        for partition, (offset, hlc) in seeded.applied.items():
            if not offset:
                continue
            try:
                entries = await self._journal.pull(partition, offset, offset)
            except VecraftError:  # e.g. the journal is shorter: not this copy's history
                entries = []
            if not entries or entries[0].hlc != hlc:
                log.warning("the backed-up copy of shard %d is of another journal history; rebuilding "
                            "from the journal instead", replica.shard,
                            extra={"shard": replica.shard, "backup": seeded.backup, "partition": partition})
                await asyncio.to_thread(shutil.rmtree, replica.data_dir, True)
                metrics.SEEDS.labels("backup", "other_history").inc()
                return False
        metrics.SEEDED_REPLICAS.inc()
        metrics.SEEDS.labels("backup", "seeded").inc()
        return True

    async def _seed_from_peer(self, replica: ShardReplica) -> bool:
        """Seed from a peer serving the shard (as the meta manager's registry lists them)."""
        if self._meta is None:
            return False
        try:
            nodes = await asyncio.wait_for(self._meta.list_nodes("storage"), PLACEMENT_AT_START_S)
        except (VecraftError, TimeoutError) as exc:
            log.info("no peer list for seeding shard %d (%s)", replica.shard,
                     getattr(exc, "message", None) or type(exc).__name__)
            return False
        peers = [(n.node_id, n.address) for n in nodes
                 if n.node_id != self.node_id and n.address and replica.shard in n.shards]
        if not peers:
            metrics.SEEDS.labels("peer", "no_peer").inc()
            return False
        seeded = await seed_from_peer(peers, replica.shard, replica.data_dir)
        metrics.SEEDS.labels("peer", "failed" if seeded is None else "seeded").inc()
        return seeded is not None

    async def drop(self, shard: int) -> None:
        """Leave the journal, stop serving ``shard``, wait for its requests, stop its loops, snapshot and
        close it."""
        replica = self.replicas[shard]
        # First, while it still serves: once the registry stops listing the replica, no write waits
        # for it or counts it (the journal would otherwise for --replica-liveness-ms).
        await replica.leave_journal()
        self.replicas.pop(shard)
        self._leaving.add(replica)
        self.registration_changed.set()
        self._check_initial()
        self._update_readiness()
        while True:
            try:
                await asyncio.wait_for(replica.drain(), DRAIN_WARN_S)
                break
            except TimeoutError:
                log.warning("dropping shard %d: still waiting for its requests to finish", shard)
        await replica.stop()
        # Again now that its streams are closed: one that reconnected meanwhile joined again.
        await replica.leave_journal()
        self._leaving.discard(replica)
        # Shielded: a shutdown meanwhile lets the close finish (on_stop waits for it).
        closing = asyncio.create_task(replica.close(), name=f"{self.role}:close:shard-{shard}")
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)
        await asyncio.shield(closing)
        log.info("dropped shard %d; its files stay in %s", shard, replica.data_dir.name,
                 extra={"shard": shard, "replica_id": replica.replica_id})

    # ---- readiness -----------------------------------------------------------------------
    def _caught_up(self, replica: ShardReplica) -> None:
        if self.replicas.get(replica.shard) is not replica:
            return  # dropped meanwhile
        self.registration_changed.set()
        self._check_initial()
        self._update_readiness()

    def _check_initial(self) -> None:
        """Once every initially hosted replica (still hosted) caught up, readiness follows halts only."""
        if self._initial_done:
            return
        if all(r.caught_up for s, r in self.replicas.items() if s in self._initial):
            self._initial_done = True
            halted = {r.replica_id: r.halts.reasons() for r in self.replicas.values() if r.halts.any}
            if halted:
                log.critical("shard replicas are halted; the node stays not ready", extra={"halted": halted})
            self._update_readiness()

    def _update_readiness(self) -> None:
        """Ready: the initial replicas caught up and no hosted replica is halted."""
        if self._initial_done:
            self.set_ready(not any(r.halts.any for r in self.replicas.values()))

    async def on_stop(self) -> None:
        await asyncio.gather(*self._closing, return_exceptions=True)
        replicas = [*self._leaving, *self.replicas.values()]
        for replica in replicas:
            await replica.stop()
        # Stopping on purpose: the journal forgets every replica now (a killed node's age out over
        # --replica-liveness-ms), before the final snapshots.
        await asyncio.gather(*(replica.leave_journal() for replica in replicas))
        for replica in replicas:
            await replica.close()
        if self._journal is not None:
            await self._journal.close()
        if self._meta is not None:
            await self._meta.close()


def build(argv: list[str] | None = None) -> StorageNode:
    """The storage node of ``argv`` (flags as for ``main``), not started."""
    settings = parse_settings(argv)
    if settings.index_threads:
        # Measured (docs/storage-node.md): with OpenMP's default of one thread per
        # core, HNSW inserts of apply-sized batches on a busy 2-core host ran 10x
        # slower than single-threaded (threads spin against each other and the
        # other processes); applies and searches already run in parallel threads.
        faiss.omp_set_num_threads(settings.index_threads)
    return StorageNode(settings)


def main(argv: list[str] | None = None) -> None:
    service = build(argv)
    settings = service.cfg
    setup_logging("storage", settings.log_level)
    log.info("starting storage node", extra={"shards": settings.shards, "replica": settings.replica,
                                             "meta_address": settings.meta_address, "pid": os.getpid()})
    try:
        run_service(service)
    except LayoutError as exc:
        # The data dir does not fit the hosted shards: say so plainly (no traceback) and exit.
        log.critical("refusing to start: %s", exc)
        print(f"storage node: refusing to start: {exc}", file=sys.stderr)
        sys.exit(2)
