"""Request validation the gateway runs before anything reaches the journal.

Every function either returns the value in its canonical form (float32 numpy
arrays, compact JSON text) or raises :class:`InvalidRequest` (400) — or
:class:`PayloadTooLarge` (413) for size limits — with a message that says which
field, what was wrong and what is allowed. Limits live in
:mod:`vecraft.shared.model.limits`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from itertools import chain
from typing import Any

import numpy as np
import orjson

from vecraft.shared.common.errors import InvalidRequest, PayloadTooLarge
from vecraft.shared.model.limits import (
    ID_PATTERN,
    MAX_BATCH_ROWS,
    MAX_DIM,
    MAX_DOCUMENT_BYTES,
    MAX_ID_LEN,
    MAX_K,
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MAX_METADATA_KEY_LEN,
    MAX_NAME_LEN,
    MAX_STALENESS_MS,
    MIN_K,
    NAME_PATTERN,
)

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_ID_RE = re.compile(ID_PATTERN)
_ID_ALLOWED = "letters A-Z a-z, digits 0-9 and _ . : @ / -"
_NAME_RE = re.compile(NAME_PATTERN)
_PLAIN_NUMBER_TYPES = {int, float, np.float32, np.float64}


def json_type_name(value: Any) -> str:
    """The JSON type of a decoded value as error messages name it ("number", "list", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | np.number):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple | np.ndarray):
        return "list"
    return type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


# --- vectors -------------------------------------------------------------------------------------

def validate_vector(values: Any, dim: int | None, *, field: str = "vector") -> np.ndarray:
    """A 1-d float32 copy of ``values`` (list, tuple or numpy array of numbers).

    ``dim`` None accepts any dimension in 1..MAX_DIM (the implicit ``default``
    collection takes its dimension from its first vector). Rejects wrong
    dimension, bools, non-numbers, NaN/inf and values beyond float32 range.
    """
    arr = _numeric_array(values, field, ndim=1)
    return _finish(arr, dim, field)


def validate_vectors(values: Any, dim: int | None = None, *, field: str = "vectors") -> np.ndarray:
    """A 2-d float32 array (rows x dim) of a batch of vectors; every row the same length.

    Checks run vectorized over the whole batch; the message names the first
    bad row and position, e.g. ``vectors[3][7] is nan``.
    """
    if isinstance(values, np.ndarray):
        if values.ndim != 2:
            raise InvalidRequest(f"{field} must be a list of vectors (2-d), got a {values.ndim}-d array")
        validate_batch_size(values.shape[0], field=field)
    else:
        if not isinstance(values, list | tuple):
            raise InvalidRequest(f"{field} must be a list of vectors, got {json_type_name(values)}")
        validate_batch_size(len(values), field=field)
        for i, row in enumerate(values):
            if not isinstance(row, list | tuple | np.ndarray):
                raise InvalidRequest(f"{field}[{i}] must be a list of numbers, got {json_type_name(row)}")
        lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
        if (lengths != lengths[0]).any():
            bad = int(np.argmax(lengths != lengths[0]))
            raise InvalidRequest(f"{field}[{bad}] has {lengths[bad]} values but {field}[0] has "
                                 f"{lengths[0]}; all vectors in one request must have the same "
                                 f"dimension")
    arr = _numeric_array(values, field, ndim=2)
    return _finish(arr, dim, field)


def _numeric_array(values: Any, field: str, ndim: int) -> np.ndarray:
    """A float64/float32 array of ``values`` after type checks (no range checks yet)."""
    if isinstance(values, np.ndarray):
        if values.ndim != ndim:
            raise InvalidRequest(f"{field} must be {ndim}-d, got a {values.ndim}-d array")
        if values.dtype.kind in "fiu":
            return values
        if values.dtype.kind != "O":
            raise InvalidRequest(f"{field} must hold numbers, got an array of dtype {values.dtype}")
    elif not isinstance(values, list | tuple):
        raise InvalidRequest(f"{field} must be a list of numbers, got {json_type_name(values)}")
    # map(type) runs in C: one cheap pass proves the common case (plain ints and floats);
    # the per-element walk that finds the culprit runs only when a request is bad.
    if not set(map(type, _elements(values, ndim))) <= _PLAIN_NUMBER_TYPES:
        for pos, v in enumerate(_elements(values, ndim)):
            if isinstance(v, bool | np.bool_) or not isinstance(v, int | float | np.integer | np.floating):
                raise InvalidRequest(f"{_position(field, pos, values, ndim)} is {json_type_name(v)} {v!r}; "
                                     f"vector values must be numbers")
    try:
        arr = np.asarray(values, dtype=np.float64)
    except OverflowError:
        raise InvalidRequest(f"{field} holds an integer too large for a float32 vector value "
                             f"(at most {_FLOAT32_MAX:.3e} in magnitude)") from None
    return arr


def _elements(values: Any, ndim: int) -> Iterator[Any]:
    """A fresh iterator over every element, row by row."""
    if isinstance(values, np.ndarray):
        return iter(values.ravel())
    return chain.from_iterable(values) if ndim == 2 else iter(values)


def _finish(arr: np.ndarray, dim: int | None, field: str) -> np.ndarray:
    """Dimension, finiteness and float32-range checks; returns a float32 array."""
    width = arr.shape[-1]
    if width == 0:
        raise InvalidRequest(f"{field} is empty; a vector needs at least 1 value")
    if dim is not None and width != dim:
        raise InvalidRequest(f"{field} has dimension {width}, expected {dim}",
                             details={"expected_dim": dim, "got_dim": width})
    if width > MAX_DIM:
        raise InvalidRequest(f"{field} has dimension {width}; at most {MAX_DIM} is supported")
    # One conversion and one isfinite pass over float32: values beyond float32 range become
    # inf here, so the same check catches NaN, infinity and overflow.
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        pos = tuple(int(p) for p in np.argwhere(bad)[0])
        where = field + "".join(f"[{p}]" for p in pos)
        original = arr[pos]
        if np.isfinite(original):
            raise InvalidRequest(f"{where} is {original}, beyond float32 range (at most "
                                 f"{_FLOAT32_MAX:.3e} in magnitude)")
        raise InvalidRequest(f"{where} is {original}; vector values must be finite numbers "
                             f"(no NaN or infinity)")
    return out


def _position(field: str, flat_index: int, values: Any, ndim: int) -> str:
    if ndim == 1:
        return f"{field}[{flat_index}]"
    width = len(values[0])
    return f"{field}[{flat_index // width}][{flat_index % width}]"


# --- ids and names -------------------------------------------------------------------------------

def validate_id(record_id: Any, *, field: str = "id") -> str:
    """A record id: 1..256 ASCII characters from ``[A-Za-z0-9_.:@/-]``."""
    if not isinstance(record_id, str):
        raise InvalidRequest(f"{field} must be a string, got {json_type_name(record_id)}")
    if not record_id:
        raise InvalidRequest(f"{field} must not be empty")
    if len(record_id) > MAX_ID_LEN:
        raise InvalidRequest(f"{field} is {len(record_id)} characters long; at most {MAX_ID_LEN} "
                             f"allowed")
    if not _ID_RE.match(record_id):
        pos, ch = next((i, c) for i, c in enumerate(record_id) if not _ID_RE.match(c))
        raise InvalidRequest(f"{field} {record_id[:64]!r} contains {ch!r} (U+{ord(ch):04X}) at "
                             f"position {pos}; allowed: {_ID_ALLOWED}")
    return record_id


def validate_ids(ids: Any, *, field: str = "ids") -> list[str]:
    """A batch of ids: each valid, 1..MAX_BATCH_ROWS of them, no duplicates."""
    if not isinstance(ids, list | tuple):
        raise InvalidRequest(f"{field} must be a list of strings, got {json_type_name(ids)}")
    validate_batch_size(len(ids), field=field)
    seen: dict[str, int] = {}
    for i, record_id in enumerate(ids):
        validate_id(record_id, field=f"{field}[{i}]")
        first = seen.setdefault(record_id, i)
        if first != i:
            raise InvalidRequest(f"id {record_id!r} appears more than once in this batch "
                                 f"({field}[{first}] and {field}[{i}]); ids must be unique per "
                                 f"request", details={"duplicate_id": record_id})
    return list(ids)


def validate_name(name: Any, kind: str = "collection") -> str:
    """A tenant or collection name: ``^[A-Za-z_][A-Za-z0-9_-]{0,127}$``."""
    if not isinstance(name, str):
        raise InvalidRequest(f"{kind} name must be a string, got {json_type_name(name)}")
    if not _NAME_RE.match(name):
        if not name:
            why = "is empty"
        elif len(name) > MAX_NAME_LEN:
            why = f"is {len(name)} characters long (at most {MAX_NAME_LEN})"
        elif not re.match(r"[A-Za-z_]", name[0]):
            why = f"starts with {name[0]!r}"
        else:
            why = f"contains {next(c for c in name if not re.match(r'[A-Za-z0-9_-]', c))!r}"
        raise InvalidRequest(f"{kind} name {name[:64]!r} {why}; names start with a letter or _ "
                             f"and contain only letters, digits, _ and - (1..{MAX_NAME_LEN} "
                             f"characters)")
    return name


# --- metadata and documents ----------------------------------------------------------------------

def validate_metadata(obj: Any, *, field: str = "metadata") -> str | None:
    """Compact JSON text of a metadata object, or None when ``obj`` is None.

    Keys are strings of 1..256 characters that neither contain ``.`` (dots
    address nested fields in filters) nor start with ``$`` (operators);
    values are JSON types (finite numbers, integers within 64 bits); nesting at
    most MAX_METADATA_DEPTH; encoded size at most MAX_METADATA_BYTES
    (PayloadTooLarge beyond).
    """
    if obj is None:
        return None
    if not isinstance(obj, Mapping):
        raise InvalidRequest(f"{field} must be a JSON object, got {json_type_name(obj)}")
    _check_json(obj, field, 1)
    try:
        text = orjson.dumps(obj)
    except orjson.JSONEncodeError as exc:  # e.g. a string with an unpaired surrogate
        raise InvalidRequest(f"{field} cannot be encoded as JSON: {exc}") from None
    if len(text) > MAX_METADATA_BYTES:
        raise PayloadTooLarge(f"{field} is {len(text)} bytes as JSON; at most {MAX_METADATA_BYTES} "
                              f"bytes allowed")
    return text.decode()


def _check_json(value: Any, where: str, depth: int) -> None:
    if isinstance(value, Mapping | list | tuple) and depth > MAX_METADATA_DEPTH:
        raise InvalidRequest(f"{where}: metadata nests more than {MAX_METADATA_DEPTH} levels deep")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRequest(f"{where}: keys must be strings, got {json_type_name(key)} {key!r}")
            if not 1 <= len(key) <= MAX_METADATA_KEY_LEN:
                raise InvalidRequest(f"{where}: key {key[:64]!r} must be 1..{MAX_METADATA_KEY_LEN} "
                                     f"characters long")
            if "." in key or key.startswith("$"):
                raise InvalidRequest(f"{where}: key {key!r} may not contain '.' or start with '$' "
                                     f"(filters use dots for nested fields and $ for operators)")
            _check_json(item, f"{where}.{key}", depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]", depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest(f"{where} is {value}; metadata numbers must be finite")
    elif isinstance(value, int) and not isinstance(value, bool):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidRequest(f"{where}: integer {value} does not fit in 64 bits")
    elif value is not None and not isinstance(value, str | bool):
        raise InvalidRequest(f"{where} is a {type(value).__name__}; metadata values must be JSON "
                             f"(object, list, string, number, boolean or null)")


def validate_document(text: Any, *, field: str = "document") -> str | None:
    """A document string of at most MAX_DOCUMENT_BYTES as UTF-8, or None."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidRequest(f"{field} must be a string, got {json_type_name(text)}")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidRequest(f"{field} is not valid text: {exc.reason} at position {exc.start}") from None
    if size > MAX_DOCUMENT_BYTES:
        raise PayloadTooLarge(f"{field} is {size} bytes as UTF-8; at most {MAX_DOCUMENT_BYTES} "
                              f"bytes allowed")
    return text


# --- request parameters --------------------------------------------------------------------------

def validate_k(k: Any) -> int:
    """The number of results, an integer in MIN_K..MAX_K (a bool is not an integer)."""
    if not _is_int(k):
        raise InvalidRequest(
            f"k must be an integer between {MIN_K} and {MAX_K}, got {json_type_name(k)} {k!r}")
    if not MIN_K <= k <= MAX_K:
        raise InvalidRequest(f"k is {k}; it must be between {MIN_K} and {MAX_K}")
    return int(k)


def validate_max_staleness_ms(value: Any) -> int:
    """A staleness bound in ms: an integer in 0..MAX_STALENESS_MS."""
    if not _is_int(value):
        raise InvalidRequest(f"max_staleness_ms must be an integer number of milliseconds, got "
                             f"{json_type_name(value)} {value!r}")
    if not 0 <= value <= MAX_STALENESS_MS:
        raise InvalidRequest(f"max_staleness_ms is {value}; it must be between 0 and "
                             f"{MAX_STALENESS_MS} (one hour)")
    return int(value)


def validate_batch_size(n: int, *, field: str = "batch") -> int:
    """Rows per write request: 1..MAX_BATCH_ROWS (PayloadTooLarge above)."""
    if n < 1:
        raise InvalidRequest(f"{field} is empty; send at least 1 row")
    if n > MAX_BATCH_ROWS:
        raise PayloadTooLarge(f"{field} has {n} rows; at most {MAX_BATCH_ROWS} rows per request - "
                              f"split it into several requests")
    return n


def validate_optional_list(values: Sequence[Any] | None, n: int, field: str) -> list[Any]:
    """``values`` as a list of length ``n`` (None -> n Nones); InvalidRequest on a length mismatch."""
    if values is None:
        return [None] * n
    if not isinstance(values, list | tuple):
        raise InvalidRequest(f"{field} must be a list, got {json_type_name(values)}")
    if len(values) != n:
        raise InvalidRequest(f"{field} has {len(values)} entries but there are {n} ids; give one "
                             f"per record (null for none)")
    return list(values)
