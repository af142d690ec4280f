"""Bulk import and export: ``client.import_file(...)``, ``client.export(...)``, ``vecraft import/export``.

Import streams the file in chunks (:mod:`vecraft_client._bulk_formats`), keeps
up to ``parallel`` chunks in flight, and sends each as one journal entry whose
request id is derived from the file's identity and the chunk's index
(``import-<identity>-<i>``). A re-run after an interruption sends the same
chunks with the same ids: the journal answers the ones it already holds with
their original position (``duplicate``) and appends only the missing ones, so
no row is stored twice, not even rows whose ids the server generated.

Export pages through the collection's record listing (``list_records``) in id
order, at ``strong`` by default, and writes each page as it arrives: constant
memory, every record once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vecraft.shared.model.limits import MAX_BATCH_ROWS
from vecraft_client._bulk_formats import BulkFileError, count_rows, detect_format, open_writer, read_chunks
from vecraft_client._errors import Conflict, NotFound, RateLimited
from vecraft_client._listing import MAX_PAGE_SIZE, Pager
from vecraft_client._models import RecordPage, WriteResult

if TYPE_CHECKING:
    from vecraft_client._client import VecraftClient

__all__ = ["BulkFileError", "ExportResult", "ImportResult", "export", "import_file"]

#: ``progress(rows_done, rows_total or None)``; True = a tqdm bar on stderr; None/False = silent.
Progress = Callable[[int, "int | None"], None] | bool | None
#: How long one chunk waits out back-pressure (429) before the import fails (``backpressure_s``).
BACKPRESSURE_S = 600.0


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
    #: The journal offset of the collection's partition the first page was read at (or after).
    head_offset: int
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
                request_id_prefix: str | None = None, backpressure_s: float = BACKPRESSURE_S) -> ImportResult:
    """Import a JSON Lines, Parquet or ``.npy`` file into ``collection`` (see the module docstring).

    Args:
        format: ``jsonl``, ``parquet`` or ``npy``; None = from the suffix.
        chunk_rows: rows per request (one journal entry each), 1..10,000.
        parallel: chunks in flight at once.
        create: create the collection (with the file's dimension and ``metric``) if it does not exist.
        progress: True for a progress bar, or ``progress(rows_done, rows_total)``.
        request_id_prefix: the chunks' request ids are ``<prefix>-<i>``; default
            ``import-<identity of the file>``. Re-running with the same prefix resumes.
        backpressure_s: how long one chunk keeps waiting out back-pressure (429, e.g. replicas
            behind) after the client's own retries, each wait as long as the answer's Retry-After.
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
    # Set when the import stops early (bad row, failed chunk, Ctrl-C): chunks waiting out
    # back-pressure give up instead of holding the exit for up to ``backpressure_s``.
    stopping = threading.Event()

    def settle(done: set[Future[WriteResult]]) -> None:
        """Count the chunks that were stored, then raise the first failed chunk's error."""
        nonlocal rows, dups
        error: BaseException | None = None
        for fut in done:
            size = sizes.pop(fut)
            if fut.exception() is not None:
                error = error or fut.exception()
                continue
            dups += int(fut.result().duplicate)
            rows += size
            bar.add(size)
        if error is not None:
            raise error

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
                    fut = pool.submit(_patiently, write, backpressure_s, stopping, chunk.vectors, chunk.ids,
                                      chunk.metadatas, chunk.documents, collection, ack=ack,
                                      request_id=f"{prefix}-{i}", batch_size=MAX_BATCH_ROWS)
                    sizes[fut] = len(chunk)
                    pending.add(fut)
                    chunks += 1
                    while len(pending) >= parallel:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        settle(done)
                while pending:  # the last chunks: the first that fails stops the import at once
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    settle(done)
            except BaseException:
                stopping.set()
                raise
            finally:
                # A bad row or a failed chunk stops the import; the chunks already sent still finish
                # (and count), but stop waiting out back-pressure.
                done, pending = wait(pending)
                with contextlib.suppress(BaseException):
                    settle(done)
    finally:
        bar.close()
    return ImportResult(rows=rows, chunks=chunks, duplicate_chunks=dups,
                        seconds=time.monotonic() - started, request_id_prefix=prefix)


def _patiently(write: Callable[..., WriteResult], patience_s: float, stopping: threading.Event,
               *args: Any, **kwargs: Any) -> WriteResult:
    """``write(*args, **kwargs)``, tried again on back-pressure until ``patience_s`` have passed.

    The transport's retries (a few, within seconds) are for blips. A bulk import at full speed
    outruns the replicas for longer than that, and the journal's answer (429, "replica N ms
    behind") means: wait, as the ingest loader of the benchmarks does. The chunk keeps its
    request id, so trying it again never stores it twice.
    """
    deadline = time.monotonic() + patience_s
    attempt = 0
    while True:
        try:
            return write(*args, **kwargs)
        except RateLimited as err:
            left = deadline - time.monotonic()
            if left <= 0:
                raise
            delay = err.retry_after_ms / 1000.0 if err.retry_after_ms else min(5.0, 0.1 * 2 ** attempt)
            if stopping.wait(min(max(delay, 0.05), left)):
                raise
            attempt += 1


def _ensure(client: VecraftClient, collection: str, dim: int, metric: str) -> None:
    with contextlib.suppress(Conflict):  # created concurrently
        client.create_collection(collection, dim=dim, metric=metric)


# ---- export -------------------------------------------------------------------------------------

def export(client: VecraftClient, collection: str, path: str | os.PathLike[str], *, format: str | None = None,
           chunk_rows: int = MAX_PAGE_SIZE, parallel: int = 2, consistency_level: str = "strong",
           progress: Progress = None) -> ExportResult:
    """Write every record of ``collection`` to ``path`` (JSON Lines, Parquet or ``.npy`` + sidecar).

    Pages through the record listing (``list_records``) in id order and writes
    each page as it arrives: memory stays bounded by a page or two, whatever
    the collection's size.

    Args:
        chunk_rows: records per page, 1..1000 (larger values read pages of 1000).
        parallel: 2 or more reads the next page while the current one is written; 1 reads and
            writes in turn (pages follow each other's cursor, so at most one read is in flight).
        consistency_level: of every page; with ``strong`` (default) every write acknowledged
            before the export started is in the file unless deleted since. Each page also reads
            at least at the journal offset of the page before it.
    """
    path = Path(path)
    fmt = detect_format(path, format)
    if chunk_rows < 1:
        raise BulkFileError(f"chunk_rows must be at least 1, got {chunk_rows}")
    schema = client.get_collection(collection)
    started = time.monotonic()
    pager = Pager(collection, page_size=min(chunk_rows, MAX_PAGE_SIZE), include_vectors=True,
                  consistency_level=consistency_level)
    bar = _Bar(progress, None, f"export {collection}")
    writer = open_writer(path, fmt, schema.dim)
    rows = 0
    first_offset: int | None = None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vecraft-export") as pool:
            call = pager.next_call()
            pending: Future[RecordPage] | None = pool.submit(client._run, call) if call else None
            while pending is not None:
                page = pending.result()
                pager.advance(page)
                if first_offset is None:
                    first_offset = page.index_version
                call = pager.next_call()
                # The next page's cursor is known now: read it while this one is written.
                pending = pool.submit(client._run, call) if call is not None and parallel > 1 else None
                _write_page(writer, page, schema.dim)
                rows += len(page.records)
                bar.add(len(page.records))
                if pending is None and call is not None:
                    pending = pool.submit(client._run, call)
    finally:
        bar.close()
        writer.close()
    return ExportResult(rows=rows, head_offset=first_offset or 0,
                        seconds=time.monotonic() - started)


def _write_page(writer: Any, page: RecordPage, dim: int) -> None:
    if not page.records:
        return
    vectors = np.asarray([r.vector for r in page.records], dtype="<f4").reshape(-1, dim)
    writer.write([r.id for r in page.records], vectors, [r.metadata for r in page.records],
                 [r.document for r in page.records])
