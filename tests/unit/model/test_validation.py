"""Request validation: every rejection names the problem; accepted input comes back canonical."""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson
import pytest

from vecraft.shared.common.errors import InvalidRequest, PayloadTooLarge, VecraftError
from vecraft.shared.model.limits import MAX_BATCH_ROWS, MAX_DOCUMENT_BYTES, MAX_METADATA_BYTES
from vecraft.shared.model.validation import (
    validate_batch_size,
    validate_document,
    validate_id,
    validate_ids,
    validate_k,
    validate_max_staleness_ms,
    validate_metadata,
    validate_name,
    validate_vector,
    validate_vectors,
)

pytestmark = pytest.mark.unit


def _rejects(func: Any, *args: Any, fragment: str, error: type[VecraftError] = InvalidRequest,
             **kwargs: Any) -> VecraftError:
    with pytest.raises(VecraftError) as err:
        func(*args, **kwargs)
    assert type(err.value) is error
    assert fragment in err.value.message, err.value.message
    return err.value


# --- vectors -------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [
    [0.1, 0.2, 0.3, 0.4], (1, 2, 3, 4), [1, 2.5, -3, 0],
    np.array([1, 2, 3, 4], dtype=np.int32), np.array([0.1, 0.2, 0.3, 0.4]),
    np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32), [np.float32(1), np.float64(2), 3, 4.0],
    [3.0e38, -3.0e38, 0, 1e-45],
])
def test_vector_accepted(values: Any) -> None:
    out = validate_vector(values, 4)
    assert out.dtype == np.float32 and out.shape == (4,) and out.flags.c_contiguous
    np.testing.assert_allclose(out, np.asarray(values, dtype=np.float64).astype(np.float32))


def test_vector_dim_none_takes_any_dimension() -> None:
    assert validate_vector([1.0] * 7, None).shape == (7,)


@pytest.mark.parametrize("values, dim, fragment", [
    ([0.1, 0.2, 0.3], 4, "vector has dimension 3, expected 4"),
    ([], None, "vector is empty"),
    ([0.1, float("nan"), 0.3, 0.4], 4, "vector[1] is nan"),
    ([0.1, 0.2, float("inf"), 0.4], 4, "vector[2] is inf"),
    (np.array([0, 0, 0, -np.inf], dtype=np.float32), 4, "vector[3] is -inf"),
    ([0.1, True, 0.3, 0.4], 4, "vector[1] is boolean True"),
    ([0.1, 0.2, "0.3", 0.4], 4, "vector[2] is string '0.3'"),
    ([0.1, None, 0.3, 0.4], 4, "vector[1] is null"),
    ([[0.1], 0.2, 0.3, 0.4], 4, "vector[0] is list"),
    ("0.1,0.2", 4, "vector must be a list of numbers, got string"),
    ({"a": 1}, 4, "got object"),
    (None, 4, "got null"),
    ([1e39, 0, 0, 0], 4, "vector[0] is 1e+39, beyond float32 range"),
    ([10**400, 0, 0, 0], 4, "too large"),
    (np.array([True, False, True, True]), 4, "dtype bool"),
    (np.array(["a", "b", "c", "d"]), 4, "dtype <U1"),
    (np.zeros((2, 2)), 4, "must be 1-d, got a 2-d array"),
    ([0.0] * 65_537, None, "at most 65536"),
])
def test_vector_rejected(values: Any, dim: int | None, fragment: str) -> None:
    _rejects(validate_vector, values, dim, fragment=fragment)


def test_vector_dim_mismatch_details() -> None:
    err = _rejects(validate_vector, [1.0, 2.0], 3, fragment="expected 3")
    assert err.details == {"expected_dim": 3, "got_dim": 2}


def test_vectors_batch_accepted() -> None:
    rows = [[float(i), float(i) + 0.5, -1.0] for i in range(50)]
    out = validate_vectors(rows, 3)
    assert out.shape == (50, 3) and out.dtype == np.float32
    assert validate_vectors(np.ones((2, 3)), None).dtype == np.float32


@pytest.mark.parametrize("values, dim, fragment, error", [
    ([[0.1, 0.2], [0.1, 0.2, 0.3]], None, "vectors[1] has 3 values but vectors[0] has 2", InvalidRequest),
    ([[0.1, 0.2], [0.3, 0.4]], 3, "vectors has dimension 2, expected 3", InvalidRequest),
    ([[0.1, 0.2], [0.3, float("nan")], [float("nan"), 0]], None, "vectors[1][1] is nan", InvalidRequest),
    ([[0.1, 0.2], [0.3, False]], None, "vectors[1][1] is boolean False", InvalidRequest),
    ([[0.1, 0.2], 0.5], None, "vectors[1] must be a list of numbers, got number", InvalidRequest),
    ([[0.1, 0.2], [3e39, 0]], None, "vectors[1][0] is 3e+39, beyond float32", InvalidRequest),
    ([], None, "vectors is empty", InvalidRequest),
    ([[1.0]] * (MAX_BATCH_ROWS + 1), None, "at most 10000 rows", PayloadTooLarge),
    (np.zeros(3), None, "got a 1-d array", InvalidRequest),
    ("x", None, "got string", InvalidRequest),
])
def test_vectors_batch_rejected(values: Any, dim: int | None, fragment: str,
                                error: type[VecraftError]) -> None:
    _rejects(validate_vectors, values, dim, fragment=fragment, error=error)


# --- ids and names -------------------------------------------------------------------------------

@pytest.mark.parametrize("record_id", ["doc_123", "a", "x" * 256, "user@example.com", "a/b:c.d-e_f"])
def test_id_accepted(record_id: str) -> None:
    assert validate_id(record_id) == record_id


@pytest.mark.parametrize("record_id, fragment", [
    ("", "id must not be empty"),
    ("x" * 257, "257 characters long; at most 256"),
    ("a b", "contains ' ' (U+0020) at position 1"),
    ("caf\u00e9", "contains '\u00e9' (U+00E9) at position 3"),
    ("tab\there", "(U+0009)"),
    ("a#b", "allowed: letters"),
    (123, "id must be a string, got number"),
    (None, "got null"),
])
def test_id_rejected(record_id: Any, fragment: str) -> None:
    _rejects(validate_id, record_id, fragment=fragment)


def test_ids_batch() -> None:
    assert validate_ids(("a", "b")) == ["a", "b"]
    err = _rejects(validate_ids, ["a", "b", "c", "b"], fragment="'b' appears more than once")
    assert "ids[1] and ids[3]" in err.message and err.details["duplicate_id"] == "b"
    _rejects(validate_ids, ["ok", "not ok"], fragment="ids[1] 'not ok' contains ' '")
    _rejects(validate_ids, [], fragment="ids is empty")
    _rejects(validate_ids, "abc", fragment="must be a list of strings")


@pytest.mark.parametrize("name, fragment", [
    ("", "is empty"), ("9lives", "starts with '9'"), ("a.b", "contains '.'"),
    ("x" * 129, "129 characters long"), (5, "must be a string"),
])
def test_name_rejected(name: Any, fragment: str) -> None:
    _rejects(validate_name, name, "tenant", fragment="tenant name")
    _rejects(validate_name, name, fragment=fragment)


def test_name_accepted() -> None:
    for name in ("default", "_x", "My-Coll_2", "a" * 128):
        assert validate_name(name) == name


# --- metadata and documents ----------------------------------------------------------------------

def test_metadata_accepted_and_compact() -> None:
    meta = {"title": "ML Paper", "year": 2021, "score": 0.5, "tags": ["a", 1, None, True],
            "author": {"name": "ann"}}
    text = validate_metadata(meta)
    assert text is not None and " " not in text.replace("ML Paper", "")
    assert orjson.loads(text) == meta
    assert validate_metadata(None) is None
    assert validate_metadata({}) == "{}"


def _nest(levels: int) -> dict[str, Any]:
    obj: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        obj = {"n": obj}
    return obj


@pytest.mark.parametrize("meta, fragment, error", [
    ([1, 2], "metadata must be a JSON object, got list", InvalidRequest),
    ("{}", "got string", InvalidRequest),
    ({"": 1}, "key '' must be 1..256 characters", InvalidRequest),
    ({"k" * 257: 1}, "must be 1..256 characters", InvalidRequest),
    ({1: "x"}, "keys must be strings, got number", InvalidRequest),
    ({"a.b": 1}, "key 'a.b' may not contain '.'", InvalidRequest),
    ({"$set": 1}, "start with '$'", InvalidRequest),
    ({"x": {"y": float("nan")}}, "metadata.x.y is nan", InvalidRequest),
    ({"x": [1, float("inf")]}, "metadata.x[1] is inf", InvalidRequest),
    ({"x": 2**64}, "does not fit in 64 bits", InvalidRequest),
    ({"x": {1, 2}}, "metadata.x is a set", InvalidRequest),
    ({"x": b"bytes"}, "is a bytes", InvalidRequest),
    ({"x": "\ud800"}, "cannot be encoded as JSON", InvalidRequest),
    (_nest(9), "more than 8 levels deep", InvalidRequest),
    ({"blob": "x" * MAX_METADATA_BYTES}, "at most 65536 bytes", PayloadTooLarge),
])
def test_metadata_rejected(meta: Any, fragment: str, error: type[VecraftError]) -> None:
    _rejects(validate_metadata, meta, fragment=fragment, error=error)


def test_metadata_depth_limit_inclusive() -> None:
    assert validate_metadata(_nest(8)) is not None


def test_document() -> None:
    assert validate_document(None) is None
    assert validate_document("hello") == "hello"
    assert validate_document("x" * MAX_DOCUMENT_BYTES) is not None
    # 1 MiB of characters but more bytes as UTF-8.
    _rejects(validate_document, "\u00e9" * (MAX_DOCUMENT_BYTES // 2 + 1), fragment="bytes as UTF-8",
             error=PayloadTooLarge)
    _rejects(validate_document, 42, fragment="document must be a string, got number")
    _rejects(validate_document, "a\udc00", fragment="not valid text")


# --- request parameters --------------------------------------------------------------------------

@pytest.mark.parametrize("k, ok", [(1, True), (1024, True), (np.int64(5), True), (0, False),
                                   (1025, False), (-1, False), (True, False), (2.0, False),
                                   ("10", False), (None, False)])
def test_k(k: Any, ok: bool) -> None:
    if ok:
        assert validate_k(k) == int(k)
    else:
        _rejects(validate_k, k, fragment="between 1 and 1024")


@pytest.mark.parametrize("value, ok", [(0, True), (500, True), (3_600_000, True), (-1, False),
                                       (3_600_001, False), (False, False), (1.5, False), ("500", False)])
def test_max_staleness(value: Any, ok: bool) -> None:
    if ok:
        assert validate_max_staleness_ms(value) == value
    else:
        _rejects(validate_max_staleness_ms, value, fragment="max_staleness_ms")


def test_batch_size() -> None:
    assert validate_batch_size(1) == 1 and validate_batch_size(MAX_BATCH_ROWS) == MAX_BATCH_ROWS
    _rejects(validate_batch_size, 0, fragment="at least 1 row")
    _rejects(validate_batch_size, MAX_BATCH_ROWS + 1, fragment="split it", error=PayloadTooLarge)
