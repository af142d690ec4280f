"""Query processor process: a journal-fed cache of one or more shards, consistency-aware search.

``python -m vecraft.services.query_processor --shard S [--shard S2 ...] --journal-address H:P
--data-partitions P [--apply-delay-ms N] [--sync-timeout-ms 5000] [--storage-addresses A ...]
[--meta-address H:P]``

Start-up: the gRPC server answers at once (from storage nodes, when given,
while the cache is cold); the cache pulls every partition to the journal head
as of start (warm-up), then follows each partition's delayed push stream and
polls the journal heads for its staleness bound, and only then reports ready.
A restarted processor is therefore ready only with a current cache.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
from pydantic import Field

from vecraft.services.journal_service.client import JournalClient
from vecraft.services.query_processor import metrics
from vecraft.services.query_processor.cache import ShardCache, cache_followers, warm_up
from vecraft.services.query_processor.membership import keep_registered
from vecraft.services.query_processor.vector_search.fallback import StorageFallback
from vecraft.services.query_processor.vector_search.searcher import VectorSearcher
from vecraft.services.query_processor.vector_search.servicer import QueryProcessorServicer
from vecraft.shared.common.config import ServiceSettings, add_settings_arguments, settings_from_namespace
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.service import Service, ServiceState, run_service
from vecraft.shared.model.routing import data_partition
from vecraft.shared.replica import StalenessSnapshot
from vecraft.shared.replica.follower import HeadWatch, PartitionFollower
from vecraft.shared.rpc.v1 import meta_pb2, query_pb2_grpc

log = logging.getLogger(__name__)


class QueryProcessorSettings(ServiceSettings):
    """Query processor settings (flags, VECRAFT_* environment, [query] in the TOML file)."""

    shard: list[int] = Field([0], description="shard(s) served; repeat the flag or list several")
    journal_address: str = Field("127.0.0.1:7100", description="journal service gRPC address")
    storage_addresses: list[str] = Field([], description="storage replicas of the served shards, asked "
                                                          "while the cache is warming up")
    data_partitions: int = Field(1, ge=1, description="number of journal data partitions")
    apply_delay_ms: int = Field(0, ge=0, description="test knob: delay the push stream (cache lag); "
                                                      "pull-before-read is never delayed")
    sync_timeout_ms: int = Field(5000, ge=1, description="deadline of a search whose request sets none")
    head_poll_ms: int = Field(100, ge=10, description="interval of journal head polls (staleness bound)")
    journal_retry_ms: int = Field(1000, ge=0, description="how long a journal call rides out an unreachable "
                                                          "journal before the search fails with 503")
    index_threads: int = Field(0, ge=0, description="threads for index applies and searches (0 = CPUs)")
    node_ttl_ms: int = Field(10_000, ge=1000, description="lease of the meta manager registration")


class QueryProcessor(Service):
    role = "query"

    def __init__(self, settings: QueryProcessorSettings) -> None:
        super().__init__(settings)
        self.cfg = settings
        self.shards = sorted(set(settings.shard))
        self.partitions = [data_partition(i) for i in range(settings.data_partitions)]
        self.cache: ShardCache | None = None
        self.searcher: VectorSearcher | None = None
        #: The partition followers of the current cache (replaced when it is rebuilt).
        self.followers: dict[str, PartitionFollower] = {}
        self.warm = False
        self._journal: JournalClient | None = None
        self._fallback: StorageFallback | None = None
        self._executor: ThreadPoolExecutor | None = None
        # The push tails and head watch of the current cache.
        self._follow_tasks: list[asyncio.Task[Any]] = []
        self._rebuild: asyncio.Task[Any] | None = None

    @property
    def is_ready(self) -> bool:
        return self.state is ServiceState.READY

    @property
    def replica_id(self) -> str:
        """Identity of this processor's push streams at the journal."""
        return f"query-{'.'.join(map(str, self.shards))}-{self.grpc_port}"

    def freshness(self) -> list[StalenessSnapshot]:
        return [f.freshness.snapshot(pending_hlc=f.oldest_pending_hlc()) for f in self.followers.values()]

    # ---- Service hooks -------------------------------------------------------------------
    def register(self, server: grpc.aio.Server) -> None:
        query_pb2_grpc.add_QueryProcessorServiceServicer_to_server(QueryProcessorServicer(self), server)

    def health_payload(self) -> dict[str, Any]:
        return {
            "shards": self.shards,
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
        self.cache, self.followers = self._new_cache()
        if self.cfg.storage_addresses:
            self._fallback = StorageFallback(self.cfg.storage_addresses)
        self.searcher = VectorSearcher(self.cache, self.followers,
                                       sync_timeout_ms=self.cfg.sync_timeout_ms,
                                       warm=lambda: self.warm, fallback=self._fallback)
        if self.settings.meta_address:
            self.spawn(keep_registered(self.settings.meta_address, self._node_info, self.cfg.node_ttl_ms),
                       "meta-registration", forever=True)
        self.spawn(self._warm_up(), "warm-up")

    def _new_cache(self) -> tuple[ShardCache, dict[str, PartitionFollower]]:
        assert self._executor is not None and self._journal is not None
        cache = ShardCache(self.shards, self.partitions, self._executor)
        cache.halts.on_halt = self._on_halt
        return cache, cache_followers(self._journal, cache, replica_id=self.replica_id,
                                      delay_ms=self.cfg.apply_delay_ms)

    def _on_halt(self, partition: str, err: VecraftError) -> None:
        """A halted partition takes readiness with it; a diverged journal rebuilds the cache."""
        self.set_ready(False)
        if err.details.get("cause") == "diverged" and (self._rebuild is None or self._rebuild.done()):
            metrics.CACHE_REBUILDS.labels(partition).inc()
            self._rebuild = self.spawn(self._rebuild_cache(partition), f"rebuild:{partition}")

    async def _rebuild_cache(self, partition: str) -> None:
        """Build a new cache from the journal while the old one serves (503 for ``partition``), then swap."""
        assert self._journal is not None and self.searcher is not None
        log.critical("journal diverged from the cache; rebuilding the cache from scratch",
                     extra={"partition": partition})
        start = time.perf_counter()
        cache, followers = self._new_cache()
        entries = await warm_up(followers)
        tasks, self._follow_tasks = self._follow_tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.cache, self.followers = cache, followers
        self.searcher.cache, self.searcher.followers = cache, followers
        await self._follow()
        if not cache.halts.any:
            self.set_ready()
        log.info("cache rebuilt; ready", extra={"entries": entries,
                                                "seconds": round(time.perf_counter() - start, 3)})

    async def _follow(self) -> None:
        """Start the push tails and the head watch of the current followers."""
        assert self._journal is not None
        for partition, follower in self.followers.items():
            self._follow_tasks.append(self.spawn(follower.run(), f"tail:{partition}", forever=True))
        watch = HeadWatch(self._journal, self.followers, interval_s=self.cfg.head_poll_ms / 1000.0)
        await watch.poll_once()
        self._follow_tasks.append(self.spawn(watch.run(), "head-watch", forever=True))

    async def _warm_up(self) -> None:
        assert self._journal is not None and self.cache is not None
        start = time.perf_counter()
        entries = await warm_up(self.followers)
        await self._follow()
        elapsed = time.perf_counter() - start
        metrics.WARMUP_SECONDS.set(elapsed)
        self.warm = True
        if self.cache.halts.any:
            log.critical("cache warm but partitions are halted; not ready",
                         extra={"halted": self.cache.halts.reasons()})
        else:
            self.set_ready()
        applied = {p: self.cache.applied(p)[0] for p in self.partitions}
        log.info("cache warm; ready",
                 extra={"entries": entries, "seconds": round(elapsed, 3), "applied": applied})

    def _node_info(self) -> meta_pb2.NodeInfo:
        return meta_pb2.NodeInfo(node_id=self.node_id, role="query", address=self.grpc_address,
                                 http_address=self.http_address, shards=self.shards, pid=os.getpid(),
                                 state="up")

    async def on_stop(self) -> None:
        if self._fallback is not None:
            await self._fallback.close()
        if self._journal is not None:
            await self._journal.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


def parse_settings(argv: list[str] | None = None) -> QueryProcessorSettings:
    """Settings from flags, environment and TOML; ``--shard`` may repeat (``--shard 0 --shard 2``)."""
    parser = argparse.ArgumentParser(description=QueryProcessorSettings.__doc__, conflict_handler="resolve")
    add_settings_arguments(parser, QueryProcessorSettings)
    parser.add_argument("--shard", dest="shard", type=int, action="extend", nargs="+", default=None,
                        help="shard(s) served; repeat the flag or list several")
    return settings_from_namespace(QueryProcessorSettings, parser.parse_args(argv), section="query")


def main(argv: list[str] | None = None) -> None:
    settings = parse_settings(argv)
    setup_logging("query", settings.log_level)
    log.info("starting query processor", extra={"shards": settings.shard, "pid": os.getpid()})
    run_service(QueryProcessor(settings))
