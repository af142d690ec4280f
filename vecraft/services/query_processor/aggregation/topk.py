"""Top-k merge across shards.

Every shard answers with its own top-k, scores "higher is better" for every
metric (cosine similarity, inner product, negated squared L2), so the global
top-k is the k best of the union. Ties are broken by id so the same data gives
the same answer whatever order the shards answered in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vecraft.shared.rpc.v1 import search_pb2


@dataclass(frozen=True, slots=True)
class ShardHits:
    """One shard's answer: parallel ids, scores (float32, higher better) and metadata JSON."""

    ids: list[str]
    scores: np.ndarray
    metadata_json: list[str]
    documents: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.scores) == len(self.metadata_json)):
            raise ValueError("ids, scores and metadata_json must have the same length")
        if self.documents and len(self.documents) != len(self.ids):
            raise ValueError("documents must be empty or as long as ids")


def hits_from_proto(results: Sequence[search_pb2.ScoredVector]) -> ShardHits:
    """A shard answer received over gRPC (storage node) as :class:`ShardHits`."""
    return ShardHits(ids=[r.id for r in results],
                     scores=np.fromiter((r.score for r in results), dtype=np.float32, count=len(results)),
                     metadata_json=[r.metadata_json for r in results],
                     documents=[r.document for r in results])


def merge_top_k(parts: Sequence[ShardHits], k: int) -> list[search_pb2.ScoredVector]:
    """The ``k`` best hits of all ``parts``, best first, as wire messages.

    Contract: scores are compared as float32; equal scores order by id
    ascending. ``k <= 0`` yields an empty list. Non-finite scores (a NaN from a
    degenerate vector) rank last rather than poisoning the order.
    """
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
    ranked = np.where(np.isfinite(scores), scores, np.float32(-np.inf))
    # np.lexsort sorts by the last key first: score descending, then id ascending.
    order = np.lexsort((np.asarray(ids, dtype=object), -ranked))[:k]
    return [search_pb2.ScoredVector(id=ids[i], score=float(scores[i]), metadata_json=metadata[i],
                                    document=documents[i])
            for i in order]
