"""Inverted index over record metadata: evaluates a filter AST to a label mask.

Labels are the int64 positions a :class:`~vecraft.shared.index.collection.CollectionIndex`
gives its rows. They are never reused (a replaced or deleted record keeps its
old label, marked dead), so this index is *append-only*: it never removes an
entry, and the caller ANDs every result with its alive mask. Entries of dead
labels are garbage that the alive mask hides; compaction rebuilds the index.

Per dotted field path it keeps

- equality postings: typed value -> growable array of labels (``$eq $in``,
  and their complements ``$ne $nin``);
- a numeric column: (value, label) pairs, mostly sorted (``searchsorted`` for
  ``$gt $gte $lt $lte``) plus a short unsorted tail merged in on writes.

Evaluation matches :func:`vecraft.shared.model.filters.matches` exactly:
bools never equal numbers, ints and floats compare numerically (integers that
a float64 cannot hold exactly take an exact slow path), list values match if
any element does, ``$ne``/``$nin``/``$not`` are complements over all labels
(so they also match records without the field), JSON null and nested objects
or lists at a path exist but equal nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vecraft.shared.model.filters import And, FieldCondition, Filter, Not, Or, compare_range

# A value's key in the postings: a type tag keeps True apart from 1 while 1 and
# 1.0 (equal, same hash) share a key, as values_equal() wants.
_BOOL, _NUM, _STR = 0, 1, 2
_MAX_EXACT_INT = 2**53


def _value_key(value: Any) -> tuple[int, Any] | None:
    if isinstance(value, bool):
        return (_BOOL, value)
    if isinstance(value, int | float):
        return (_NUM, value)
    if isinstance(value, str):
        return (_STR, value)
    return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _exact_float(value: int | float) -> bool:
    """True when float64 represents ``value`` exactly (so numpy compares like Python)."""
    return isinstance(value, float) or -_MAX_EXACT_INT <= value <= _MAX_EXACT_INT


class _IntArray:
    """Growable int64 array (amortised doubling), appended in batches."""

    __slots__ = ("_data", "_size")

    def __init__(self) -> None:
        self._data = np.empty(8, dtype=np.int64)
        self._size = 0

    def extend(self, values: np.ndarray | list[int]) -> None:
        values = np.asarray(values, dtype=np.int64)
        end = self._size + len(values)
        if end > len(self._data):
            grown = np.empty(max(end, 2 * len(self._data)), dtype=np.int64)
            grown[: self._size] = self._data[: self._size]
            self._data = grown
        self._data[self._size:end] = values
        self._size = end

    def view(self) -> np.ndarray:
        return self._data[: self._size]


class _NumericColumn:
    """(value, label) pairs of one field; sorted by value except for a short tail."""

    __slots__ = ("_big", "_labels", "_tail_labels", "_tail_values", "_values")

    def __init__(self) -> None:
        self._values = np.empty(0, dtype=np.float64)
        self._labels = np.empty(0, dtype=np.int64)
        self._tail_values: list[float] = []
        self._tail_labels: list[int] = []
        # Integers beyond 2**53 (float64 would round them): compared in Python.
        self._big: list[tuple[int, int]] = []

    def add(self, labels: list[int], values: list[int | float]) -> None:
        for label, value in zip(labels, values, strict=True):
            if value != value:  # NaN compares false with everything: nothing to index
                continue
            if isinstance(value, int) and not _exact_float(value):
                self._big.append((label, value))
            else:
                self._tail_values.append(float(value))
                self._tail_labels.append(label)
        # Merge when the tail stops being short, so queries stay O(log n + hits)
        # and the sort cost is amortised over many writes.
        if len(self._tail_values) > max(1024, len(self._values) // 8):
            values_all = np.concatenate([self._values, np.asarray(self._tail_values)])
            labels_all = np.concatenate([self._labels, np.asarray(self._tail_labels, dtype=np.int64)])
            order = np.argsort(values_all, kind="stable")
            self._values, self._labels = values_all[order], labels_all[order]
            self._tail_values, self._tail_labels = [], []

    def select(self, op: str, arg: int | float, mask: np.ndarray) -> None:
        """Set ``mask[label]`` for every pair with ``value op arg``."""
        tail_values = np.asarray(self._tail_values, dtype=np.float64)
        tail_labels = np.asarray(self._tail_labels, dtype=np.int64)
        if _exact_float(arg):
            a = float(arg)
            if op == "$gt":
                mask[self._labels[np.searchsorted(self._values, a, "right"):]] = True
                mask[tail_labels[tail_values > a]] = True
            elif op == "$gte":
                mask[self._labels[np.searchsorted(self._values, a, "left"):]] = True
                mask[tail_labels[tail_values >= a]] = True
            elif op == "$lt":
                mask[self._labels[: np.searchsorted(self._values, a, "left")]] = True
                mask[tail_labels[tail_values < a]] = True
            else:
                mask[self._labels[: np.searchsorted(self._values, a, "right")]] = True
                mask[tail_labels[tail_values <= a]] = True
        else:
            # A huge integer argument: float64 would round it, Python compares exactly.
            for values, labels in ((self._values, self._labels), (tail_values, tail_labels)):
                hits = np.fromiter((compare_range(op, v, arg) for v in values.tolist()), dtype=bool,
                                   count=len(values))
                mask[labels[hits]] = True
        for label, value in self._big:
            if compare_range(op, value, arg):
                mask[label] = True


def _leaves(metadata: Mapping[str, Any], prefix: str, out: list[tuple[str, Any]]) -> None:
    """(dotted path, value) of every leaf reachable by a filter path."""
    for key, value in metadata.items():
        # A key containing a dot can never be addressed (paths split on dots).
        if not isinstance(key, str) or not key or "." in key:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _leaves(value, f"{path}.", out)
        else:
            out.append((path, value))


class MetadataIndex:
    """Append-only inverted index; not thread-safe (the owner serialises writers vs readers)."""

    def __init__(self) -> None:
        self._postings: dict[str, dict[tuple[int, Any], _IntArray]] = {}
        self._numeric: dict[str, _NumericColumn] = {}

    def add(self, labels: Sequence[int], metadatas: Sequence[Mapping[str, Any] | None]) -> None:
        """Index the metadata of new labels (one batch: one array append per posting)."""
        postings: dict[tuple[str, tuple[int, Any]], list[int]] = {}
        numeric: dict[str, tuple[list[int], list[int | float]]] = {}
        leaves: list[tuple[str, Any]] = []
        for label, metadata in zip(labels, metadatas, strict=True):
            if not metadata:
                continue
            leaves.clear()
            _leaves(metadata, "", leaves)
            for path, value in leaves:
                for item in value if isinstance(value, list) else (value,):
                    key = _value_key(item)
                    if key is None:
                        continue
                    postings.setdefault((path, key), []).append(label)
                    if key[0] == _NUM:
                        column = numeric.setdefault(path, ([], []))
                        column[0].append(label)
                        column[1].append(item)
        for (path, key), found in postings.items():
            self._postings.setdefault(path, {}).setdefault(key, _IntArray()).extend(found)
        for path, (found, values) in numeric.items():
            self._numeric.setdefault(path, _NumericColumn()).add(found, values)

    def evaluate(self, flt: Filter, size: int) -> np.ndarray:
        """Bool mask of length ``size``: True for labels whose indexed metadata match ``flt``.

        Only meaningful for alive labels: the caller ANDs it with its alive mask.
        """
        if isinstance(flt, FieldCondition):
            return self._condition(flt, size)
        if isinstance(flt, And):
            mask = self.evaluate(flt.clauses[0], size)
            for clause in flt.clauses[1:]:
                mask &= self.evaluate(clause, size)
            return mask
        if isinstance(flt, Or):
            mask = self.evaluate(flt.clauses[0], size)
            for clause in flt.clauses[1:]:
                mask |= self.evaluate(clause, size)
            return mask
        if isinstance(flt, Not):
            return ~self.evaluate(flt.clause, size)
        raise TypeError(f"not a filter: {flt!r}")

    def _condition(self, cond: FieldCondition, size: int) -> np.ndarray:
        mask = np.zeros(size, dtype=bool)
        op = cond.op
        if op in ("$eq", "$ne", "$in", "$nin"):
            postings = self._postings.get(cond.field, {})
            values = cond.value if op in ("$in", "$nin") else (cond.value,)
            for value in values:
                key = _value_key(value)
                found = postings.get(key) if key is not None else None
                if found is not None:
                    mask[found.view()] = True
            if op in ("$ne", "$nin"):
                np.logical_not(mask, out=mask)
            return mask
        column = self._numeric.get(cond.field)
        if column is not None and _is_number(cond.value):
            column.select(op, cond.value, mask)
        return mask
