"""The one ranking of search hits, used by every top-k merge (query processors and the gateway).

Scores are "higher is better" for every metric (cosine similarity, inner product,
negated squared L2), so a global top-k is the k highest scores of the union of
the shards' top-k lists. Equal scores order by id ascending, so the answer does
not depend on which shard answered first. A non-finite score (a NaN from a
degenerate vector) ranks last rather than poisoning the order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def top_k_order(ids: Sequence[str], scores: np.ndarray, k: int) -> list[int]:
    """Indexes of the ``k`` best of ``ids`` / ``scores`` (parallel), best first; none for ``k <= 0``."""
    if k <= 0 or len(ids) == 0:
        return []
    values = np.asarray(scores, dtype=np.float32)
    ranked = np.where(np.isfinite(values), values, np.float32(-np.inf))
    # np.lexsort sorts by the last key first: score descending, then id ascending.
    order: list[int] = np.lexsort((np.asarray(ids, dtype=object), -ranked))[:k].tolist()
    return order
