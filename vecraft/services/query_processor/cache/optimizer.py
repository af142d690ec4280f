"""Index optimization of the processor's cache: rebuild a cached collection whose graph is mostly tombstones.

The cache applies the same deletes as the storage nodes, so its indexes collect
the same tombstones. :func:`cache_optimizer` watches every collection of every
served shard of the current cache (the cache object is replaced on placement
changes and rebuilds: it is asked anew at each check) and rebuilds one past
``--optimize-threshold`` in the background (:mod:`vecraft.shared.index.optimizer`),
with metrics ``vecraft_query_index_*`` (docs/indexes.md).
"""

from __future__ import annotations

from collections.abc import Callable

from vecraft.services.query_processor import metrics
from vecraft.services.query_processor.cache.shard_cache import ShardCache
from vecraft.shared.common.errors import NotFound
from vecraft.shared.index.collection import CollectionIndex
from vecraft.shared.index.optimizer import (
    CHECK_INTERVAL_S,
    MIN_DEAD_ROWS,
    IndexOptimizer,
    Label,
    OptimizeMetrics,
    OptimizePolicy,
)
from vecraft.shared.model.routing import DEFAULT_TENANT


def cached_indexes(cache: ShardCache | None) -> list[tuple[Label, CollectionIndex]]:
    """((shard, "tenant/name"), index) of every collection of every shard ``cache`` serves."""
    if cache is None:
        return []
    out: list[tuple[Label, CollectionIndex]] = []
    for shard, state in cache.states.items():
        for schema in state.collections():
            try:
                index = state.index(schema.tenant, schema.name)
            except NotFound:  # dropped since the list was read
                continue
            out.append(((str(shard), f"{schema.tenant or DEFAULT_TENANT}/{schema.name}"), index))
    return out


def cache_optimizer(cache: Callable[[], ShardCache | None], threshold: float, *,
                    min_dead_rows: int = MIN_DEAD_ROWS,
                    interval_s: float = CHECK_INTERVAL_S) -> IndexOptimizer:
    """The optimizer of the cache ``cache()`` returns now (``threshold`` 0: only the gauges)."""
    return IndexOptimizer(lambda: cached_indexes(cache()), OptimizePolicy(threshold, min_dead_rows),
                          OptimizeMetrics(metrics.INDEX_DEAD_FRACTION, metrics.INDEX_REBUILDS,
                                          metrics.INDEX_REBUILD_DROPPED, metrics.INDEX_REBUILD_SECONDS),
                          interval_s=interval_s, name="query-cache")
