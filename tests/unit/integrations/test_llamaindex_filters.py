"""LlamaIndex MetadataFilters -> Vecraft filters: every operator the grammar can express, a clear
error for the rest, and the server's parser accepts every translation."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from vecraft.shared.model.filters import matches, parse_filter
from vecraft_client.integrations.llamaindex import to_vecraft_filter

pytestmark = pytest.mark.unit


def one(op: FilterOperator, value: object, key: str = "k") -> dict[str, object] | None:
    return to_vecraft_filter(MetadataFilters(filters=[MetadataFilter(key=key, value=value, operator=op)]))


@pytest.mark.parametrize(("op", "value", "expected"), [
    (FilterOperator.EQ, "a", {"k": {"$eq": "a"}}),
    (FilterOperator.NE, 1, {"k": {"$ne": 1}}),
    (FilterOperator.GT, 1, {"k": {"$gt": 1}}),
    (FilterOperator.GTE, 1.5, {"k": {"$gte": 1.5}}),
    (FilterOperator.LT, 2, {"k": {"$lt": 2}}),
    (FilterOperator.LTE, 2, {"k": {"$lte": 2}}),
    (FilterOperator.IN, ["a", "b"], {"k": {"$in": ["a", "b"]}}),
    (FilterOperator.NIN, ["a"], {"k": {"$nin": ["a"]}}),
    (FilterOperator.ANY, ["a", "b"], {"k": {"$in": ["a", "b"]}}),
    (FilterOperator.CONTAINS, "a", {"k": {"$eq": "a"}}),
    (FilterOperator.ALL, ["a", "b"], {"$and": [{"k": {"$eq": "a"}}, {"k": {"$eq": "b"}}]}),
])
def test_each_supported_operator(op: FilterOperator, value: object, expected: dict[str, object]) -> None:
    got = one(op, value)
    assert got == expected
    parse_filter(got)  # the server accepts it


def test_list_semantics_of_any_all_contains() -> None:
    meta = {"tags": ["ml", "nlp"]}
    assert matches(parse_filter(one(FilterOperator.ANY, ["ml", "x"], "tags")), meta)
    assert matches(parse_filter(one(FilterOperator.ALL, ["ml", "nlp"], "tags")), meta)
    assert not matches(parse_filter(one(FilterOperator.ALL, ["ml", "x"], "tags")), meta)
    assert matches(parse_filter(one(FilterOperator.CONTAINS, "nlp", "tags")), meta)


@pytest.mark.parametrize("op", [FilterOperator.TEXT_MATCH, FilterOperator.TEXT_MATCH_INSENSITIVE,
                                FilterOperator.IS_EMPTY])
def test_unsupported_operators_raise_naming_them(op: FilterOperator) -> None:
    with pytest.raises(ValueError, match=f"{op.value!r}.*on key 'k'"):
        one(op, "x")


def test_conditions_and_nesting() -> None:
    a = MetadataFilter(key="a", value=1)
    b = MetadataFilter(key="b", value=2, operator=FilterOperator.GT)
    assert to_vecraft_filter(MetadataFilters(filters=[a, b])) == \
        {"$and": [{"a": {"$eq": 1}}, {"b": {"$gt": 2}}]}
    assert to_vecraft_filter(MetadataFilters(filters=[a, b], condition=FilterCondition.OR)) == \
        {"$or": [{"a": {"$eq": 1}}, {"b": {"$gt": 2}}]}
    assert to_vecraft_filter(MetadataFilters(filters=[a], condition=FilterCondition.NOT)) == \
        {"$not": {"a": {"$eq": 1}}}
    nested = MetadataFilters(filters=[a, MetadataFilters(filters=[a, b], condition=FilterCondition.OR)])
    got = to_vecraft_filter(nested)
    assert got == {"$and": [{"a": {"$eq": 1}}, {"$or": [{"a": {"$eq": 1}}, {"b": {"$gt": 2}}]}]}
    parse_filter(got)
    assert to_vecraft_filter(None) is None and to_vecraft_filter(MetadataFilters(filters=[])) is None
