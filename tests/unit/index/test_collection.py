"""CollectionIndex: filtered search vs brute force, replace/delete semantics, errors, snapshots."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.index import CollectionIndex
from vecraft.shared.model.filters import matches, parse_filter

pytestmark = pytest.mark.unit

N, DIM = 3000, 24
CATS = ["news", "blog", "paper", "wiki"]


def _metadata(i: int, rng: np.random.Generator) -> dict[str, Any] | None:
    if i % 17 == 0:
        return None
    md: dict[str, Any] = {"year": int(2000 + i % 25), "score": float(rng.random())}
    if i % 5:
        md["cat"] = CATS[i % 4]
    if i % 3 == 0:
        md["tags"] = [f"t{(i + j) % 7}" for j in range(i % 4)]
    if i % 7 == 0:
        md["flag"] = bool(i % 2)
    if i % 11 == 0:
        md["x"] = True if i % 2 else 1
    if i % 4 == 0:
        md["author"] = {"name": ["ann", "bob", "cy"][i % 3], "age": i % 90}
    return md


@pytest.fixture(scope="module")
def dataset() -> tuple[list[str], np.ndarray, list[dict[str, Any] | None]]:
    rng = np.random.default_rng(11)
    vectors = rng.standard_normal((N, DIM)).astype(np.float32)
    return [f"id{i}" for i in range(N)], vectors, [_metadata(i, rng) for i in range(N)]


@pytest.fixture(scope="module", params=["cosine", "l2", "ip"])
def built(request: pytest.FixtureRequest, dataset: Any) -> tuple[CollectionIndex, Any]:
    ids, vectors, metas = dataset
    index = CollectionIndex(dim=DIM, metric=request.param, m=16, ef_construction=200)
    index.upsert(ids, vectors, metas)
    return index, dataset


def brute_force(metric: str, ids: list[str], vectors: np.ndarray, keep: np.ndarray,
                query: np.ndarray, k: int) -> list[str]:
    if metric == "cosine":
        vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        query = query / np.linalg.norm(query)
    scores = -np.sum((vectors - query) ** 2, axis=1) if metric == "l2" else vectors @ query
    rows = np.flatnonzero(keep)
    order = rows[np.argsort(-scores[rows], kind="stable")][:k]
    return [ids[i] for i in order]


FILTERS: list[dict[str, Any] | None] = [
    None, {}, {"cat": "news"}, {"cat": {"$ne": "news"}}, {"cat": {"$in": ["blog", "wiki"]}},
    {"cat": {"$nin": ["blog", "wiki"]}}, {"year": {"$gt": 2020}}, {"year": {"$gte": 2024}},
    {"year": {"$lt": 2001}}, {"score": {"$lte": 0.01}}, {"year": 2010}, {"tags": "t3"},
    {"flag": True}, {"x": 1}, {"x": True}, {"author.name": "ann"},
    {"$and": [{"cat": "paper"}, {"score": {"$gt": 0.5}}]},
    {"$or": [{"flag": False}, {"author.age": {"$lt": 10}}]},
    {"$not": {"cat": {"$in": ["news", "blog", "paper"]}}},
    # matches nothing
    {"cat": "none-such"}, {"year": {"$gt": 3000}}, {"$and": [{"cat": "news"}, {"cat": "blog"}]},
    # matches everything
    {"none-such": {"$ne": 1}}, {"$or": [{"year": {"$gte": 0}}, {"year": {"$nin": [1]}}]},
]


@pytest.mark.parametrize("path", ["planner", "hnsw", "exact"])
@pytest.mark.parametrize("raw", FILTERS, ids=[str(f) for f in FILTERS])
def test_filtered_search_equals_brute_force(built: Any, raw: Any, path: str) -> None:
    index, (ids, vectors, metas) = built
    flt = parse_filter(raw)
    keep = np.array([matches(flt, m) for m in metas])
    saved = index.exact_search_max_candidates
    index.exact_search_max_candidates = {"planner": saved, "hnsw": 0, "exact": N}[path]
    try:
        rng = np.random.default_rng(5)
        for query in rng.standard_normal((3, DIM)).astype(np.float32):
            found, scores = index.search(query, 10, flt, ef_search=600)
            assert found == brute_force(index.metric, ids, vectors, keep, query, 10)
            assert scores.dtype == np.float32 and len(scores) == len(found)
            assert np.all(np.diff(scores) <= 1e-6)
    finally:
        index.exact_search_max_candidates = saved


def test_scores_follow_the_metric() -> None:
    v = np.array([[3.0, 4.0], [1.0, 0.0]], dtype=np.float32)
    q = np.array([2.0, 0.0], dtype=np.float32)
    expected = {"cosine": (["b", "a"], [1.0, 0.6]), "ip": (["a", "b"], [6.0, 2.0]),
                "l2": (["b", "a"], [-1.0, -17.0])}
    for metric, (order, want) in expected.items():
        for threshold in (0, 100):  # HNSW and exact paths score alike
            index = CollectionIndex(dim=2, metric=metric)
            index.exact_search_max_candidates = threshold
            index.upsert(["a", "b"], v, [None, None])
            found, scores = index.search(q, 2)
            assert found == order
            np.testing.assert_allclose(scores, want, rtol=1e-6)


def test_upsert_replaces_vector_and_metadata() -> None:
    index = CollectionIndex(dim=4, metric="l2")
    eye = np.eye(4, dtype=np.float32)
    index.upsert(["a", "b", "c"], eye[:3], [{"v": 1}, {"v": 2}, None])
    index.upsert(["a"], eye[3:4] * 5, [{"v": 9}])
    assert len(index) == 3 and "a" in index
    assert index.metadata("a") == {"v": 9}
    found, vectors, _ = index.get(["a", "zz", "b"])
    assert found == ["a", "b"]
    np.testing.assert_array_equal(vectors[0], eye[3] * 5)
    assert index.search(eye[0], 1)[0] != ["a"]
    assert index.search(eye[3] * 5, 1)[0] == ["a"]
    assert index.search(eye[0], 3, parse_filter({"v": 1}))[0] == []
    assert index.search(eye[0], 3, parse_filter({"v": 9}))[0] == ["a"]
    # The last occurrence of a repeated id within one batch wins.
    index.upsert(["b", "b"], eye[:2], [{"v": 3}, {"v": 4}])
    assert index.metadata("b") == {"v": 4} and len(index) == 3


def test_cosine_get_returns_original_vectors() -> None:
    index = CollectionIndex(dim=3, metric="cosine")
    vectors = np.array([[3, 0, 4], [0, 0, 0]], dtype=np.float32)
    index.upsert(["a", "zero"], vectors, [None, None])
    np.testing.assert_allclose(index.get(["a", "zero"])[1], vectors, rtol=1e-6)


def test_deleted_ids_never_come_back_after_many_deletes() -> None:
    rng = np.random.default_rng(2)
    n = 6000
    ids = [f"r{i}" for i in range(n)]
    vectors = rng.standard_normal((n, 16)).astype(np.float32)
    index = CollectionIndex(dim=16, metric="cosine", ef_search=16)
    index.exact_search_max_candidates = 0  # HNSW with the tombstone selector
    index.upsert(ids, vectors, [{"even": i % 2 == 0} for i in range(n)])
    deleted = set(ids[: int(n * 0.95)])
    assert index.delete([*deleted, "never-there"]) == len(deleted)
    assert index.delete(ids[:10]) == 0
    alive = n - len(deleted)
    assert len(index) == alive and ids[0] not in index
    for query in vectors[::97]:
        for k in (1, 5, 50):
            found, _ = index.search(query, k)
            assert len(found) == k and not deleted.intersection(found)
        found, _ = index.search(query, 50, parse_filter({"even": True}))
        assert len(found) == 50 and not deleted.intersection(found)
        assert all(int(i[1:]) % 2 == 0 for i in found)
    index.exact_search_max_candidates = 10**9
    assert sorted(index.search(vectors[0], 10**4)[0]) == sorted(set(ids) - deleted)


def test_compact_drops_tombstones_and_keeps_answers() -> None:
    rng = np.random.default_rng(8)
    vectors = rng.standard_normal((2000, 8)).astype(np.float32)
    ids = [f"c{i}" for i in range(2000)]
    index = CollectionIndex(dim=8, metric="l2")
    index.upsert(ids, vectors, [{"i": i} for i in range(2000)])
    index.delete(ids[:1500])
    index.upsert(ids[1500:1600], vectors[1500:1600] + 1, [{"i": -1}] * 100)
    assert index.dead_fraction > 0.7
    before = index.search(vectors[1700], 20, parse_filter({"i": {"$gte": 1700}}))
    assert index.compact() == 1600
    assert index.dead_fraction == 0.0 and len(index) == 500
    after = index.search(vectors[1700], 20, parse_filter({"i": {"$gte": 1700}}))
    assert after[0] == before[0]
    assert index.metadata("c1550") == {"i": -1}
    assert index.metadata("c0") is None and "c0" not in index


@pytest.mark.parametrize("call", [
    lambda ix: ix.search(np.zeros(5, np.float32), 3),
    lambda ix: ix.search(np.zeros((2, 4), np.float32), 3),
    lambda ix: ix.search(np.array([1, np.nan, 0, 0], np.float32), 3),
    lambda ix: ix.search(np.ones(4, np.float32), 0),
    lambda ix: ix.search(np.ones(4, np.float32), -1),
    lambda ix: ix.search(np.ones(4, np.float32), 3, ef_search=0),
    lambda ix: ix.upsert(["a"], np.ones((1, 5), np.float32), [None]),
    lambda ix: ix.upsert(["a", "b"], np.ones((1, 4), np.float32), [None]),
    lambda ix: ix.upsert(["a"], np.full((1, 4), np.inf, np.float32), [None]),
])
def test_bad_input_is_invalid_request_and_changes_nothing(call: Any) -> None:
    index = CollectionIndex(dim=4, metric="l2")
    index.upsert(["keep"], np.ones((1, 4), np.float32), [{"a": 1}])
    with pytest.raises(InvalidRequest):
        call(index)
    assert index.ids() == ["keep"] and index.search(np.ones(4, np.float32), 5)[0] == ["keep"]


def test_constructor_rejects_bad_parameters() -> None:
    with pytest.raises(InvalidRequest):
        CollectionIndex(dim=4, metric="hamming")
    with pytest.raises(InvalidRequest):
        CollectionIndex(dim=0, metric="l2")


def test_empty_index_returns_nothing() -> None:
    index = CollectionIndex(dim=4, metric="ip")
    found, scores = index.search(np.ones(4, np.float32), 5, parse_filter({"a": {"$ne": 1}}))
    assert found == [] and scores.shape == (0,)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_save_load_round_trip(tmp_path: Path, dataset: Any, metric: str) -> None:
    ids, vectors, metas = dataset
    index = CollectionIndex(dim=DIM, metric=metric, m=12, ef_construction=80, ef_search=20)
    index.upsert(ids, vectors, metas)
    index.delete(ids[::3])
    index.upsert(ids[1:30:3], vectors[:10] * 2, [{"cat": "re"}] * 10)
    index.exact_search_max_candidates = 0
    target = tmp_path / "snap"
    index.save(target)
    index.save(target)  # replacing an existing snapshot works too
    assert not list(tmp_path.glob(".snap*")) and not (tmp_path / "snap.old").exists()
    loaded = CollectionIndex.load(target)
    loaded.exact_search_max_candidates = 0
    assert (loaded.metric, loaded.m, loaded.ef_construction, loaded.ef_search) == (metric, 12, 80, 20)
    assert sorted(loaded.ids()) == sorted(index.ids()) and len(loaded) == len(index)
    queries = np.random.default_rng(4).standard_normal((20, DIM)).astype(np.float32)
    for flt in (None, parse_filter({"cat": {"$in": ["news", "re"]}}), parse_filter({"year": {"$lt": 2003}})):
        for q in queries:
            a, sa = index.search(q, 10, flt)
            b, sb = loaded.search(q, 10, flt)
            assert a == b
            np.testing.assert_array_equal(sa, sb)
    np.testing.assert_array_equal(index.get(ids[:50])[1], loaded.get(ids[:50])[1])
    assert [loaded.metadata(i) for i in loaded.ids()] == [index.metadata(i) for i in loaded.ids()]
    # The loaded index keeps working: new rows, deletes.
    loaded.upsert(["new"], vectors[:1], [{"cat": "new"}])
    assert loaded.search(vectors[0], 1, parse_filter({"cat": "new"}))[0] == ["new"]


def test_batches_become_visible_atomically_under_concurrent_search() -> None:
    rng = np.random.default_rng(6)
    index = CollectionIndex(dim=8, metric="l2", ef_construction=40)
    index._chunk = 16  # many write sections per batch
    batches, size = 12, 400
    errors: list[BaseException] = []
    seen_partial: list[tuple[int, int]] = []
    done = threading.Event()

    def writer() -> None:
        try:
            for b in range(batches):
                ids = [f"b{b}-{i}" for i in range(size)]
                index.upsert(ids, rng.standard_normal((size, 8)).astype(np.float32),
                             [{"batch": b}] * size)
                if b % 3 == 2:
                    index.delete([f"b{b - 1}-{i}" for i in range(size)])
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)
        finally:
            done.set()

    def reader() -> None:
        q = np.zeros(8, np.float32)
        try:
            while not done.is_set():
                for b in range(batches):
                    found, _ = index.search(q, 2 * size, parse_filter({"batch": b}))
                    if len(found) not in (0, size):
                        seen_partial.append((b, len(found)))
                found, _ = index.search(q, 5)
                assert all(i.startswith("b") for i in found)
        except BaseException as exc:  # noqa: BLE001 - surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not seen_partial
    assert len(index) == batches * size - (batches // 3) * size
