"""Synthetic data, exact ground truth and recall of the benchmark harness."""

from __future__ import annotations

import numpy as np
import pytest

from vecraft.bench._datasets import (
    CATEGORIES,
    exact_topk,
    filtered_truth,
    gaussian_mixture,
    outlier_vectors,
    recall_at_k,
)

pytestmark = pytest.mark.unit


def _brute(base: np.ndarray, q: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Per-query reference: full sort of exact scores."""
    out = []
    for v in q:
        if metric == "cosine":
            s = (base @ v) / (np.linalg.norm(base, axis=1) * np.linalg.norm(v))
        elif metric == "ip":
            s = base @ v
        else:
            s = -np.linalg.norm(base - v, axis=1)
        out.append(np.argsort(-s, kind="stable")[:k])
    return np.array(out)


def test_mixture_is_deterministic_and_shaped() -> None:
    a = gaussian_mixture(500, 16, queries=20, clusters=5, seed=7)
    b = gaussian_mixture(500, 16, queries=20, clusters=5, seed=7)
    c = gaussian_mixture(500, 16, queries=20, clusters=5, seed=8)
    assert a.vectors.shape == (500, 16) and a.vectors.dtype == np.float32
    assert a.queries.shape == (20, 16)
    assert np.array_equal(a.vectors, b.vectors) and np.array_equal(a.queries, b.queries)
    assert not np.array_equal(a.vectors, c.vectors)
    assert a.ids(0, 3) == ["v0", "v1", "v2"]
    assert a.metadatas(0, 1)[0].keys() == {"category", "num"}


def test_category_selects_about_a_tenth() -> None:
    data = gaussian_mixture(20_000, 8, queries=1, seed=1)
    share = np.bincount(data.category, minlength=CATEGORIES) / data.n
    assert np.all(np.abs(share - 0.1) < 0.01)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_exact_topk_matches_a_full_sort(metric: str) -> None:
    data = gaussian_mixture(2000, 24, queries=30, clusters=10, metric=metric, seed=3)
    got = exact_topk(data.vectors, data.queries, 10, metric)
    want = _brute(data.vectors, data.queries, 10, metric)
    # Same neighbour sets (ties in float32 may swap equal scores' order).
    assert all(set(g) == set(w) for g, w in zip(got, want, strict=True))


def test_exact_topk_in_many_batches_equals_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    data = gaussian_mixture(1000, 8, queries=50, seed=4)
    whole = exact_topk(data.vectors, data.queries, 5, "l2")
    monkeypatch.setattr("vecraft.bench._datasets._GT_BATCH_CELLS", 3000)  # 3 queries per batch
    assert np.array_equal(exact_topk(data.vectors, data.queries, 5, "l2"), whole)


def test_filtered_truth_only_returns_allowed_rows_and_pads() -> None:
    data = gaussian_mixture(3000, 16, queries=10, seed=5)
    mask = data.category == 3
    got = exact_topk(data.vectors, data.queries, 10, "cosine", mask=mask)
    assert np.all(mask[got])
    want = _brute(data.vectors[mask], data.queries, 10, "cosine")
    rows = np.flatnonzero(mask)
    assert all(set(g) == set(rows[w]) for g, w in zip(got, want, strict=True))
    tiny = np.zeros(data.n, bool)
    tiny[[1, 2]] = True
    padded = exact_topk(data.vectors, data.queries[:1], 4, "cosine", mask=tiny)
    assert sorted(padded[0, :2]) == [1, 2] and list(padded[0, 2:]) == [-1, -1]


def test_outlier_vectors_never_enter_the_top_k() -> None:
    data = gaussian_mixture(5000, 64, queries=100, clusters=50, seed=6)
    truth = exact_topk(data.vectors, data.queries, 10, "cosine")
    extra = outlier_vectors(data, 2000, seed=9)
    both = np.vstack([data.vectors, extra])
    assert np.array_equal(exact_topk(both, data.queries, 10, "cosine"), truth)


def test_recall_counts_overlap_with_the_true_top_k() -> None:
    truth = np.array([[0, 1, 2, 3], [4, 5, -1, -1]])
    assert recall_at_k([["v0", "v1", "v2", "v3"], ["v4", "v5"]], truth) == 1.0
    assert recall_at_k([["v0", "v9", "v2", "v8"], ["v5", "v7"]], truth) == pytest.approx((0.5 + 0.5) / 2)
    assert recall_at_k([["a", "b"], []], truth, ids=["a", "x", "b", "y", "c", "d"]) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        recall_at_k([["v0"]], truth)


def test_filtered_truth_uses_each_querys_category() -> None:
    data = gaussian_mixture(2000, 16, queries=25, seed=10)
    got = filtered_truth(data, 5)
    for i, row in enumerate(got):
        assert np.all(data.category[row] == i % CATEGORIES)
        want = exact_topk(data.vectors, data.queries[i:i + 1], 5, "cosine",
                          mask=data.category == i % CATEGORIES)
        assert set(row) == set(want[0])
