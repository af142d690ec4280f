"""CollectionIndex.optimize: the background rebuild that drops tombstones while reads and writes go on."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecraft.bench._datasets import exact_topk
from vecraft.bench.calibrate import clustered_vectors
from vecraft.shared.index import CollectionIndex
from vecraft.shared.model.filters import parse_filter

pytestmark = pytest.mark.unit

#: Generous bound of every wait on the rebuild thread (a hang fails, it does not block the suite).
WAIT_S = 30.0


def _exact(index: CollectionIndex) -> CollectionIndex:
    index.exact_search_max_candidates = 10**9
    return index


def _brute(rows: dict[str, tuple[np.ndarray, dict[str, Any]]], query: np.ndarray, k: int,
           keep: Callable[[dict[str, Any]], bool] = lambda _m: True) -> list[str]:
    scores = {i: -float(np.sum((v - query) ** 2)) for i, (v, m) in rows.items() if keep(m)}
    return sorted(scores, key=lambda i: -scores[i])[:k]


def test_half_deleted_then_optimized_keeps_recall_and_lowers_memory() -> None:
    n, dim, k = 4000, 32, 10
    vectors, queries = clustered_vectors(n, dim, clusters=16, queries=100, seed=5)
    ids = [str(i) for i in range(n)]
    index = CollectionIndex(dim=dim, metric="cosine")
    index.upsert(ids, vectors, [{"i": i, "even": i % 2 == 0} for i in range(n)])
    index.delete(ids[::2])
    assert index.dead_fraction == pytest.approx(0.5)
    filters = [parse_filter({"i": {"$gte": 3000}}), parse_filter({"even": False})]
    before_nodes, before_bytes = index.graph_nodes, index.memory_bytes()
    before_exact = [_exact(index).search(q, k, f) for q in queries[:20] for f in (None, *filters)]
    index.exact_search_max_candidates = None

    result = index.optimize()

    assert result is not None and result.dropped == n // 2 and result.nodes_after == n // 2
    assert index.dead_fraction == 0.0 and index.dead_rows == 0 and len(index) == n // 2
    assert index.graph_nodes == index._graph.ntotal == n // 2 < before_nodes
    assert index.memory_bytes() < before_bytes
    # Recall@10 of the new graph against brute force over the alive rows.
    alive = np.arange(1, n, 2)
    truth = exact_topk(vectors[alive], queries, k, "cosine")
    hits = 0
    for query, expected in zip(queries, truth, strict=True):
        found, _ = index.search(query, k)
        hits += len({int(i) for i in found} & {int(alive[j]) for j in expected})
    assert hits / (len(queries) * k) >= 0.95
    # Ids, metadata, vectors and filtered answers are unchanged.
    assert sorted(index.ids(), key=int) == ids[1::2]
    assert index.metadata("7") == {"i": 7, "even": False} and index.metadata("8") is None
    got_ids, got_vectors, _ = index.get(["1", "2", "3999"])
    assert got_ids == ["1", "3999"]
    np.testing.assert_allclose(got_vectors, vectors[[1, 3999]], rtol=1e-5)
    after_exact = [_exact(index).search(q, k, f) for q in queries[:20] for f in (None, *filters)]
    for (b_ids, b_scores), (a_ids, a_scores) in zip(before_exact, after_exact, strict=True):
        assert a_ids == b_ids
        np.testing.assert_array_equal(a_scores, b_scores)


def test_writes_and_deletes_during_a_rebuild_reach_the_new_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    dim, n = 8, 1200
    rows = {f"r{i}": (rng.standard_normal(dim).astype(np.float32), {"i": i}) for i in range(n)}
    index = CollectionIndex(dim=dim, metric="l2")
    index.upsert(list(rows), np.stack([v for v, _ in rows.values()]), [m for _, m in rows.values()])
    index.delete([f"r{i}" for i in range(0, n, 3)])
    for i in range(0, n, 3):
        del rows[f"r{i}"]
    old_graph = index._graph

    built, resume = threading.Event(), threading.Event()
    replayed, resume_final = threading.Event(), threading.Event()

    def on_phase(phase: str) -> None:
        if phase == "built":
            built.set()
            assert resume.wait(WAIT_S)
        elif phase == "replayed" and not replayed.is_set():
            replayed.set()
            assert resume_final.wait(WAIT_S)

    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(index.optimize(on_phase=on_phase)))
    worker.start()
    try:
        assert built.wait(WAIT_S)
        # The rebuild is paused after building its new graph: writes and searches go on meanwhile,
        # on the old structures. More ids than the final catch-up takes: a replay round runs.
        for i in range(n, n + 400):
            rows[f"r{i}"] = (rng.standard_normal(dim).astype(np.float32), {"i": i, "new": True})
        for i in (1, 2, 4):  # rewrites of rows the rebuild copied
            rows[f"r{i}"] = (rng.standard_normal(dim).astype(np.float32), {"i": -i})
        fresh = [i for i in rows if i in {f"r{j}" for j in (1, 2, 4)} or rows[i][1].get("new")]
        index.upsert(fresh, np.stack([rows[i][0] for i in fresh]), [rows[i][1] for i in fresh])
        gone = ["r5", "r7", f"r{n + 10}"]
        assert index.delete(gone) == 3
        for i in gone:
            del rows[i]
        query = rows["r4"][0]
        assert index.search(query, 1)[0] == ["r4"]
        assert _exact(index).search(query, 5)[0] == _brute(rows, query, 5)
        index.exact_search_max_candidates = None
        assert index._graph is old_graph
        index.save(tmp_path / "during")  # a snapshot during the rebuild: the old structures, whole
        resume.set()

        assert replayed.wait(WAIT_S)
        # After one replay round; these few arrive before the final, write-locked catch-up.
        rows["r8"] = (rng.standard_normal(dim).astype(np.float32), {"i": 8, "late": True})
        index.upsert(["r8"], rows["r8"][0][None, :], [rows["r8"][1]])
        index.delete(["r10"])
        del rows["r10"]
        resume_final.set()
        worker.join(WAIT_S)
    finally:
        resume.set()
        resume_final.set()
        worker.join(WAIT_S)
    assert not worker.is_alive()
    result = results[0]
    assert result is not None and result.rounds >= 2 and result.replayed >= 400
    assert index._graph is not old_graph
    assert sorted(index.ids()) == sorted(rows) and index.metadata("r8") == {"i": 8, "late": True}
    assert "r10" not in index and "r5" not in index and index.metadata("r1") == {"i": -1}
    reference = CollectionIndex(dim=dim, metric="l2")
    reference.upsert(list(rows), np.stack([v for v, _ in rows.values()]), [m for _, m in rows.values()])
    _exact(reference)
    for query in rng.standard_normal((20, dim)).astype(np.float32):
        expected = _brute(rows, query, 10)
        assert _exact(index).search(query, 10)[0] == expected == reference.search(query, 10)[0]
        index.exact_search_max_candidates = None
        assert len(set(index.search(query, 10)[0]) & set(expected)) >= 9
        late = parse_filter({"late": True})
        assert _exact(index).search(query, 3, late)[0] == ["r8"]
    # The snapshot taken during the rebuild is the index as it was then, whole.
    during = CollectionIndex.load(tmp_path / "during")
    assert "r5" not in during and "r10" in during and during.metadata("r8") == {"i": 8}
    assert during.graph_nodes == during._graph.ntotal


def test_a_stopped_rebuild_changes_nothing() -> None:
    rng = np.random.default_rng(2)
    index = CollectionIndex(dim=4, metric="ip")
    vectors = rng.standard_normal((5000, 4)).astype(np.float32)
    index.upsert([f"s{i}" for i in range(5000)], vectors, [None] * 5000)
    index.delete([f"s{i}" for i in range(2500)])
    graph, stop = index._graph, threading.Event()
    stop.set()
    assert index.optimize(stop=stop) is None
    assert index._graph is graph and index.dead_rows == 2500
    index.upsert(["late"], vectors[:1], [None])  # no rebuild records changes any more
    assert index._touched is None
    assert index.optimize() is not None and index.dead_rows == 0 and len(index) == 2501


_ids = st.sampled_from([f"k{i}" for i in range(16)])
_op = st.one_of(st.tuples(st.just("upsert"), st.lists(_ids, min_size=1, max_size=6)),
                st.tuples(st.just("delete"), st.lists(_ids, min_size=1, max_size=4)))
_phases = st.sampled_from(["before", "copied", "built", "replayed", "after"])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(st.tuples(_op, _phases), min_size=1, max_size=20), catch_up=st.sampled_from([0, 3, 256]))
def test_random_writes_around_a_rebuild_match_a_reference(
        ops: list[tuple[tuple[str, list[str]], str]], catch_up: int) -> None:
    """Each op runs before the rebuild, at one of its phases (from the hook, so the interleaving is
    exact), or after it; the answers then equal a dict model's and a fresh index's."""
    dim = 5
    index = CollectionIndex(dim=dim, metric="l2")
    model: dict[str, tuple[np.ndarray, dict[str, Any]]] = {}
    step = iter(range(10**6))

    def run(op: tuple[str, list[str]]) -> None:
        kind, ids = op
        if kind == "delete":
            index.delete(ids)
            for i in ids:
                model.pop(i, None)
            return
        unique = list(dict.fromkeys(ids))
        n = next(step)
        vectors = np.random.default_rng(n).standard_normal((len(unique), dim)).astype(np.float32)
        metas = [{"step": n, "odd": int(i[1:]) % 2 == 1} for i in unique]
        index.upsert(unique, vectors, metas)
        model.update({i: (v, m) for i, v, m in zip(unique, vectors, metas, strict=True)})

    by_phase: dict[str, list[tuple[str, list[str]]]] = {}
    for op, phase in ops:
        by_phase.setdefault(phase, []).append(op)
    for op in by_phase.get("before", []):
        run(op)

    def on_phase(phase: str) -> None:
        for op in by_phase.pop(phase, []):
            run(op)

    assert index.optimize(on_phase=on_phase, catch_up_rows=catch_up) is not None
    for op in by_phase.get("after", []):
        run(op)
    _exact(index)
    reference = _exact(CollectionIndex(dim=dim, metric="l2"))
    if model:
        reference.upsert(list(model), np.stack([v for v, _ in model.values()]),
                         [m for _, m in model.values()])
    assert sorted(index.ids()) == sorted(model) == sorted(reference.ids())
    for i, (_, meta) in model.items():
        assert index.metadata(i) == meta
    for query in np.random.default_rng(99).standard_normal((3, dim)).astype(np.float32):
        expected = _brute(model, query, 8)
        assert index.search(query, 8)[0] == expected == reference.search(query, 8)[0]
        odd = _brute(model, query, 8, lambda m: bool(m["odd"]))
        assert index.search(query, 8, parse_filter({"odd": True}))[0] == odd
