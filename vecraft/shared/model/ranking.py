"""The one ranking of search hits and the one top-k merge (query processors and the gateway).

Scores are "higher is better" for every metric (cosine similarity, inner product,
negated squared L2), so a global top-k is the k highest scores of the union of
the shards' top-k lists. Equal scores order by id ascending, so the answer does
not depend on which shard answered first. A non-finite score (a NaN from a
degenerate vector) ranks last rather than poisoning the order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vecraft.shared.model.records import ShardHits


def top_k_order(ids: Sequence[str], scores: np.ndarray, k: int) -> list[int]:
    """Indexes of the ``k`` best of ``ids`` / ``scores`` (parallel), best first; none for ``k <= 0``."""
    if k <= 0 or len(ids) == 0:
        return []
    values = np.asarray(scores, dtype=np.float32)
    ranked = np.where(np.isfinite(values), values, np.float32(-np.inf))
    # np.lexsort sorts by the last key first: score descending, then id ascending.
    order: list[int] = np.lexsort((np.asarray(ids, dtype=object), -ranked))[:k].tolist()
    return order


def merge_top_k(parts: Sequence[ShardHits], k: int, *,
                score_range: tuple[float, float] = (-np.inf, np.inf)) -> ShardHits:
    """The ``k`` best hits of all ``parts``, best first, ranked by :func:`top_k_order`.

    Scores are clipped to ``score_range`` before ranking (the gateway clamps to the metric's
    range there, so a score rounded past a bound ties on it and falls back to the id order).
    Documents are kept when every part carries them.
    """
    ids = [i for part in parts for i in part.ids]
    if k <= 0 or not ids:
        return ShardHits(ids=[], scores=np.empty(0, dtype=np.float32), metadata_json=[])
    scores = np.concatenate([np.asarray(part.scores, dtype=np.float32) for part in parts])
    low, high = score_range
    if low > -np.inf or high < np.inf:
        scores = np.clip(scores, low, high)
    metadata = [m for part in parts for m in part.metadata_json]
    documents = [d for part in parts for d in (part.documents or [""] * len(part.ids))]
    order = top_k_order(ids, scores, k)
    return ShardHits(ids=[ids[i] for i in order], scores=scores[order],
                     metadata_json=[metadata[i] for i in order],
                     documents=[documents[i] for i in order] if any(documents) else [])
