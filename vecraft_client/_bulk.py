"""Bulk import and export: ``client.import_file(...)``, ``client.export(...)``, ``vecraft import/export``.

Import streams the file in chunks (:mod:`vecraft_client._bulk_formats`), keeps
up to ``parallel`` chunks in flight, and sends each as one journal entry whose
request id is derived from the file's identity and the chunk's index
(``import-<identity>-<i>``). A re-run after an interruption sends the same
chunks with the same ids: the journal answers the ones it already holds with
their original position (``duplicate``) and appends only the missing ones, so
no row is stored twice, not even rows whose ids the server generated.

Export has no listing API to page through (see docs/import-export.md): it reads
the collection's journal partition up to its head to learn which ids are live,
then reads each record by id at least at that head offset (a read-your-writes
session pinned to it), ``parallel`` reads at a time, and writes them in chunks.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from vecraft.shared.model.limits import MAX_BATCH_ROWS
from vecraft.shared.rpc.v1 import gateway_pb2
from vecraft_client import _session_token
from vecraft_client._bulk_formats import BulkFileError, count_rows, detect_format, open_writer, read_chunks
from vecraft_client._calls import Call, path_segment
from vecraft_client._errors import Conflict, NotFound
from vecraft_client._models import VectorRecord, WriteResult

if TYPE_CHECKING:
    from vecraft_client._client import VecraftClient

__all__ = ["BulkFileError", "ExportResult", "ImportResult", "export", "import_file"]

#: ``progress(rows_done, rows_total or None)``; True = a tqdm bar on stderr; None/False = silent.
Progress = Callable[[int, "int | None"], None] | bool | None
_JOURNAL_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ImportResult:
    rows: int
    chunks: int
    #: Chunks the journal already held (a re-run after an interruption): not stored again.
    duplicate_chunks: int
    seconds: float
    request_id_prefix: str


@dataclass(frozen=True, slots=True)
class ExportResult:
    rows: int
    #: The journal offset of the collection's partition the export read at or after.
    head_offset: int
    #: Ids live at the head that were gone when read (deleted during the export).
    vanished: int
    seconds: float


class _Bar:
    """``progress`` as a callable: the caller's, or a tqdm bar with rate and ETA."""

    def __init__(self, progress: Progress, total: int | None, desc: str) -> None:
        self._fn: Callable[[int, int | None], None] | None = None
        self._bar: Any = None
        self._total = total
        self._done = 0
        if callable(progress):
            self._fn = progress
        elif progress:
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - depends on the install
                raise BulkFileError("the progress bar needs tqdm: pip install 'vecraft[bulk]'") from None
            self._bar = tqdm(total=total, unit="rows", unit_scale=True, desc=desc, smoothing=0.1)

    def add(self, rows: int) -> None:
        self._done += rows
        if self._bar is not None:
            self._bar.update(rows)
        if self._fn is not None:
            self._fn(self._done, self._total)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def file_identity(path: Path, collection: str, chunk_rows: int, upsert: bool) -> str:
    """A short digest naming this import: size, head and tail of the file, collection, chunking.

    Not a hash of the whole file (that would read it twice); a copy or a renamed file keeps it.
    """
    size = path.stat().st_size
    h = hashlib.sha256(f"{size}|{collection}|{chunk_rows}|{int(upsert)}|".encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        if size > 1 << 20:
            f.seek(max(1 << 20, size - (1 << 20)))
            h.update(f.read())
    if path.suffix.lower() == ".npy":
        side = path.with_suffix(".jsonl")
        if side.exists():
            h.update(file_identity(side, collection, chunk_rows, upsert).encode())
    return h.hexdigest()[:24]


def import_file(client: VecraftClient, path: str | os.PathLike[str], collection: str, *,
                format: str | None = None, chunk_rows: int = 5000, parallel: int = 4, upsert: bool = False,
                create: bool = True,
                metric: str = "cosine", ack: str | None = None, progress: Progress = None,
                request_id_prefix: str | None = None) -> ImportResult:
    """Import a JSON Lines, Parquet or ``.npy`` file into ``collection`` (see the module docstring).

    Args:
        format: ``jsonl``, ``parquet`` or ``npy``; None = from the suffix.
        chunk_rows: rows per request (one journal entry each), 1..10,000.
        parallel: chunks in flight at once.
        create: create the collection (with the file's dimension and ``metric``) if it does not exist.
        progress: True for a progress bar, or ``progress(rows_done, rows_total)``.
        request_id_prefix: the chunks' request ids are ``<prefix>-<i>``; default
            ``import-<identity of the file>``. Re-running with the same prefix resumes.
    Raises:
        BulkFileError: a bad row (the message names the line or row); the chunks before it are stored.
    """
    path = Path(path)
    fmt = detect_format(path, format)
    if not 1 <= chunk_rows <= MAX_BATCH_ROWS:
        raise BulkFileError(f"chunk_rows must be in 1..{MAX_BATCH_ROWS}, got {chunk_rows}")
    if not path.exists():
        raise BulkFileError(f"{path}: no such file")
    prefix = request_id_prefix or f"import-{file_identity(path, collection, chunk_rows, upsert)}"
    try:
        dim: int | None = client.get_collection(collection).dim
    except NotFound:
        if not create:
            raise
        dim = None
    bar = _Bar(progress, count_rows(path, fmt), f"import {path.name}")
    started = time.monotonic()
    rows = chunks = dups = 0
    pending: set[Future[WriteResult]] = set()
    sizes: dict[Future[WriteResult], int] = {}

    def settle(done: set[Future[WriteResult]]) -> None:
        nonlocal rows, dups
        for fut in done:
            result = fut.result()  # raises the write's error
            dups += int(result.duplicate)
            size = sizes.pop(fut)
            rows += size
            bar.add(size)

    try:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="vecraft-import") as pool:
            try:
                for i, chunk in enumerate(read_chunks(path, fmt, chunk_rows, dim)):
                    if dim is None:
                        client_dim = int(chunk.vectors.shape[1])
                        _ensure(client, collection, client_dim, metric)
                        dim = client_dim
                    write = client.upsert_vectors if upsert and chunk.ids is not None \
                        else client.insert_vectors
                    fut = pool.submit(write, chunk.vectors, chunk.ids, chunk.metadatas,  # type: ignore[arg-type]
                                      chunk.documents, collection, ack=ack,
                                      request_id=f"{prefix}-{i}", batch_size=MAX_BATCH_ROWS)
                    sizes[fut] = len(chunk)
                    pending.add(fut)
                    chunks += 1
                    while len(pending) >= parallel:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        settle(done)
            finally:
                # A bad row stops reading; the chunks already sent still finish (and count).
                done, pending = wait(pending)
                for fut in done:
                    if fut.exception() is None:
                        settle({fut})
    finally:
        bar.close()
    return ImportResult(rows=rows, chunks=chunks, duplicate_chunks=dups,
                        seconds=time.monotonic() - started, request_id_prefix=prefix)


def _ensure(client: VecraftClient, collection: str, dim: int, metric: str) -> None:
    with contextlib.suppress(Conflict):  # created concurrently
        client.create_collection(collection, dim=dim, metric=metric)


# ---- export -------------------------------------------------------------------------------------

def _journal_page(partition: str, from_offset: int, limit: int) -> Call[tuple[int, list[tuple[int, Any]]]]:
    """``(latest_offset, [(offset, summary), ...])`` of one page of a partition."""
    def parse_http(obj: dict[str, Any]) -> tuple[int, list[tuple[int, Any]]]:
        return int(obj.get("latest_offset") or 0), [(int(e["offset"]), e.get("summary") or {})
                                                     for e in obj.get("entries", [])]

    def parse_grpc(msg: gateway_pb2.ReadJournalResponse) -> tuple[int, list[tuple[int, Any]]]:
        return int(msg.latest_offset), [(int(e.offset), orjson.loads(e.summary_json or "{}"))
                                        for e in msg.entries]

    return Call("GET", f"/v1/journal/{path_segment(partition)}", parse_http,
                params={"from_offset": from_offset, "limit": limit},
                grpc_method="/vecraft.v1.OperationService/ReadJournal",
                grpc_request=gateway_pb2.ReadJournalRequest(partition=partition, from_offset=from_offset,
                                                             limit=limit),
                grpc_response=gateway_pb2.ReadJournalResponse, parse_grpc=parse_grpc)


def live_ids(client: VecraftClient, partition: str, collection_id: str) -> tuple[list[str], int]:
    """Ids of the collection live at the partition's head, in first-write order, and that head.

    Raises:
        BulkFileError: an entry lists fewer ids than it wrote (the journal read lists at most
            100 per mutation), so the set cannot be known from the journal.
    """
    head, _ = client._run(_journal_page(partition, 1, 1))
    live: dict[str, None] = {}
    at = 1
    while at <= head:
        _, entries = client._run(_journal_page(partition, at, _JOURNAL_PAGE))
        if not entries:
            break
        for offset, summary in entries:
            if offset > head:
                break
            for m in summary.get("mutations", []):
                if m.get("collection_id") != collection_id:
                    continue
                kind = m.get("kind")
                if kind == "drop_collection":
                    live.clear()
                    continue
                if kind not in ("insert", "upsert", "delete"):
                    continue
                ids = m.get("ids") or []
                if len(ids) < int(m.get("count", len(ids))):
                    raise BulkFileError(
                        f"cannot export: the journal entry at {partition} offset {offset} wrote "
                        f"{m['count']} ids and the journal read lists only {len(ids)}; exporting needs a "
                        "record listing API (docs/import-export.md#export)")
                for rid in ids:
                    if kind == "delete":
                        live.pop(rid, None)
                    else:
                        live[rid] = None
        at = entries[-1][0] + 1
    return list(live), head


def _batches(ids: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(ids), size):
        yield ids[i:i + size]


def export(client: VecraftClient, collection: str, path: str | os.PathLike[str], *, format: str | None = None,
           chunk_rows: int = 1000, parallel: int = 8, progress: Progress = None) -> ExportResult:
    """Write every record of ``collection`` to ``path`` (JSON Lines, Parquet or ``.npy`` + sidecar).

    Reads the ids from the collection's journal partition up to its head, then
    each record at or after that head. Raises BulkFileError when the journal
    cannot tell the ids (see :func:`live_ids`).
    """
    path = Path(path)
    fmt = detect_format(path, format)
    schema = client.get_collection(collection)
    started = time.monotonic()
    ids, head = live_ids(client, schema.partition, schema.collection_id)
    # A session pinned at the head: every read sees at least the state the ids were taken from.
    session = client.import_session(_session_token.encode({schema.partition: head}))
    bar = _Bar(progress, len(ids), f"export {collection}")
    writer = open_writer(path, fmt, len(ids), schema.dim)
    rows = vanished = 0

    def read(rid: str) -> VectorRecord | None:
        try:
            return session.get_vector(rid, collection=collection,
                                      consistency_level="read_your_writes")
        except NotFound:
            return None

    try:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="vecraft-export") as pool:
            window: deque[Future[list[VectorRecord | None]]] = deque()
            for batch in _batches(ids, chunk_rows):
                window.append(pool.submit(lambda b: list(map(read, b)), batch))
                if len(window) > 2:
                    rows, vanished = _emit(writer, window.popleft().result(), schema.dim, rows, vanished, bar)
            while window:
                rows, vanished = _emit(writer, window.popleft().result(), schema.dim, rows, vanished, bar)
    finally:
        bar.close()
        writer.close()
    if fmt == "npy" and vanished:
        # The .npy size was fixed from the ids at the head: trim the rows never written.
        mat = np.load(path, mmap_mode="r")[:rows].copy()
        np.save(path, mat)
    return ExportResult(rows=rows, head_offset=head, vanished=vanished, seconds=time.monotonic() - started)


def _emit(writer: Any, records: list[VectorRecord | None], dim: int, rows: int, vanished: int,
          bar: _Bar) -> tuple[int, int]:
    found = [r for r in records if r is not None]
    if found:
        vectors = np.asarray([r.vector for r in found], dtype="<f4").reshape(-1, dim)
        writer.write([r.id for r in found], vectors, [r.metadata for r in found], [r.document for r in found])
    bar.add(len(records))
    return rows + len(found), vanished + len(records) - len(found)
