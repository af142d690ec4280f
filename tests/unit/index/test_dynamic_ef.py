"""The default ef of a search follows its k (hnsw.ef_search 0, the default); a set ef_search wins."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.unit.index.journal_builders import ddl, entry, schema
from vecraft.services.storage_node.indexes.registry import CollectionRegistry
from vecraft.shared.index.collection import CollectionIndex
from vecraft.shared.index.shard_state import ShardState
from vecraft.shared.model.limits import dynamic_ef
from vecraft.shared.model.schema import HnswParams

pytestmark = pytest.mark.unit


def test_dynamic_ef_is_eight_k_clamped_to_100_500_and_never_below_k() -> None:
    ks = (1, 10, 12, 13, 62, 63, 100, 600)
    assert [dynamic_ef(k) for k in ks] == [100, 100, 100, 104, 496, 500, 500, 600]


def _ef_of_searches(index: CollectionIndex, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    seen: list[int] = []
    original = index._search_labels

    def spy(q: np.ndarray, k: int, flt: Any, ef: int) -> Any:
        seen.append(ef)
        return original(q, k, flt, ef)

    monkeypatch.setattr(index, "_search_labels", spy)
    return seen


def test_a_default_collection_searches_with_the_dynamic_ef(monkeypatch: pytest.MonkeyPatch) -> None:
    assert HnswParams().ef_search == 0
    index = CollectionIndex(dim=4, metric="l2")
    rng = np.random.default_rng(0)
    index.upsert([f"r{i}" for i in range(50)], rng.standard_normal((50, 4)).astype(np.float32), [None] * 50)
    seen = _ef_of_searches(index, monkeypatch)
    for k in (1, 10, 40):
        index.search(np.zeros(4, dtype=np.float32), k)
    index.search(np.zeros(4, dtype=np.float32), 10, ef_search=32)  # a query's own ef wins
    assert seen == [100, 100, 320, 32]

    index.set_ef_search(64)  # ALTER of hnsw.ef_search: a fixed ef (still never below k)
    index.search(np.zeros(4, dtype=np.float32), 10)
    index.search(np.zeros(4, dtype=np.float32), 80)
    assert seen[-2:] == [64, 80]


def test_storage_nodes_and_query_caches_build_a_schema_s_index_alike() -> None:
    """Both replicas of a collection search with the same ef: a storage node's index (standalone
    mode searches it) once kept a fixed 64 where the schema asked for the dynamic ef."""
    for ef in (0, 48):
        sch = schema(f"id{ef}", ef_search=ef)
        storage = CollectionRegistry().add(sch).index
        cache = ShardState(0, keep_documents=False)
        cache.apply(entry(1, ddl("create", sch)))
        for index in (storage, cache.index(sch.tenant, sch.name)):
            assert (index.m, index.ef_construction, index.ef_search) == (16, 100, ef)
