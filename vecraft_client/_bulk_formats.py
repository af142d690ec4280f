"""File formats of bulk import/export, read and written in chunks (constant memory).

Three formats, picked by the file's suffix (or ``format=``):

- ``jsonl`` (``.jsonl``, ``.ndjson``): one object per line,
  ``{"id": "a", "vector": [...], "metadata": {...}, "document": "..."}``; only
  ``vector`` is required.
- ``parquet`` (``.parquet``, pyarrow): a list-of-float column ``vector`` and
  optional ``id`` and ``document`` string columns, and ``metadata`` (a JSON
  object as a string). Any other column becomes a metadata field of the same name.
- ``npy`` (``.npy``): a 2-d float array, memory-mapped, with an optional
  sidecar ``<name>.jsonl`` beside it holding one ``{"id", "metadata",
  "document"}`` line per row.

Every reader checks each row (dimension, finite float32 values, JSON) and
raises :class:`BulkFileError` naming the file and the line (JSON Lines) or row
(Parquet, NumPy; 0-based) of the first bad one.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from vecraft.shared.common.errors import InvalidRequest

FORMATS = ("jsonl", "parquet", "npy")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".npy": "npy"}
_F32_MAX = float(np.finfo(np.float32).max)


class BulkFileError(InvalidRequest):
    """A bulk file that cannot be imported: the message names the file and the line or row."""


@dataclass(slots=True)
class Chunk:
    """Consecutive rows of a file; ``start`` is the index of the first (0-based)."""

    start: int
    vectors: np.ndarray
    ids: list[str] | None
    metadatas: list[dict[str, Any] | None] | None
    documents: list[str | None] | None

    def __len__(self) -> int:
        return int(self.vectors.shape[0])


def detect_format(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise BulkFileError(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}")
        return fmt
    try:
        return _SUFFIXES[path.suffix.lower()]
    except KeyError:
        raise BulkFileError(f"{path}: cannot tell the format from the suffix {path.suffix!r}; use "
                            f".jsonl, .parquet or .npy, or pass the format ({', '.join(FORMATS)})") from None


def sidecar_path(path: Path) -> Path:
    """The ids/metadata file beside a ``.npy`` file: ``x.npy`` -> ``x.jsonl``."""
    return path.with_suffix(".jsonl")


def _pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - depends on the install
        raise BulkFileError("Parquet needs pyarrow: pip install 'vecraft[bulk]'") from None
    return pa, pq


def _check_vector(vec: np.ndarray, dim: int | None, where: str) -> None:
    if dim is not None and vec.shape[-1] != dim:
        raise BulkFileError(f"{where}: vector has {vec.shape[-1]} values, the collection's dim is {dim}")
    if not np.all(np.isfinite(vec)) or np.any(np.abs(vec) > _F32_MAX):
        raise BulkFileError(f"{where}: vector has a NaN, infinite or out-of-float32 value")


def _check_matrix(mat: np.ndarray, dim: int | None, path: Path, start: int) -> None:
    if dim is not None and mat.shape[1] != dim:
        raise BulkFileError(f"{path}: row {start}: vector has {mat.shape[1]} values, the collection's dim is "
                            f"{dim}")
    bad = ~np.isfinite(mat).all(axis=1) | (np.abs(np.nan_to_num(mat)) > _F32_MAX).any(axis=1)
    if bad.any():
        row = start + int(np.argmax(bad))
        raise BulkFileError(f"{path}: row {row}: vector has a NaN, infinite or out-of-float32 value")


def count_rows(path: Path, fmt: str) -> int | None:
    """Rows in the file without reading it whole (None if unknown)."""
    if fmt == "npy":
        return int(np.load(path, mmap_mode="r").shape[0])
    if fmt == "parquet":
        _, pq = _pyarrow()
        return int(pq.ParquetFile(path).metadata.num_rows)
    n = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            n += block.count(b"\n")
    return n


def read_chunks(path: Path, fmt: str, chunk_rows: int, dim: int | None) -> Iterator[Chunk]:
    """The file's rows in chunks of ``chunk_rows``, checked against ``dim`` (None: the first row's)."""
    if fmt == "jsonl":
        yield from _read_jsonl(path, chunk_rows, dim)
    elif fmt == "npy":
        yield from _read_npy(path, chunk_rows, dim)
    else:
        yield from _read_parquet(path, chunk_rows, dim)


def _json_line(line: bytes, where: str) -> dict[str, Any]:
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise BulkFileError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise BulkFileError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _read_jsonl(path: Path, chunk_rows: int, dim: int | None) -> Iterator[Chunk]:
    rows: list[dict[str, Any]] = []
    start = 0
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                raise BulkFileError(f"{path}:{lineno}: empty line")
            where = f"{path}:{lineno}"
            obj = _json_line(line, where)
            vec = obj.get("vector")
            if not isinstance(vec, list) or not vec or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in vec):
                raise BulkFileError(f"{where}: 'vector' must be a non-empty list of numbers")
            arr = np.asarray(vec, dtype=np.float64)
            dim = dim if dim is not None else arr.shape[0]
            _check_vector(arr, dim, where)
            if "id" in obj and not isinstance(obj["id"], str):
                raise BulkFileError(f"{where}: 'id' must be a string")
            if obj.get("metadata") is not None and not isinstance(obj["metadata"], dict):
                raise BulkFileError(f"{where}: 'metadata' must be an object")
            rows.append(obj)
            if len(rows) == chunk_rows:
                yield _chunk_of(rows, start, path, "line", 1)
                start += len(rows)
                rows = []
    if rows:
        yield _chunk_of(rows, start, path, "line", 1)


def _chunk_of(rows: list[dict[str, Any]], start: int, path: Path, unit: str, base: int) -> Chunk:
    has_ids = ["id" in r for r in rows]
    if any(has_ids) and not all(has_ids):
        i = has_ids.index(False) if has_ids[0] else has_ids.index(True)
        raise BulkFileError(f"{path}: {unit} {start + i + base}: either every row has an 'id' or none does")
    vectors = np.asarray([r["vector"] for r in rows], dtype="<f4")
    metas = [r.get("metadata") for r in rows]
    docs = [r.get("document") for r in rows]
    return Chunk(start, vectors, [r["id"] for r in rows] if has_ids[0] else None,
                 metas if any(m is not None for m in metas) else None,
                 docs if any(d is not None for d in docs) else None)


def _read_npy(path: Path, chunk_rows: int, dim: int | None) -> Iterator[Chunk]:
    try:
        mat = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise BulkFileError(f"{path}: not a NumPy .npy array ({exc})") from None
    if mat.ndim != 2 or mat.dtype.kind not in "fiu":
        raise BulkFileError(f"{path}: expected a 2-d numeric array, got shape {mat.shape} dtype {mat.dtype}")
    side = sidecar_path(path)
    sidecar: IO[bytes] | None = open(side, "rb") if side.exists() else None  # noqa: SIM115 - closed below
    try:
        for start in range(0, mat.shape[0], chunk_rows):
            block = np.asarray(mat[start:start + chunk_rows], dtype=np.float64)
            _check_matrix(block, dim, path, start)
            chunk = Chunk(start, np.ascontiguousarray(block, dtype="<f4"), None, None, None)
            if sidecar is not None:
                rows = []
                for i in range(len(chunk)):
                    line = sidecar.readline()
                    if not line:
                        raise BulkFileError(f"{side}: has {start + i} lines, {path} has {mat.shape[0]} rows")
                    rows.append({**_json_line(line, f"{side}:{start + i + 1}"), "vector": []})
                side_chunk = _chunk_of(rows, start, side, "line", 1)
                chunk.ids, chunk.metadatas, chunk.documents = (side_chunk.ids, side_chunk.metadatas,
                                                               side_chunk.documents)
            yield chunk
        if sidecar is not None and sidecar.readline().strip():
            raise BulkFileError(f"{side}: has more lines than {path} has rows ({mat.shape[0]})")
    finally:
        if sidecar is not None:
            sidecar.close()


def _read_parquet(path: Path, chunk_rows: int, dim: int | None) -> Iterator[Chunk]:
    _, pq = _pyarrow()
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several kinds for a bad file
        raise BulkFileError(f"{path}: not a Parquet file ({exc})") from None
    names = pf.schema_arrow.names
    if "vector" not in names:
        raise BulkFileError(f"{path}: no 'vector' column (columns: {', '.join(names)})")
    extra = [n for n in names if n not in ("id", "vector", "metadata", "document")]
    start = 0
    for batch in pf.iter_batches(batch_size=chunk_rows):
        cols = batch.to_pydict() if extra or "metadata" in names else None
        vec_col = batch.column(names.index("vector"))
        if vec_col.null_count:
            raise BulkFileError(f"{path}: row {start + vec_col.to_pylist().index(None)}: 'vector' is null")
        if hasattr(vec_col, "offsets"):
            lengths = np.diff(np.asarray(vec_col.offsets))
        else:  # fixed_size_list
            lengths = np.full(len(vec_col), vec_col.type.list_size)
        first = dim if dim is not None else int(lengths[0])
        if (lengths != first).any():
            row = start + int(np.argmax(lengths != first))
            raise BulkFileError(f"{path}: row {row}: vector has {lengths[lengths != first][0]} values, "
                                f"expected {first}")
        flat = vec_col.flatten().to_numpy(zero_copy_only=False)
        mat = np.asarray(flat, dtype=np.float64).reshape(-1, first)
        _check_matrix(mat, dim, path, start)
        ids = batch.column(names.index("id")).to_pylist() if "id" in names else None
        docs = batch.column(names.index("document")).to_pylist() if "document" in names else None
        metas: list[dict[str, Any] | None] | None = None
        if cols is not None:
            metas = []
            for i in range(len(batch)):
                meta: dict[str, Any] = {}
                raw = cols["metadata"][i] if "metadata" in cols else None
                if isinstance(raw, str):
                    meta.update(_json_line(raw.encode(), f"{path}: row {start + i}: metadata"))
                elif isinstance(raw, dict):
                    meta.update(raw)
                meta.update({n: cols[n][i] for n in extra if cols[n][i] is not None})
                metas.append(meta or None)
        if ids is not None and any(i is None for i in ids):
            raise BulkFileError(f"{path}: row {start + ids.index(None)}: 'id' is null")
        yield Chunk(start, np.ascontiguousarray(mat, dtype="<f4"), ids, metas, docs)
        start += len(batch)


# ---- writers ----------------------------------------------------------------------------------

class Writer:
    """Appends records to an export file; ``close()`` finishes it."""

    def write(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any] | None],
              documents: Sequence[str | None]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class JsonlWriter(Writer):
    def __init__(self, path: Path) -> None:
        self._f = open(path, "wb")  # noqa: SIM115 - closed by close()

    def write(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any] | None],
              documents: Sequence[str | None]) -> None:
        buf = io.BytesIO()
        for i, rid in enumerate(ids):
            row: dict[str, Any] = {"id": rid, "vector": vectors[i].tolist()}
            if metadatas[i] is not None:
                row["metadata"] = metadatas[i]
            if documents[i] is not None:
                row["document"] = documents[i]
            buf.write(orjson.dumps(row, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        self._f.write(buf.getvalue())

    def close(self) -> None:
        self._f.close()


class NpyWriter(Writer):
    """``rows x dim`` float32 ``.npy`` written as rows arrive, plus the sidecar.

    The row count is not known until the end: the header is written with the
    count right-aligned in a fixed-width field and rewritten on ``close()``, so
    the file is streamed (constant memory) and needs no second pass.
    """

    def __init__(self, path: Path, dim: int) -> None:
        self._dim = dim
        self._f = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._f.write(_npy_header(0, dim))
        self._side = JsonlWriter(sidecar_path(path))
        self._rows = 0

    def write(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any] | None],
              documents: Sequence[str | None]) -> None:
        self._f.write(np.ascontiguousarray(vectors, dtype="<f4").reshape(len(ids), self._dim).tobytes())
        self._rows += len(ids)
        lines = b"".join(orjson.dumps({"id": rid, "metadata": metadatas[i], "document": documents[i]}) + b"\n"
                         for i, rid in enumerate(ids))
        self._side._f.write(lines)

    def close(self) -> None:
        self._f.seek(0)
        self._f.write(_npy_header(self._rows, self._dim))
        self._f.close()
        self._side.close()


def _npy_header(rows: int, dim: int) -> bytes:
    """A ``.npy`` (format 1.0) header for ``rows x dim`` little-endian float32, of the same length for
    every ``rows`` (the count is padded to 20 digits; ``np.load`` reads the spaces as whitespace)."""
    text = f"{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows:>20d}, {dim}), }}"
    prefix = 10  # magic (6) + version (2) + header length (2)
    pad = -(prefix + len(text) + 1) % 64
    body = (text + " " * pad + "\n").encode("latin1")
    return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


class ParquetWriter(Writer):
    """Columns ``id``, ``vector`` (list<float32>), ``metadata`` (JSON text) and ``document``."""

    def __init__(self, path: Path) -> None:
        pa, pq = _pyarrow()
        self._pa = pa
        self._schema = pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32())),
                                  ("metadata", pa.string()), ("document", pa.string())])
        self._w = pq.ParquetWriter(path, self._schema)

    def write(self, ids: Sequence[str], vectors: np.ndarray, metadatas: Sequence[dict[str, Any] | None],
              documents: Sequence[str | None]) -> None:
        pa = self._pa
        dim = vectors.shape[1]
        offsets = pa.array(np.arange(0, (len(ids) + 1) * dim, dim, dtype=np.int32))
        vec = pa.ListArray.from_arrays(offsets, pa.array(np.ascontiguousarray(vectors).reshape(-1),
                                                         type=pa.float32()))
        meta = [orjson.dumps(m).decode() if m is not None else None for m in metadatas]
        self._w.write_table(pa.Table.from_arrays([pa.array(list(ids), pa.string()), vec,
                                                  pa.array(meta, pa.string()),
                                                  pa.array(list(documents), pa.string())],
                                                 schema=self._schema))

    def close(self) -> None:
        self._w.close()


def open_writer(path: Path, fmt: str, dim: int) -> Writer:
    """A writer of ``fmt`` at ``path`` for records of dimension ``dim``; rows arrive in chunks."""
    os.makedirs(path.parent, exist_ok=True)
    if fmt == "jsonl":
        return JsonlWriter(path)
    if fmt == "npy":
        return NpyWriter(path, dim)
    return ParquetWriter(path)
