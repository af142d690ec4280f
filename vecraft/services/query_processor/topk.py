"""Top-k merge across the shards a query processor searched, ranked by
:func:`~vecraft.shared.model.ranking.top_k_order` (the gateway merges the query
nodes' answers with the same ranking)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vecraft.shared.model.ranking import top_k_order
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
    return [search_pb2.ScoredVector(id=ids[i], score=float(scores[i]), metadata_json=metadata[i],
                                    document=documents[i])
            for i in order]
