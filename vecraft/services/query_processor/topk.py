"""Top-k merge across the shards a query processor searched, ranked by
:func:`~vecraft.shared.model.ranking.top_k_order` (the gateway merges the query
nodes' answers with the same ranking)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from vecraft.shared.model.ranking import top_k_order
from vecraft.shared.model.records import ShardHits
from vecraft.shared.rpc.convert import hits_to_proto
from vecraft.shared.rpc.v1 import search_pb2

__all__ = ["ShardHits", "merge_top_k"]


def merge_top_k(parts: Sequence[ShardHits], k: int) -> list[search_pb2.ScoredVector]:
    """The ``k`` best hits of all ``parts``, best first, as wire messages (ranked as
    :func:`~vecraft.shared.model.ranking.top_k_order` says)."""
    if k <= 0:
        return []
    ids: list[str] = []
    metadata: list[str] = []
    documents: list[str] = []
    for part in parts:
        ids.extend(part.ids)
        metadata.extend(part.metadata_json)
        documents.extend(part.documents or [""] * len(part.ids))
    if not ids:
        return []
    scores = np.concatenate([np.asarray(p.scores, dtype=np.float32) for p in parts])
    order = top_k_order(ids, scores, k)
    return hits_to_proto(ShardHits(ids=[ids[i] for i in order], scores=scores[order],
                                   metadata_json=[metadata[i] for i in order],
                                   documents=[documents[i] for i in order]))
