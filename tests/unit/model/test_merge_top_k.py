"""The one top-k merge across shards (query processors) and query nodes (the gateway)."""

from __future__ import annotations

import numpy as np
import pytest

from vecraft.shared.model.ranking import merge_top_k
from vecraft.shared.model.records import ShardHits

pytestmark = pytest.mark.unit


def hits(ids: list[str], scores: list[float], documents: list[str] | None = None) -> ShardHits:
    return ShardHits(ids, np.asarray(scores, dtype=np.float32), [f'{{"id": "{i}"}}' for i in ids],
                     documents or [])


def test_merges_best_first_with_id_tiebreak() -> None:
    merged = merge_top_k([hits(["b", "d"], [0.9, 0.1]), hits(["a", "c"], [0.9, 0.5])], 3)
    assert [(i, round(float(s), 3)) for i, s in zip(merged.ids, merged.scores, strict=True)] == \
        [("a", 0.9), ("b", 0.9), ("c", 0.5)]
    assert merged.metadata_json[0] == '{"id": "a"}' and merged.documents == []


def test_negative_scores_of_l2_and_nan_rank_last() -> None:
    merged = merge_top_k([hits(["x", "y"], [-4.0, float("nan")]), hits(["z"], [-1.0])], 10)
    assert merged.ids == ["z", "x", "y"]


def test_empty_and_k_zero() -> None:
    assert merge_top_k([], 5).ids == []
    assert merge_top_k([hits(["a"], [1.0])], 0).ids == []
    assert merge_top_k([hits([], [])], 5).ids == []


def test_order_of_shards_does_not_matter() -> None:
    rng = np.random.default_rng(0)
    parts = [hits([f"s{s}-{i}" for i in range(20)], list(rng.random(20))) for s in range(4)]
    assert merge_top_k(parts, 15).ids == merge_top_k(list(reversed(parts)), 15).ids


def test_scores_clipped_to_the_range_tie_on_the_bound_and_order_by_id() -> None:
    merged = merge_top_k([hits(["b"], [1.0000001]), hits(["a"], [1.0])], 2, score_range=(-1.0, 1.0))
    assert merged.ids == ["a", "b"] and merged.scores.tolist() == [1.0, 1.0]


def test_documents_follow_their_hits_and_a_part_without_them_gets_empty_ones() -> None:
    merged = merge_top_k([hits(["a", "b"], [0.1, 0.9], ["doc a", "doc b"]), hits(["c"], [0.5])], 3)
    assert merged.ids == ["b", "c", "a"] and merged.documents == ["doc b", "", "doc a"]


def test_ragged_input_is_refused() -> None:
    with pytest.raises(ValueError):
        ShardHits(["a"], np.zeros(2, np.float32), [""])
