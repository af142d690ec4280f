"""Recall@10 of the default HNSW parameters against brute force, per metric (50K x 128)."""

from __future__ import annotations

import numpy as np
import pytest

from vecraft.bench._datasets import exact_topk
from vecraft.bench.calibrate import clustered_vectors
from vecraft.shared.index import CollectionIndex

pytestmark = [pytest.mark.unit, pytest.mark.slow]

N, DIM, QUERIES, K = 50_000, 128, 200, 10


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return clustered_vectors(N, DIM, clusters=64, queries=QUERIES, seed=42)


@pytest.mark.parametrize("metric", ["cosine", "l2", "ip"])
def test_recall_at_10_with_default_parameters(data: tuple[np.ndarray, np.ndarray], metric: str) -> None:
    vectors, queries = data
    index = CollectionIndex(dim=DIM, metric=metric)  # defaults: M=16, efC=200, ef=64
    index.upsert([str(i) for i in range(N)], vectors, [None] * N)
    truth = exact_topk(vectors, queries, K, metric)
    hits = 0
    for query, expected in zip(queries, truth, strict=True):
        found, scores = index.search(query, K)
        assert len(found) == K and np.all(np.diff(scores) <= 1e-5)
        hits += len({int(i) for i in found} & set(expected.tolist()))
    recall = hits / (QUERIES * K)
    assert recall >= 0.95, f"{metric}: recall@10 {recall:.3f}"
