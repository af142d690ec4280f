"""Top-k merge across shards."""

from __future__ import annotations

import numpy as np
import pytest

from vecraft.services.query_processor.topk import ShardHits, merge_top_k
from vecraft.shared.rpc.v1 import search_pb2

pytestmark = pytest.mark.unit


def hits(ids: list[str], scores: list[float]) -> ShardHits:
    return ShardHits(ids, np.asarray(scores, dtype=np.float32), [f'{{"id": "{i}"}}' for i in ids])


def test_merges_best_first_with_id_tiebreak() -> None:
    merged = merge_top_k([hits(["b", "d"], [0.9, 0.1]), hits(["a", "c"], [0.9, 0.5])], 3)
    assert [(r.id, round(r.score, 3)) for r in merged] == [("a", 0.9), ("b", 0.9), ("c", 0.5)]
    assert merged[0].metadata_json == '{"id": "a"}'


def test_negative_scores_of_l2_and_nan_rank_last() -> None:
    merged = merge_top_k([hits(["x", "y"], [-4.0, float("nan")]), hits(["z"], [-1.0])], 10)
    assert [r.id for r in merged] == ["z", "x", "y"]


def test_empty_and_k_zero() -> None:
    assert merge_top_k([], 5) == []
    assert merge_top_k([hits(["a"], [1.0])], 0) == []
    assert merge_top_k([hits([], [])], 5) == []


def test_order_of_shards_does_not_matter() -> None:
    rng = np.random.default_rng(0)
    parts = [hits([f"s{s}-{i}" for i in range(20)], list(rng.random(20))) for s in range(4)]
    a = merge_top_k(parts, 15)
    b = merge_top_k(list(reversed(parts)), 15)
    assert [r.id for r in a] == [r.id for r in b]
    assert all(isinstance(r, search_pb2.ScoredVector) for r in a)


def test_ragged_input_is_refused() -> None:
    with pytest.raises(ValueError):
        ShardHits(["a"], np.zeros(2, np.float32), [""])
