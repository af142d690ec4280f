"""The one ranking of hits: best score first, ties by id, non-finite scores last."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vecraft.services.api_gateway.merge import merge_top_k as gateway_merge
from vecraft.shared.model.ranking import merge_top_k as processor_merge
from vecraft.shared.model.ranking import top_k_order
from vecraft.shared.model.records import ShardHits
from vecraft.shared.rpc.v1 import query_pb2

pytestmark = pytest.mark.unit

scores = st.one_of(st.floats(-10, 10, width=32), st.just(math.nan), st.just(math.inf), st.just(-math.inf))


@given(st.lists(st.tuples(st.sampled_from("abcdefgh"), scores), max_size=20), st.integers(-1, 25))
def test_the_order_is_score_descending_then_id_with_non_finite_scores_last(
        hits: list[tuple[str, float]], k: int) -> None:
    ids = [i for i, _ in hits]
    values = np.array([s for _, s in hits], dtype=np.float32)
    expected = sorted(range(len(hits)),
                      key=lambda n: (-(float(values[n]) if math.isfinite(values[n]) else -math.inf), ids[n]))
    order = top_k_order(ids, values, k)
    assert [(ids[n], -values[n] if math.isfinite(values[n]) else None) for n in order] == \
        [(ids[n], -values[n] if math.isfinite(values[n]) else None) for n in expected[:max(k, 0)]]


def test_the_gateway_and_the_query_processor_rank_alike() -> None:
    ids, values = ["b", "a", "c", "d"], [0.5, 0.5, math.nan, 0.9]
    answer = query_pb2.QuerySearchResponse()
    for i, s in zip(ids, values, strict=True):
        answer.results.add(id=i, score=s)
    shard = ShardHits(ids, np.array(values, dtype=np.float32), [""] * 4)
    assert [h.id for h in gateway_merge([answer], 4, metric="ip")] == ["d", "a", "b", "c"]
    assert processor_merge([shard], 4).ids == ["d", "a", "b", "c"]
