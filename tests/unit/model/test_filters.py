"""Filter parser and reference evaluator: grammar, rejections, semantics, random agreement."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.filters import (
    And,
    FieldCondition,
    Not,
    Or,
    matches,
    parse_filter,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("obj, expected", [
    (None, None),
    ({}, None),
    ({"category": "documents"}, FieldCondition("category", "$eq", "documents")),
    ({"year": {"$gte": 2020, "$lt": 2024}},
     And((FieldCondition("year", "$gte", 2020), FieldCondition("year", "$lt", 2024)))),
    ({"a": 1, "b": {"$ne": "x"}},
     And((FieldCondition("a", "$eq", 1), FieldCondition("b", "$ne", "x")))),
    ({"tag": {"$in": ["x", "y"]}}, FieldCondition("tag", "$in", ("x", "y"))),
    ({"$or": [{"a": 1}, {"b": True}]},
     Or((FieldCondition("a", "$eq", 1), FieldCondition("b", "$eq", True)))),
    ({"$not": {"author.name": "ann"}}, Not(FieldCondition("author.name", "$eq", "ann"))),
    ({"$and": [{"x": {"$nin": []}}]}, And((FieldCondition("x", "$nin", ()),))),
])
def test_parse_accepts(obj: Any, expected: Any) -> None:
    assert parse_filter(obj) == expected


def _nested(levels: int) -> dict[str, Any]:
    obj: dict[str, Any] = {"a": 1}
    for _ in range(levels):
        obj = {"$not": obj}
    return obj


@pytest.mark.parametrize("obj, fragment", [
    ([1, 2], "must be a JSON object"),
    ({"$regex": "a.*"}, "unknown operator '$regex'"),
    ({"name": {"$regex": "a.*"}}, "filters.name.$regex: unknown operator '$regex'"),
    ({"name": {"$foo": 1}}, "unknown operator '$foo'"),
    ({"$eq": 1}, "operators like $eq go inside a field"),
    ({"tag": {"$in": "x"}}, "$in takes a list of values, got string"),
    ({"tag": {"$nin": 3}}, "$nin takes a list of values"),
    ({"year": {"$gt": "2020"}}, "filters.year.$gt: $gt takes a number, got string"),
    ({"year": {"$lte": True}}, "$lte takes a number, got boolean"),
    ({"year": {"$gt": float("nan")}}, "not a finite number"),
    ({"$and": []}, "$and takes a non-empty list"),
    ({"$or": []}, "$or takes a non-empty list"),
    ({"$or": {"a": 1}}, "$or takes a non-empty list"),
    ({"$and": [{}]}, "filters.$and[0]: each $and element must be a non-empty filter object"),
    ({"$not": {}}, "$not takes a non-empty filter object"),
    ({"$not": [{"a": 1}]}, "$not takes a non-empty filter object"),
    ({"a": {}}, "filters.a: empty operator object"),
    ({"author": {"name": "ann"}}, "dotted path like \"author.name\""),
    ({"a": None}, "filters.a: filter values must be string, number or boolean, got null"),
    ({"a": [1, 2]}, "use {\"$in\": [...]}"),
    ({"a": {"$eq": {"b": 1}}}, "got object"),
    ({"a": {"$in": [1, None]}}, "filters.a.$in[1]"),
    ({"a..b": 1}, "not a valid path"),
    ({"": 1}, "not a valid path"),
    ({"t": {"$in": list(range(1025))}}, "at most 1024"),
    ({f"f{i}": i for i in range(257)}, "more than 256 conditions"),
    (_nested(9), "more than 8 levels deep"),
])
def test_parse_rejects(obj: Any, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse_filter(obj)
    assert fragment in err.value.message


def test_depth_limit_is_inclusive() -> None:
    assert parse_filter(_nested(8)) is not None
    # An implicit AND (two keys) counts as a level.
    deep = _nested(7)
    deep["b"] = 2
    assert parse_filter(deep) is not None
    with pytest.raises(InvalidRequest):
        parse_filter({"$not": {"$not": deep}})


META = {"category": "documents", "year": 2021, "score": 0.5, "flag": True, "tags": ["a", "b", 3],
        "author": {"name": "ann", "age": 40}, "nothing": None}


@pytest.mark.parametrize("obj, expected", [
    ({"category": "documents"}, True),
    ({"category": "Documents"}, False),
    ({"year": 2021.0}, True),                       # ints and floats compare numerically
    ({"flag": 1}, False),                           # a bool is never equal to a number
    ({"flag": True}, True),
    ({"year": True}, False),
    ({"year": {"$gte": 2020, "$lt": 2024}}, True),
    ({"year": {"$gt": 2021}}, False),
    ({"category": {"$gt": 1}}, False),             # range on a string never matches
    ({"flag": {"$gte": 0}}, False),                # nor on a bool
    ({"missing": {"$ne": 1}}, True),               # $ne / $nin match a missing field
    ({"missing": {"$nin": [1]}}, True),
    ({"missing": {"$eq": 1}}, False),
    ({"missing": {"$lt": 1}}, False),
    ({"tags": "a"}, True),                         # list: any element
    ({"tags": 3}, True),
    ({"tags": {"$ne": "a"}}, False),               # list: no element may equal
    ({"tags": {"$ne": "z"}}, True),
    ({"tags": {"$in": ["z", "b"]}}, True),
    ({"tags": {"$nin": ["z", "b"]}}, False),
    ({"tags": {"$gt": 2}}, True),
    ({"author.name": "ann"}, True),
    ({"author.age": {"$lte": 40}}, True),
    ({"author.name.first": "ann"}, False),
    ({"author": "ann"}, False),
    ({"nothing": {"$ne": "x"}}, True),
    ({"nothing": "x"}, False),
    ({"$or": [{"year": 1999}, {"flag": True}]}, True),
    ({"$and": [{"year": 2021}, {"flag": False}]}, False),
    ({"$not": {"year": 2021}}, False),
])
def test_matches(obj: dict[str, Any], expected: bool) -> None:
    assert matches(parse_filter(obj), META) is expected


def test_matches_none() -> None:
    assert matches(None, None)
    assert matches(None, {"a": 1})
    assert not matches(parse_filter({"a": 1}), None)
    assert matches(parse_filter({"a": {"$ne": 1}}), None)


# --- random agreement with an independent evaluation on the JSON form ---------------------------

FIELDS = ["a", "b", "c"]
scalars = st.one_of(st.booleans(), st.integers(-3, 3), st.sampled_from([-1.5, 0.0, 2.0, 2.5]),
                    st.sampled_from(["x", "y", ""]))
numbers = st.one_of(st.integers(-3, 3), st.sampled_from([-1.5, 0.0, 2.5]))
flat_metadata = st.dictionaries(st.sampled_from(FIELDS), scalars, max_size=3)


def _conditions() -> st.SearchStrategy[dict[str, Any]]:
    op_arg = st.one_of(
        st.tuples(st.sampled_from(["$eq", "$ne"]), scalars),
        st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(scalars, max_size=3)),
        st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), numbers),
    )
    return st.tuples(st.sampled_from(FIELDS), op_arg).map(lambda t: {t[0]: {t[1][0]: t[1][1]}})


def _filters(depth: int) -> st.SearchStrategy[dict[str, Any]]:
    """Random filters at most ``depth`` logical levels deep (the parser's limit is 8)."""
    if depth == 0:
        return _conditions()
    inner = st.deferred(lambda: _filters(depth - 1))
    return st.one_of(
        _conditions(),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"$and": xs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"$or": xs}),
        inner.map(lambda x: {"$not": x}),
    )


filters = _filters(4)


def _same(a: Any, b: Any) -> bool:
    if type(a) is bool or type(b) is bool:
        return type(a) is type(b) and a == b
    if isinstance(a, str) != isinstance(b, str):
        return False
    return a == b


def _oracle(obj: dict[str, Any], md: dict[str, Any]) -> bool:
    (key, value), = obj.items()
    if key == "$and":
        return all(_oracle(x, md) for x in value)
    if key == "$or":
        return any(_oracle(x, md) for x in value)
    if key == "$not":
        return not _oracle(value, md)
    (op, arg), = value.items()
    present = key in md
    v = md.get(key)
    if op == "$eq":
        return present and _same(v, arg)
    if op == "$ne":
        return not (present and _same(v, arg))
    if op == "$in":
        return present and any(_same(v, x) for x in arg)
    if op == "$nin":
        return not (present and any(_same(v, x) for x in arg))
    if not present or type(v) is bool or isinstance(v, str):
        return False
    return {"$gt": v > arg, "$gte": v >= arg, "$lt": v < arg, "$lte": v <= arg}[op]


@settings(max_examples=300, deadline=None)
@given(filters, flat_metadata)
def test_matches_agrees_with_direct_evaluation(obj: dict[str, Any], md: dict[str, Any]) -> None:
    assert matches(parse_filter(obj), md) is _oracle(obj, md)

