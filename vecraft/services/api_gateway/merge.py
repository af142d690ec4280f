"""Merging per-shard search answers: global top-k and one combined consistency report.

The global top-k is :func:`~vecraft.shared.model.ranking.merge_top_k`, the merge
the query processors use for their shards (higher scores first, ties by id,
non-finite scores last).

Scores are clamped to the metric's documented range (:data:`SCORE_RANGE`)
here, where results leave the system: float32 rounding can put a vector's
cosine similarity with itself at 1.0000001, or a squared L2 distance of zero
a hair below zero.

Consistency is combined conservatively, so the report is true of every
result: the level achieved is the weakest any shard achieved, staleness the
largest, index version the smallest; a cache hit only if every shard was
served from cache; a sync if any shard synced.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vecraft.services.api_gateway.models import SearchHit
from vecraft.shared.model import ranking
from vecraft.shared.model.consistency import ConsistencyLevel, ConsistencyReport
from vecraft.shared.rpc.convert import hits_from_proto, level_from_proto
from vecraft.shared.rpc.v1 import query_pb2, search_pb2

#: The range of each metric's score (docs/http-api.md "Scores"): cosine similarity is in
#: [-1, 1], the negated squared L2 distance at most 0, the inner product unbounded.
SCORE_RANGE: dict[str, tuple[float, float]] = {
    "cosine": (-1.0, 1.0),
    "l2": (-np.inf, 0.0),
    "ip": (-np.inf, np.inf),
}


def merge_top_k(answers: Sequence[query_pb2.QuerySearchResponse], k: int, *, metric: str,
                include_documents: bool = False) -> list[SearchHit]:
    """The ``k`` best hits over every answer, best first, scores clamped to ``metric``'s range.

    Raises:
        KeyError: ``metric`` is not one of :data:`SCORE_RANGE` (schemas are validated
            before a search, so this is a programming error).
    """
    best = ranking.merge_top_k([hits_from_proto(answer.results) for answer in answers], k,
                               score_range=SCORE_RANGE[metric])
    documents = best.documents if include_documents and best.documents else [""] * len(best.ids)
    return [SearchHit(id=i, score=s, metadata_json=m, document=d)
            for i, s, m, d in zip(best.ids, best.scores.tolist(), best.metadata_json, documents, strict=True)]


def combine_consistency(infos: Sequence[search_pb2.ConsistencyInfo], requested: ConsistencyLevel,
                        max_allowed_staleness_ms: int | None) -> ConsistencyReport:
    """One report over the shards' ``consistency_info`` (``infos`` must not be empty).

    A shard that reports a level other than the requested one (it never
    reports a stronger one as a downgrade) lowers the achieved level to the
    weakest reported.
    """
    if not infos:
        raise ValueError("combine_consistency needs at least one shard's consistency_info")
    achieved = requested
    for info in infos:
        level = level_from_proto(info.level_achieved)
        if level != requested and level < achieved:
            achieved = level
    return ConsistencyReport(
        level_requested=requested,
        level_achieved=achieved,
        staleness_ms=max(max(info.staleness_ms for info in infos), 0),
        max_allowed_staleness_ms=max_allowed_staleness_ms,
        index_version=min(info.index_version_used for info in infos),
        cache_hit=all(info.cache_hit for info in infos),
        sync_performed=any(info.sync_performed for info in infos),
    )


def max_allowed_staleness(level: ConsistencyLevel, max_staleness_ms: int) -> int | None:
    """The staleness bound a level promises: its bound, 0 for strong, none for the others."""
    if level is ConsistencyLevel.BOUNDED_STALENESS:
        return max_staleness_ms
    if level is ConsistencyLevel.STRONG:
        return 0
    return None
