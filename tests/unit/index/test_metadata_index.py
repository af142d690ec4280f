"""The inverted metadata index evaluates every filter exactly like the reference matches()."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vecraft.shared.index.metadata_index import MetadataIndex
from vecraft.shared.model.filters import And, FieldCondition, Filter, Not, Or, matches, parse_filter

pytestmark = pytest.mark.unit

BIG = 2**53 + 1  # not representable as float64

RECORDS: list[dict[str, Any] | None] = [
    {"cat": "a", "year": 2020, "score": 0.5, "flag": True, "x": 1, "tags": ["red", "blue"]},
    {"cat": "b", "year": 2021.0, "score": -1, "flag": False, "x": True, "tags": ["blue"]},
    {"cat": "a", "year": 2019, "x": 1.0, "tags": [], "nums": [1, 7, 12]},
    {"cat": None, "year": "2020", "author": {"name": "ann", "age": 40}},
    {"author": {"name": "bob"}, "nums": [3, True, "5"], "big": BIG},
    {"author": "ann", "a.b": 1, "big": 2**53, "year": [2018, 2022]},
    None,
    {},
    {"cat": ["a", "c"], "score": float("inf"), "big": BIG + 1},
    {"nested": {"deep": {"er": 3}}, "x": False, "score": 2},
]

FILTERS = [
    {"cat": "a"}, {"cat": {"$ne": "a"}}, {"cat": {"$in": ["b", "c"]}}, {"cat": {"$nin": ["a"]}},
    {"year": 2020}, {"year": 2020.0}, {"year": "2020"}, {"year": {"$gt": 2019}},
    {"year": {"$gte": 2021}}, {"year": {"$lt": 2020}}, {"year": {"$lte": 2019.5}},
    {"score": {"$gt": 1e300}}, {"score": {"$lte": 0}},
    {"flag": True}, {"flag": {"$ne": True}}, {"x": 1}, {"x": True}, {"x": {"$in": [True, 0]}},
    {"x": {"$gt": 0}}, {"tags": "blue"}, {"tags": {"$ne": "blue"}}, {"tags": {"$nin": ["red"]}},
    {"nums": {"$gt": 6}}, {"nums": 5}, {"nums": "5"}, {"nums": True},
    {"author.name": "ann"}, {"author": "ann"}, {"author": {"$ne": "ann"}}, {"author.age": {"$gte": 40}},
    {"a.b": 1}, {"nested.deep.er": 3}, {"nested.deep": {"$ne": 3}},
    {"big": BIG}, {"big": {"$gt": 2**53}}, {"big": {"$gte": BIG}}, {"big": {"$lt": BIG}},
    {"big": {"$lte": float(2**53)}}, {"year": {"$lt": BIG}},
    {"$and": [{"cat": "a"}, {"year": {"$lt": 2020}}]},
    {"$or": [{"cat": "b"}, {"nums": {"$lte": 3}}]},
    {"$not": {"cat": {"$in": ["a", "b"]}}},
    {"$not": {"$or": [{"x": 1}, {"flag": False}]}},
    {"missing": {"$ne": 1}}, {"missing": 1}, {"cat": "zzz"},
]


def _index(records: list[dict[str, Any] | None]) -> MetadataIndex:
    index = MetadataIndex()
    # Two batches: postings and numeric columns must merge across appends.
    half = len(records) // 2
    index.add(range(half), records[:half])
    index.add(range(half, len(records)), records[half:])
    return index


@pytest.mark.parametrize("raw", FILTERS, ids=[str(f) for f in FILTERS])
def test_every_operator_agrees_with_reference(raw: dict[str, Any]) -> None:
    flt = parse_filter(raw)
    assert flt is not None
    mask = _index(RECORDS).evaluate(flt, len(RECORDS))
    expected = [matches(flt, record) for record in RECORDS]
    assert mask.tolist() == expected


def test_numeric_column_merges_and_stays_exact() -> None:
    # Enough rows to force several sorted merges of the column tail.
    rng = np.random.default_rng(3)
    values = rng.integers(-50, 50, 5000).tolist()
    records = [{"v": v if i % 3 else float(v) + 0.5} for i, v in enumerate(values)]
    index = MetadataIndex()
    for start in range(0, len(records), 700):
        index.add(range(start, min(start + 700, len(records))), records[start:start + 700])
    for op in ("$gt", "$gte", "$lt", "$lte"):
        for arg in (-50, -0.5, 0, 10.5, 49):
            flt = FieldCondition("v", op, arg)
            expected = [matches(flt, r) for r in records]
            assert index.evaluate(flt, len(records)).tolist() == expected


# --- property: random metadata and random filters -------------------------------------------------

_scalars = st.one_of(st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, 1.0, 1.5, -2.5]),
                     st.sampled_from(["a", "b", "c"]))
_values = st.one_of(_scalars, st.none(), st.lists(st.one_of(_scalars, st.none()), max_size=3),
                    st.fixed_dictionaries({}, optional={"n": _scalars, "m": _scalars}))
_metadata = st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b", "c"]), _values, max_size=3))
_fields = st.sampled_from(["a", "b", "c", "a.n", "c.m", "zz"])


def _conditions() -> st.SearchStrategy[Filter]:
    eq = st.builds(FieldCondition, _fields, st.sampled_from(["$eq", "$ne"]), _scalars)
    sets = st.builds(FieldCondition, _fields, st.sampled_from(["$in", "$nin"]),
                     st.lists(_scalars, min_size=1, max_size=3).map(tuple))
    ranges = st.builds(FieldCondition, _fields, st.sampled_from(["$gt", "$gte", "$lt", "$lte"]),
                       st.one_of(st.integers(-3, 3), st.sampled_from([-0.5, 1.0, 2.5])))
    return st.one_of(eq, sets, ranges)


_filters = st.recursive(
    _conditions(),
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda c: And(tuple(c))),
        st.lists(inner, min_size=1, max_size=3).map(lambda c: Or(tuple(c))),
        inner.map(Not)),
    max_leaves=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records=st.lists(_metadata, min_size=1, max_size=12), flt=_filters)
def test_random_filters_agree_with_reference(records: list[dict[str, Any] | None],
                                             flt: Filter) -> None:
    mask = _index(records).evaluate(flt, len(records))
    assert mask.tolist() == [matches(flt, r) for r in records]
