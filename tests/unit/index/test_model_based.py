"""Random interleavings of upsert and delete keep a CollectionIndex equal to a dict model."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecraft.shared.index import CollectionIndex
from vecraft.shared.model.filters import parse_filter

pytestmark = pytest.mark.unit

DIM = 6
_ids = st.sampled_from([f"k{i}" for i in range(24)])
_upsert = st.tuples(st.just("upsert"), st.lists(_ids, min_size=1, max_size=8),
                    st.integers(0, 2**31 - 1))
_delete = st.tuples(st.just("delete"), st.lists(_ids, min_size=1, max_size=6), st.just(0))
_ops = st.lists(st.one_of(_upsert, _delete), min_size=1, max_size=25)


def _check(index: CollectionIndex, model: dict[str, tuple[np.ndarray, dict[str, Any]]],
           query: np.ndarray) -> None:
    assert sorted(index.ids()) == sorted(model) and len(index) == len(model)
    for id_ in model:
        assert id_ in index and index.metadata(id_) == model[id_][1]
    scores = {i: -float(np.sum((v - query) ** 2)) for i, (v, _) in model.items()}
    expected = sorted(model, key=lambda i: -scores[i])
    found, got = index.search(query, 100)
    assert found == expected
    np.testing.assert_allclose(got, [scores[i] for i in expected], rtol=1e-4, atol=1e-4)
    odd = [i for i in expected if model[i][1]["odd"]]
    assert index.search(query, 100, parse_filter({"odd": True}))[0] == odd


@pytest.mark.parametrize("hnsw", [False, True], ids=["exact", "hnsw"])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=_ops)
def test_interleavings_match_a_dict_model(ops: list[tuple[str, list[str], int]], hnsw: bool) -> None:
    index = CollectionIndex(dim=DIM, metric="l2", ef_search=200)
    if hnsw:
        index.exact_search_max_candidates = 0
    model: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
    query = np.full(DIM, 0.25, dtype=np.float32)
    for step, (kind, ids, seed) in enumerate(ops):
        if kind == "upsert":
            # The step in the seed: no two upserts share vectors (no ties to order).
            vectors = np.random.default_rng([seed, step]).standard_normal((len(ids), DIM)).astype(np.float32)
            metas = [{"odd": (seed + row) % 2 == 1, "row": row} for row in range(len(ids))]
            index.upsert(ids, vectors, metas)
            for row, id_ in enumerate(ids):
                model[id_] = (vectors[row], metas[row])
        else:
            present = {i for i in ids if i in model}
            assert index.delete(ids) == len(present)
            for id_ in present:
                del model[id_]
        _check(index, model, query)
