"""Prometheus metrics of the query processor (``vecraft_query_*``).

``sync_pulls`` counts the journal pulls actually made, ``sync_waiters`` the
requests that needed a sync; single flight makes the first smaller than the
second under concurrent strong reads, and the ratio is the coalescing win.
"""

from __future__ import annotations

from vecraft.shared.common.metrics import counter, gauge, latency_histogram

AREA = "query"

REQUESTS = counter(AREA, "requests", "Search requests by consistency level and outcome "
                   "(ok or the error wire name)", ["level", "outcome"])
REQUEST_SECONDS = latency_histogram(AREA, "request", "Search latency by consistency level", ["level"])
CACHE_HITS = counter(AREA, "cache_hits", "Searches answered from this processor's cache "
                     "(no storage node)", ["level"])
STORAGE_FALLBACKS = counter(AREA, "storage_fallbacks", "Searches sent to a storage node because the "
                            "cache was not warm yet", ["level"])
SYNC_PULLS = counter(AREA, "sync_pulls", "Pull-before-read pulls made from the journal", ["partition"])
SYNC_WAITERS = counter(AREA, "sync_waiters", "Requests that needed a pull-before-read (each either "
                       "started a pull or waited on one in flight)", ["partition"])
SYNC_ENTRIES = counter(AREA, "sync_entries", "Journal entries applied by pull-before-read", ["partition"])
SYNC_SECONDS = latency_histogram(AREA, "sync", "Duration of one pull-before-read (pull + apply)",
                                 ["partition"])
SYNC_FAILURES = counter(AREA, "sync_failures", "Pull-before-read attempts that failed (journal "
                        "unavailable or deadline)", ["partition", "reason"])
TAIL_ENTRIES = counter(AREA, "tail_entries", "Journal entries applied from the (delayed) push stream",
                       ["partition"])
APPLY_SECONDS = latency_histogram(AREA, "apply", "Duration of applying one batch of entries to the "
                                  "cache", ["partition"])
APPLIED_OFFSET = gauge(AREA, "applied_offset", "ops", "Offset the cache has applied", ["partition"])
HEAD_OFFSET = gauge(AREA, "head_offset", "ops", "Latest journal head the processor has heard of",
                    ["partition"])
STALENESS_MS = gauge(AREA, "cache_staleness", "ms", "Upper bound of the cache's staleness: now minus "
                     "the time the cache last confirmed it had the journal head", ["partition"])
WARMUP_SECONDS = gauge(AREA, "warmup", "seconds", "Duration of the start-up warm-up pull")
CACHE_REBUILDS = counter(AREA, "cache_rebuilds", "Caches rebuilt from scratch because the journal diverged "
                         "from what they applied", ["partition"])
SERVED_SHARDS = gauge(AREA, "served_shards", "count", "Shards this processor serves now (warm caches)")
LOADING_SHARDS = gauge(AREA, "loading_shards", "count", "Shards assigned to this processor that are being "
                       "loaded from the journal (not served yet)")
PLACEMENT_VERSION = gauge(AREA, "placement_map", "version", "Version of the placement map whose assignment "
                          "this processor serves (0: no map, the --shard flags)")
SHARD_LOADS = counter(AREA, "shard_loads", "Changes of the served shard set that loaded shards, by outcome "
                      "(ok, failed: retried)", ["outcome"])
SHARD_LOAD_SECONDS = latency_histogram(AREA, "shard_load", "Duration of loading the shards a placement "
                                       "change adds (warm-up from the journal, then catching up with the "
                                       "cache)")
# Index optimization of the cache (vecraft.shared.index.optimizer, cache/optimizer.py).
INDEX_REBUILDS = counter(AREA, "index_rebuilds", "Rebuilds of a cached collection's index without its "
                         "tombstones, per shard and collection", ["shard", "collection"])
INDEX_REBUILD_DROPPED = counter(AREA, "index_rebuild_dropped_rows", "Dead graph nodes removed by index "
                                "rebuilds of the cache, per shard and collection", ["shard", "collection"])
INDEX_REBUILD_SECONDS = latency_histogram(AREA, "index_rebuild", "Duration of one index rebuild of the cache "
                                          "(searches and applies go on meanwhile)",
                                          buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800))
INDEX_DEAD_FRACTION = gauge(AREA, "index_dead", "ratio", "Share of a cached collection's graph nodes that "
                            "are tombstones (rebuilt past --optimize-threshold)", ["shard", "collection"])
