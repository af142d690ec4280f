"""Metadata filters: the parsed form every service shares, its parser and reference evaluator.

Grammar (JSON object)::

    {"category": "documents"}                       implicit $eq
    {"year": {"$gte": 2020, "$lt": 2024}}           several operators on one field = AND
    {"$and": [f, ...]}  {"$or": [f, ...]}  {"$not": f}
    {"a": 1, "b": {"$ne": 2}}                       several top-level keys = AND
    {"author.name": "ann"}                          dotted path into nested objects

Semantics (the evaluator :func:`matches` is the reference that indexes must agree with):

- values are str, int, float or bool; ``$in``/``$nin`` take a list of them;
  ``$gt $gte $lt $lte`` take numbers only;
- a bool is never equal to a number (``True != 1``); ints and floats compare
  numerically (``1 == 1.0``);
- ``$ne`` and ``$nin`` also match records where the field is missing; every
  other operator requires the field to exist;
- a metadata value that is a list matches ``$eq``/``$in`` (and the range
  operators) if any element matches; ``$ne``/``$nin`` match if no element does.

Limits: And/Or/Not nodes nest at most ``MAX_FILTER_DEPTH`` deep (an object with
several conditions is an implicit And and counts as one level), at most
``MAX_FILTER_CONDITIONS`` field conditions, ``$in``/``$nin`` lists at most
``MAX_IN_VALUES`` values. Every violation raises ``InvalidRequest`` naming
where in the filter it is.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.limits import MAX_FILTER_CONDITIONS, MAX_FILTER_DEPTH, MAX_IN_VALUES
from vecraft.shared.model.validation import json_type_name


@dataclass(frozen=True, slots=True)
class FieldCondition:
    """``field op value``; for ``$in``/``$nin`` the value is a tuple."""

    field: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class And:
    clauses: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    clauses: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    clause: Filter


Filter = FieldCondition | And | Or | Not

EQUALITY_OPS = ("$eq", "$ne")
SET_OPS = ("$in", "$nin")
RANGE_OPS = ("$gt", "$gte", "$lt", "$lte")
FIELD_OPS = EQUALITY_OPS + SET_OPS + RANGE_OPS
LOGICAL_OPS = ("$and", "$or", "$not")
_ALL_OPS = ", ".join(FIELD_OPS + LOGICAL_OPS)


def parse_filter(obj: Mapping[str, Any] | None) -> Filter | None:
    """Parse a JSON filter object.

    Returns None for None or ``{}`` (match everything). Raises InvalidRequest
    with a message naming the offending part (``filters.year.$gt``) when the
    filter is malformed or exceeds a limit.
    """
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        raise InvalidRequest(f"filters must be a JSON object, got {json_type_name(obj)}")
    if not obj:
        return None
    parser = _Parser()
    return parser.parse_object(obj, "filters", depth=0)


class _Parser:
    """Recursive-descent parser; counts conditions across the whole filter."""

    def __init__(self) -> None:
        self.conditions = 0

    def parse_object(self, obj: Mapping[str, Any], where: str, depth: int) -> Filter:
        """``depth`` counts the And/Or/Not nodes above ``obj``; several clauses in one
        object form an implicit And, which counts as a level too."""
        n_clauses = sum(len(v) if isinstance(v, Mapping) and not str(k).startswith("$") else 1
                        for k, v in obj.items())
        inner = depth
        if n_clauses > 1:
            inner = self._enter(where, depth)
        clauses: list[Filter] = []
        for key, value in obj.items():
            if not isinstance(key, str):
                raise InvalidRequest(f"{where}: keys must be strings, got {json_type_name(key)}")
            if key.startswith("$"):
                clauses.append(self._parse_logical(key, value, f"{where}.{key}", inner))
            else:
                clauses.extend(self._parse_field(key, value, f"{where}.{key}"))
        return clauses[0] if len(clauses) == 1 else And(tuple(clauses))

    @staticmethod
    def _enter(where: str, depth: int) -> int:
        if depth + 1 > MAX_FILTER_DEPTH:
            raise InvalidRequest(f"{where}: filter nests logical operators ($and/$or/$not, or "
                                 f"several keys in one object) more than {MAX_FILTER_DEPTH} "
                                 f"levels deep")
        return depth + 1

    def _parse_logical(self, op: str, value: Any, where: str, depth: int) -> Filter:
        if op not in LOGICAL_OPS:
            hint = " (operators like $eq go inside a field: {\"field\": {\"$eq\": value}})" \
                if op in FIELD_OPS else ""
            raise InvalidRequest(f"{where}: unknown operator {op!r} at this position{hint}; "
                                 f"allowed here: $and, $or, $not or a field name")
        inner = self._enter(where, depth)
        if op == "$not":
            if not isinstance(value, Mapping) or not value:
                raise InvalidRequest(f"{where}: $not takes a non-empty filter object, got "
                                     f"{_describe(value)}")
            return Not(self.parse_object(value, where, inner))
        if not isinstance(value, list | tuple) or not value:
            raise InvalidRequest(f"{where}: {op} takes a non-empty list of filter objects, got "
                                 f"{_describe(value)}")
        clauses = []
        for i, item in enumerate(value):
            if not isinstance(item, Mapping) or not item:
                raise InvalidRequest(f"{where}[{i}]: each {op} element must be a non-empty filter "
                                     f"object, got {_describe(item)}")
            clauses.append(self.parse_object(item, f"{where}[{i}]", inner))
        return And(tuple(clauses)) if op == "$and" else Or(tuple(clauses))

    def _parse_field(self, field: str, value: Any, where: str) -> list[FieldCondition]:
        if not field or any(not part for part in field.split(".")):
            raise InvalidRequest(f"{where}: field name {field!r} is not a valid path "
                                 f"(non-empty names separated by single dots)")
        if isinstance(value, Mapping):
            if not value:
                raise InvalidRequest(f"{where}: empty operator object; use e.g. "
                                     f"{{\"$eq\": value}}")
            plain = [k for k in value if not (isinstance(k, str) and k.startswith("$"))]
            if plain:
                raise InvalidRequest(f"{where}: expected operators ({', '.join(FIELD_OPS)}), got "
                                     f"key {plain[0]!r}; address nested fields with a dotted path "
                                     f"like \"{field}.{plain[0]}\"")
            return [self._condition(field, op, arg, f"{where}.{op}") for op, arg in value.items()]
        return [self._condition(field, "$eq", value, where)]

    def _condition(self, field: str, op: str, arg: Any, where: str) -> FieldCondition:
        self.conditions += 1
        if self.conditions > MAX_FILTER_CONDITIONS:
            raise InvalidRequest(f"{where}: filter has more than {MAX_FILTER_CONDITIONS} conditions")
        if op not in FIELD_OPS:
            raise InvalidRequest(f"{where}: unknown operator {op!r}; allowed: {_ALL_OPS}")
        if op in SET_OPS:
            if not isinstance(arg, list | tuple):
                raise InvalidRequest(f"{where}: {op} takes a list of values, got {_describe(arg)}")
            if len(arg) > MAX_IN_VALUES:
                raise InvalidRequest(f"{where}: {op} list has {len(arg)} values; at most "
                                     f"{MAX_IN_VALUES} allowed")
            for i, item in enumerate(arg):
                _check_scalar(item, f"{where}[{i}]")
            return FieldCondition(field, op, tuple(arg))
        if op in RANGE_OPS:
            if not _is_number(arg):
                raise InvalidRequest(f"{where}: {op} takes a number, got {_describe(arg)}")
            _check_scalar(arg, where)
            return FieldCondition(field, op, arg)
        if isinstance(arg, list | tuple):
            raise InvalidRequest(f"{where}: a list is not a value to compare with {op}; "
                                 f"use {{\"$in\": [...]}} to match any of several values")
        _check_scalar(arg, where)
        return FieldCondition(field, op, arg)


def _check_scalar(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidRequest(f"{where}: {value!r} is not a finite number")
    if not isinstance(value, str | int | float):  # bool is an int subclass: accepted
        raise InvalidRequest(f"{where}: filter values must be string, number or boolean, got "
                             f"{_describe(value)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{json_type_name(value)} {text if len(text) <= 60 else text[:57] + '...'}"


# --- reference evaluator -------------------------------------------------------------------------

_MISSING = object()


def resolve(metadata: Mapping[str, Any] | None, field: str) -> Any:
    """The value at a dotted path, or the module's missing sentinel (see :func:`is_missing`)."""
    node: Any = metadata if metadata is not None else {}
    for part in field.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def is_missing(value: Any) -> bool:
    return value is _MISSING


def values_equal(a: Any, b: Any) -> bool:
    """Filter equality: bools only equal bools, numbers compare numerically, strings exactly."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_number(a) and _is_number(b):
        return a == b
    return isinstance(a, str) and isinstance(b, str) and a == b


def compare_range(op: str, stored: Any, arg: Any) -> bool:
    """``stored <op> arg`` for a range operator; False when ``stored`` is not a number."""
    if not _is_number(stored):
        return False
    if op == "$gt":
        return stored > arg
    if op == "$gte":
        return stored >= arg
    if op == "$lt":
        return stored < arg
    return stored <= arg


def _any_element(stored: Any, pred: Any) -> bool:
    if isinstance(stored, list):
        return any(pred(item) for item in stored)
    return bool(pred(stored))


def _condition_matches(cond: FieldCondition, metadata: Mapping[str, Any] | None) -> bool:
    stored = resolve(metadata, cond.field)
    op = cond.op
    if op in ("$ne", "$nin"):
        positive = FieldCondition(cond.field, "$eq" if op == "$ne" else "$in", cond.value)
        return not _condition_matches(positive, metadata)
    if stored is _MISSING:
        return False
    if op == "$eq":
        return _any_element(stored, lambda v: values_equal(v, cond.value))
    if op == "$in":
        return _any_element(stored, lambda v: any(values_equal(v, x) for x in cond.value))
    return _any_element(stored, lambda v: compare_range(op, v, cond.value))


def matches(flt: Filter | None, metadata: Mapping[str, Any] | None) -> bool:
    """True when ``metadata`` satisfies ``flt`` (None matches everything).

    This is the reference semantics: brute-force checks and tests compare
    index results against it.
    """
    if flt is None:
        return True
    if isinstance(flt, FieldCondition):
        return _condition_matches(flt, metadata)
    if isinstance(flt, And):
        return all(matches(c, metadata) for c in flt.clauses)
    if isinstance(flt, Or):
        return any(matches(c, metadata) for c in flt.clauses)
    return not matches(flt.clause, metadata)



