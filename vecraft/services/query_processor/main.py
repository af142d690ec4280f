"""Query processor process: a journal-fed cache of the shards it serves, consistency-aware search.

``python -m vecraft.services.query_processor --shard S [--shard S2 ...] --journal-address H:P
--data-partitions P [--apply-delay-ms N] [--sync-timeout-ms 5000] [--meta-address H:P]
[--node-id ID] [--no-cache]``

Which shards: with a meta manager (``--meta-address``) that holds a placement
map, the shards whose ``ShardAssignment.query_nodes`` list this node's id,
followed at runtime; with no map, or no meta manager, the ``--shard`` flags.
The last map seen stays in force while the meta manager is unreachable.

Start-up: the gRPC server answers at once (from the storage nodes the meta
manager's registry lists, while the cache is cold); the processor waits up to ``--placement-wait-ms``
for the placement map, then the cache pulls every partition to the journal
head as of then (warm-up), follows each partition's delayed push stream and
polls the journal heads for its staleness bound, and only then reports ready.
A restarted processor is therefore ready only with a current cache.

A placement change (one at a time; the newest map wins over one not applied
yet): the added shards are loaded into a separate cache from the journal while
the current one serves what it has, then join it once they applied as far as
it has, and the removed shards are dropped, in one step. Meanwhile the added
shards are registered as ``loading_shards`` and a search naming one is 503.
See docs/query-processor.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc

from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.services.query_processor import metrics
from vecraft.services.query_processor.cache import ShardCache, cache_followers, warm_up
from vecraft.services.query_processor.cache.optimizer import cache_optimizer
from vecraft.services.query_processor.membership import PlacementWatch
from vecraft.services.query_processor.settings import QueryProcessorSettings, parse_settings
from vecraft.services.query_processor.vector_search.fallback import StorageFallback
from vecraft.services.query_processor.vector_search.searcher import VectorSearcher
from vecraft.services.query_processor.vector_search.servicer import QueryProcessorServicer
from vecraft.shared.common.errors import DeadlineExceeded, Unavailable, VecraftError
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.metrics import timed
from vecraft.shared.common.service import Service, ServiceState, run_service
from vecraft.shared.index import ShardState
from vecraft.shared.model.routing import data_partition
from vecraft.shared.replica import PartitionHalted, StalenessSnapshot
from vecraft.shared.replica.follower import HeadWatch, PartitionFollower
from vecraft.shared.rpc.v1 import meta_pb2, query_pb2, query_pb2_grpc

log = logging.getLogger(__name__)

#: Pause before a placement change that failed (journal unreachable, loader halted) is tried again.
CHANGE_RETRY_S = 2.0
#: Pause between catch-up attempts of a loader while the journal does not answer.
CATCH_UP_RETRY_S = 0.5


class QueryProcessor(Service):
    role = "query"

    def __init__(self, settings: QueryProcessorSettings) -> None:
        super().__init__(settings)
        if not settings.cache and not settings.meta_address:
            raise ValueError("--no-cache needs --meta-address: without a cache, the storage nodes the meta "
                             "manager's registry lists answer every search")
        self.cfg = settings
        self.partitions = [data_partition(i) for i in range(settings.data_partitions)]
        #: The cache of the served shards (one ShardState per shard; None until start-up picks them).
        self.cache: ShardCache | None = None
        self.searcher: VectorSearcher | None = None
        #: The partition followers of the current cache (replaced when it is replaced).
        self.followers: dict[str, PartitionFollower] = {}
        #: The start-up warm-up is done (the shards of the cache are then served from it).
        self.warm = False
        #: The cache is built from the journal (False with --no-cache, or once the journal was found
        #: trimmed below what the cache needs: the storage nodes then answer, see _on_halt).
        self.journal_fed = settings.cache
        #: Shards a placement change is loading (served once loaded).
        self.loading: list[int] = []
        self._journal: JournalClient | None = None
        self._fallback: StorageFallback | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._meta: MetaClient | None = None
        self._placement: PlacementWatch | None = None
        #: Set when the registered shards change: the registration loop registers again at once.
        self._registration_changed = asyncio.Event()
        #: Serializes what replaces or reshapes the cache: start-up, placement changes, rebuilds.
        self._changes = asyncio.Lock()
        self._started = asyncio.Event()
        # The push tails and head watch of the current cache.
        self._follow_tasks: list[asyncio.Task[Any]] = []
        self._rebuild: asyncio.Task[Any] | None = None

    @property
    def is_ready(self) -> bool:
        return self.state is ServiceState.READY

    async def search_in_process(self, request: query_pb2.QuerySearchRequest,
                                timeout_s: float | None) -> query_pb2.QuerySearchResponse:
        """``QueryProcessorService.Search``: over gRPC, and directly from a gateway in this process
        (standalone mode, :mod:`vecraft.shared.common.in_process`). ``timeout_s``: the caller's deadline."""
        if self.searcher is None:
            raise Unavailable("query processor is starting", retry_after_ms=200)
        return await self.searcher.search(request, timeout_s)

    @property
    def shards(self) -> list[int]:
        """The shards of the cache (served once warm)."""
        return list(self.cache.shards) if self.cache is not None else []

    @property
    def serving(self) -> list[int]:
        """The shards served from the cache now (registered as ``shards``)."""
        return self.shards if self.warm else []

    @property
    def loading_shards(self) -> list[int]:
        """The shards assigned here and still loading (registered as ``loading_shards``)."""
        return sorted(set(self.loading) | (set() if self.warm else set(self.shards)))

    @property
    def replica_id(self) -> str:
        """Identity of this processor's push streams at the journal: from the node id alone, so it
        is the same whatever shards the node serves and across restarts (the journal tracks caches
        per ``(partition, replica_id)``, for its Stats only)."""
        return f"{self.node_id}/cache"

    def freshness(self) -> list[StalenessSnapshot]:
        return [f.freshness.snapshot(pending_hlc=f.oldest_pending_hlc()) for f in self.followers.values()]

    # ---- Service hooks -------------------------------------------------------------------
    def register(self, server: grpc.aio.Server) -> None:
        query_pb2_grpc.add_QueryProcessorServiceServicer_to_server(QueryProcessorServicer(self), server)

    def health_payload(self) -> dict[str, Any]:
        return {
            "shards": self.serving,
            "loading_shards": self.loading_shards,
            "placement_version": self._placement.version if self._placement is not None else 0,
            # None: no meta manager configured; False: the Watch stream is broken (last map kept).
            "placement_watch": self._placement.connected if self._placement is not None else None,
            "warm": self.warm,
            "halted": self.cache.halts.reasons() if self.cache is not None else {},
            "partitions": {s.partition: {"applied_offset": s.applied_offset, "head_offset": s.head_offset,
                                         "staleness_ms": s.staleness_ms} for s in self.freshness()},
        }

    async def on_start(self) -> None:
        threads = self.cfg.index_threads or os.cpu_count() or 2
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="query-index")
        self._journal = JournalClient(self.cfg.journal_address)
        # Shorter than the client's default: a search deadline (5 s) must end in
        # a 503 naming the journal, not in a 504 spent retrying.
        self._journal.unavailable_retry_s = self.cfg.journal_retry_ms / 1000.0
        if self.settings.meta_address:
            self._meta = MetaClient(self.settings.meta_address, timeout_s=5.0)
            # Storage nodes found in the registry answer while the cache is cold (or instead of it).
            self._fallback = StorageFallback(self._meta)
            self._placement = PlacementWatch(self._meta, self.node_id)
            self.spawn(self._placement.run(), "placement-watch", forever=True)
            self.spawn(self._follow_placement(), "placement", forever=True)
        self.spawn(self._start_up(), "warm-up")
        self.spawn(cache_optimizer(lambda: self.cache, self.cfg.optimize_threshold).run(), "optimize-indexes",
                   forever=True)

    # ---- the cache -----------------------------------------------------------------------
    def _new_cache(self, shards: list[int], *,
                   loader: bool = False) -> tuple[ShardCache, dict[str, PartitionFollower]]:
        """A cache of ``shards`` and its followers (none when it has no shard: nothing to follow).

        ``loader``: a cache that only pulls (warm-up, catch-up) for shards about to join the
        served cache: it does not set the processor's metrics nor take its readiness.
        """
        assert self._executor is not None
        cache = ShardCache(shards, self.partitions, self._executor, publish_metrics=not loader)
        if not loader:
            cache.halts.on_halt = functools.partial(self._on_halt, cache)
        return cache, self._followers_of(cache, loader=loader)

    def _followers_of(self, cache: ShardCache, *, loader: bool = False) -> dict[str, PartitionFollower]:
        assert self._journal is not None
        if not cache.shards:
            return {}
        if loader:
            return cache_followers(self._journal, cache, replica_id=f"{self.node_id}/load", observe=False)
        return cache_followers(self._journal, cache, replica_id=self.replica_id,
                               delay_ms=self.cfg.apply_delay_ms)

    def _on_halt(self, cache: ShardCache, partition: str, err: VecraftError) -> None:
        """A halted partition takes readiness with it; a diverged journal rebuilds the cache."""
        if cache is not self.cache:
            return  # a cache already replaced
        if err.details.get("cause") == "trimmed" and self._fallback is not None:
            if self.journal_fed:
                self.journal_fed = False
                self.spawn(self._serve_from_storage(), "serve-from-storage")
            return
        self.set_ready(False)
        if err.details.get("cause") == "diverged" and (self._rebuild is None or self._rebuild.done()):
            metrics.CACHE_REBUILDS.labels(partition).inc()
            self._rebuild = self.spawn(self._rebuild_cache(partition), f"rebuild:{partition}")

    async def _serve_from_storage(self) -> None:
        """The journal no longer holds what the cache needs (the compactor trimmed it while this process
        was away): stop following it and answer every search through the storage nodes, as --no-cache."""
        async with self._changes:
            assert self._executor is not None and self.cache is not None
            log.warning("the journal was trimmed below what this query processor's cache needs; the storage "
                        "nodes answer its searches from now on (as with --no-cache)",
                        extra={"shards": self.cache.shards, "halted": self.cache.halts.reasons()})
            await self._install(ShardCache(self.cache.shards, self.partitions, self._executor), {})
            self.warm = True
            self._shards_changed()
            self._refresh_ready()

    def _refresh_ready(self) -> None:
        """Ready once warm, unless a partition of the served cache is halted."""
        if not self.warm or self.cache is None:
            return
        if self.cache.halts.any:
            log.critical("partitions of the cache are halted; not ready",
                         extra={"halted": self.cache.halts.reasons()})
            self.set_ready(False)
        else:
            self.set_ready()

    def _shards_changed(self) -> None:
        """The served or loading shards changed: metrics, and register again at once."""
        metrics.SERVED_SHARDS.set(len(self.serving))
        metrics.LOADING_SHARDS.set(len(self.loading_shards))
        self._registration_changed.set()

    async def _install(self, cache: ShardCache, followers: dict[str, PartitionFollower]) -> None:
        """Serve ``cache`` instead of the current one: stop the old followers, start the new ones."""
        tasks, self._follow_tasks = self._follow_tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.cache, self.followers = cache, followers
        if self.searcher is not None:
            self.searcher.cache, self.searcher.followers = cache, followers
        if not followers:  # nothing served, nothing followed: the gauges would only go stale
            for gauge in (metrics.APPLIED_OFFSET, metrics.HEAD_OFFSET, metrics.STALENESS_MS):
                gauge.clear()
        await self._follow()

    async def _rebuild_cache(self, partition: str) -> None:
        """Build a new cache from the journal while the old one serves (503 for ``partition``), then swap."""
        async with self._changes:
            log.critical("journal diverged from the cache; rebuilding the cache from scratch",
                         extra={"partition": partition})
            start = time.perf_counter()
            cache, followers = self._new_cache(self.shards)
            entries = await warm_up(followers)
            await self._install(cache, followers)
            self._refresh_ready()
            log.info("cache rebuilt", extra={"entries": entries, "shards": cache.shards,
                                             "seconds": round(time.perf_counter() - start, 3)})

    async def _follow(self) -> None:
        """Start the push tails and the head watch of the current followers (none: nothing to do)."""
        assert self._journal is not None
        if not self.followers:
            return
        for partition, follower in self.followers.items():
            self._follow_tasks.append(self.spawn(follower.run(), f"tail:{partition}", forever=True))
        watch = HeadWatch(self._journal, self.followers, interval_s=self.cfg.head_poll_ms / 1000.0)
        await watch.poll_once()
        self._follow_tasks.append(self.spawn(watch.run(), "head-watch", forever=True))

    async def _start_up(self) -> None:
        """Pick the shards (the map's assignment if it comes in time, else the flags) and warm up."""
        shards = sorted(set(self.cfg.shard))
        if self._placement is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._placement.settled.wait(), self.cfg.placement_wait_ms / 1000.0)
            assigned = self._placement.assigned()
            if assigned is not None:
                shards = assigned
                metrics.PLACEMENT_VERSION.set(self._placement.version)
        async with self._changes:
            if self.cfg.cache:
                self.cache, self.followers = self._new_cache(shards)
            else:
                # Nothing to follow: the cache only names the served shards, the storage nodes answer.
                assert self._executor is not None
                self.cache, self.followers = ShardCache(shards, self.partitions, self._executor), {}
            self.searcher = VectorSearcher(self.cache, self.followers,
                                           sync_timeout_ms=self.cfg.sync_timeout_ms,
                                           warm=lambda: self.warm and self.journal_fed,
                                           fallback=self._fallback,
                                           loading=lambda: self.loading_shards)
            self._shards_changed()
            if self._meta is not None:
                # Registered once the shards are known: never a declaration the map then corrects.
                self.spawn(self._meta.keep_registered(self._node_info, self.cfg.node_ttl_ms,
                                                      changed=self._registration_changed),
                           "meta-registration", forever=True)
            start = time.perf_counter()
            entries = await warm_up(self.followers)
            await self._follow()
            elapsed = time.perf_counter() - start
            metrics.WARMUP_SECONDS.set(elapsed)
            self.warm = True
            self._shards_changed()
            self._refresh_ready()
            applied = {p: self.cache.applied(p)[0] for p in self.partitions}
            log.info("cache warm", extra={"shards": shards, "entries": entries, "seconds": round(elapsed, 3),
                                          "applied": applied, "ready": self.ready})
        self._started.set()

    # ---- following the placement map ------------------------------------------------------
    async def _follow_placement(self) -> None:
        """Serve the assignment of each new placement map, one change at a time (runs forever)."""
        assert self._placement is not None
        await self._started.wait()
        while True:
            await self._placement.changed.wait()
            self._placement.changed.clear()
            wanted = self._placement.assigned()
            if wanted is None:
                continue
            try:
                await self._serve(wanted, self._placement.version)
            except VecraftError as err:  # the journal, or a loader that halted: the next try may do
                metrics.SHARD_LOADS.labels("failed").inc()
                log.warning("placement change failed; trying again in %.1fs: %s", CHANGE_RETRY_S, err.message,
                            extra={"version": self._placement.version, "shards": wanted})
                await asyncio.sleep(CHANGE_RETRY_S)
                self._placement.changed.set()

    async def _serve(self, wanted: list[int], version: int) -> None:
        """Serve exactly ``wanted``: load the added shards while the cache serves, then swap.

        Raises:
            Unavailable: the loader halted (its partition could not be applied), or the journal
                could not be read (PartitionHalted is an Unavailable too).
        """
        async with self._changes:
            assert self.cache is not None
            current = set(self.cache.shards)
            add = sorted(set(wanted) - current)
            remove = sorted(current - set(wanted))
            if not add and not remove:
                metrics.PLACEMENT_VERSION.set(version)
                return
            log.info("placement map version %d: loading shards %s, dropping %s", version, add, remove,
                     extra={"version": version, "add": add, "remove": remove})
            start = time.perf_counter()
            if not self.journal_fed:
                # No copy to load: the storage nodes answer for the new shards at once.
                self.cache.replace_shards({s: ShardState(s, keep_documents=False) for s in add}, remove)
            elif add:
                self.loading = add
                self._shards_changed()
                try:
                    with timed(metrics.SHARD_LOAD_SECONDS):
                        await self._load(add, remove)
                finally:
                    self.loading = []
                    self._shards_changed()
                metrics.SHARD_LOADS.labels("ok").inc()
            elif not current - set(remove):
                await self._install(*self._new_cache([]))  # nothing left to serve: stop following
            else:
                self.cache.replace_shards({}, remove)
                self._note_follower_shards()
            metrics.PLACEMENT_VERSION.set(version)
            self._shards_changed()
            self._refresh_ready()
            log.info("serving shards %s (placement map version %d)", self.cache.shards, version,
                     extra={"version": version, "seconds": round(time.perf_counter() - start, 3)})

    async def _load(self, add: list[int], remove: list[int]) -> None:
        """Build ``add`` in a loader cache from the journal, then serve it (and stop serving ``remove``)."""
        assert self.cache is not None
        loader, followers = self._new_cache(add, loader=True)
        await warm_up(followers)
        if loader.halts.any:
            raise Unavailable(f"loading shards {add} halted: {loader.halts.reasons()}",
                              details={"shards": add})
        if set(self.cache.shards) - set(remove):
            # Some shards stay: the new states join the cache once they applied as far as it.
            await self._catch_up(loader, followers)
            self.cache.replace_shards(loader.states, remove)  # no await since the check: still true
            self._note_follower_shards()
        else:
            # Nothing stays: the loader becomes the cache, with followers that push-tail it.
            loader.publish_metrics = True
            loader.halts.on_halt = functools.partial(self._on_halt, loader)
            await self._install(loader, self._followers_of(loader))

    async def _catch_up(self, loader: ShardCache, followers: dict[str, PartitionFollower]) -> None:
        """Pull ``loader`` until it has applied every partition as far as the served cache.

        Each pull goes to the journal head (at least what the cache has applied or is applying),
        so a cache whose tail keeps applying is overtaken rather than chased.
        """
        assert self.cache is not None
        while need := self.cache.behind(loader):
            for partition, target in need.items():
                try:
                    await followers[partition].sync(None)
                except PartitionHalted:
                    raise
                except (Unavailable, DeadlineExceeded) as err:
                    log.warning("catch-up of the loaded shards retries: %s", err.message,
                                extra={"partition": partition, "target": target})
                    await asyncio.sleep(CATCH_UP_RETRY_S)

    def _note_follower_shards(self) -> None:
        """The shards the followers name when they (re)subscribe (the journal's Stats show them)."""
        assert self.cache is not None
        for follower in self.followers.values():
            follower.shards = list(self.cache.shards)

    # ---- registration ----------------------------------------------------------------------
    def _node_info(self) -> meta_pb2.NodeInfo:
        return meta_pb2.NodeInfo(node_id=self.node_id, role="query", address=self.grpc_address,
                                 http_address=self.http_address, shards=self.serving,
                                 loading_shards=self.loading_shards, pid=os.getpid(), state="up")

    async def on_stop(self) -> None:
        if self._fallback is not None:
            await self._fallback.close()
        if self._journal is not None:
            await self._journal.close()
        if self._meta is not None:
            await self._meta.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def build(argv: list[str] | None = None) -> QueryProcessor:
    """The query processor of ``argv`` (flags as for ``main``), not started."""
    return QueryProcessor(parse_settings(argv))


def main(argv: list[str] | None = None) -> None:
    service = build(argv)
    setup_logging("query", service.cfg.log_level)
    log.info("starting query processor", extra={"shards": service.cfg.shard, "pid": os.getpid()})
    run_service(service)
