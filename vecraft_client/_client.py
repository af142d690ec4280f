"""VecraftClient, AsyncVecraftClient and their sessions.

The operations are written once, in :class:`_Operations`: each method builds a
:class:`~vecraft_client._calls.Call` and hands it to ``self._run``. The sync
client's ``_run`` executes it and returns the result; the async client's
returns a coroutine, so the same methods are awaited there. A client merges
the token of every write it makes and sends it with its requests; a read
without a level then reads the client's own writes (``_read_level``).
Sessions wrap a client and do the same with a token of their own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.limits import MAX_BATCH_ROWS
from vecraft_client import _batching, _calls, _listing, _read_level, _session_token
from vecraft_client._batching import Progress
from vecraft_client._calls import Call
from vecraft_client._models import DeleteResult, RecordPage, VectorRecord, WriteResult
from vecraft_client._transport import (
    AsyncGrpcTransport,
    AsyncHttpTransport,
    GrpcTransport,
    HttpTransport,
    RetryConfig,
    TlsConfig,
)

Transport = Literal["http", "grpc"]
#: A file path (TLS certificates and keys).
PathArg = str | os.PathLike[str] | None
Level = ConsistencyLevel | str | None
#: (call, rows it carries), built lazily: a large input is never encoded all at once.
Batches = Iterator[tuple[Call[Any], int]]
W = TypeVar("W", bound=WriteResult)


class _SessionState:
    """Journal positions a session has written (merged token), thread-safe."""

    def __init__(self, token: str = "") -> None:
        self._token = token
        self._lock = threading.Lock()

    @property
    def token(self) -> str:
        return self._token

    def record(self, result: WriteResult) -> None:
        with self._lock:
            self._token = _session_token.merge(self._token, result.session_token)

    def offsets(self) -> dict[str, int]:
        return _session_token.decode(self._token)


class _Operations:
    """Every public operation; subclasses decide how a Call is run.

    ``_state`` holds the merged token of the writes made through this object (a
    client's own writes, or a session's): reads without a level read them
    (:mod:`vecraft_client._read_level`).
    """

    _state: _SessionState

    def _run(self, call: Call[Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _run_batches(self, batches: Batches, total: int, merge: Callable[[list[Any]], Any],
                     progress: Progress | None) -> Any:  # pragma: no cover - abstract
        """Run ``batches`` one after the other and ``merge`` their results (awaitable when async)."""
        raise NotImplementedError

    def _token(self) -> str | None:
        """The merged token of the writes made so far (None before the first)."""
        return self._state.token or None

    def _written(self, call: Call[W]) -> Call[W]:
        """Record the write's position in the token when its answer arrives."""
        call.on_result.append(self._state.record)
        return call

    def _read(self, level: Level, max_staleness_ms: int | None = None) -> tuple[ConsistencyLevel, str | None]:
        """The level and token a read sends: read-your-writes over our writes unless told otherwise."""
        return _read_level.resolve(level, self._token(), max_staleness_ms)

    # ---- search --------------------------------------------------------------
    def vector_search(self, vector: Any, k: int = 10, consistency_level: Level = None,
                      max_staleness_ms: int | None = None, filters: Mapping[str, Any] | None = None,
                      collection: str | None = None, *, min_required_offset: int | None = None,
                      ef_search: int | None = None, timeout_ms: int | None = None,
                      include_documents: bool = False) -> Any:
        """Top-``k`` most similar records at the requested consistency level.

        Args:
            vector: query vector (list of floats or a 1-d numpy array).
            consistency_level: ``ConsistencyLevel`` or its name; None = ``read_your_writes`` over this
                client's (or session's) own writes once it has written, ``eventual`` before
                (``bounded`` when only ``max_staleness_ms`` is given).
            max_staleness_ms: bound for BOUNDED_STALENESS.
            filters: metadata filter (``{"category": "documents"}``, ``$in``, ``$gte``, ``$and`` ...).
            collection: collection name; None = "default".
            min_required_offset: READ_YOUR_WRITES / client-driven sync: the journal offset to reach.
            include_documents: fill each hit's ``document`` (None for records without one).
        Returns:
            SearchResponse with ``.results`` and ``.consistency_info``.
        """
        level, token = self._read(consistency_level, max_staleness_ms)
        return self._run(_calls.search(vector, k, level, max_staleness_ms, filters, collection,
                                       min_required_offset, token, ef_search, timeout_ms,
                                       include_documents=include_documents))

    # ---- writes --------------------------------------------------------------
    def insert_vector(self, vector: Any, metadata: Mapping[str, Any] | None = None, id: str | None = None,
                      document: str | None = None, collection: str | None = None, *,
                      ack: str | None = None, request_id: str | None = None) -> Any:
        """Insert one vector (an existing id is replaced).

        Returns WriteResult (id, partition, offset, hlc)."""
        return self._run(self._written(_calls.write_one(
            vector, id, metadata, document, collection, upsert=False, session_token=self._token(), ack=ack,
            request_id=request_id)))

    def insert_vectors(self, vectors: Any, ids: Sequence[str] | None = None,
                       metadatas: Sequence[Mapping[str, Any] | None] | None = None,
                       documents: Sequence[str | None] | None = None, collection: str | None = None, *,
                       ack: str | None = None, request_id: str | None = None,
                       batch_size: int = MAX_BATCH_ROWS, progress: Progress | None = None) -> Any:
        """Insert a batch (list of lists or a 2-d numpy array).

        Up to ``batch_size`` rows are ONE journal entry (atomic). A larger input is
        sent as several requests of ``batch_size`` rows, each atomic on its own,
        with request ids ``<request_id>-<i>``: calling again with the same
        ``request_id`` after a failure stores the missing batches only.

        Args:
            batch_size: rows per request, 1..10,000 (the server's limit, the default).
            progress: ``progress(rows_done, rows_total)`` after each acknowledged batch.
        Returns:
            WriteResult; for a split call the merged result (``.batches`` holds each batch's).
        """
        return self._write_batches(vectors, ids, metadatas, documents, collection, upsert=False, ack=ack,
                                   request_id=request_id, batch_size=batch_size, progress=progress)

    def upsert_vector(self, id: str, vector: Any, metadata: Mapping[str, Any] | None = None,
                      document: str | None = None, collection: str | None = None, *,
                      ack: str | None = None, request_id: str | None = None) -> Any:
        """Insert or replace the record ``id``."""
        return self._run(self._written(_calls.write_one(
            vector, id, metadata, document, collection, upsert=True, session_token=self._token(), ack=ack,
            request_id=request_id)))

    def upsert_vectors(self, vectors: Any, ids: Sequence[str],
                       metadatas: Sequence[Mapping[str, Any] | None] | None = None,
                       documents: Sequence[str | None] | None = None, collection: str | None = None, *,
                       ack: str | None = None, request_id: str | None = None,
                       batch_size: int = MAX_BATCH_ROWS, progress: Progress | None = None) -> Any:
        """Insert or replace a batch; split like :meth:`insert_vectors` above ``batch_size`` rows."""
        return self._write_batches(vectors, ids, metadatas, documents, collection, upsert=True, ack=ack,
                                   request_id=request_id, batch_size=batch_size, progress=progress)

    def delete_vector(self, id: str, collection: str | None = None, *, ack: str | None = None,
                      request_id: str | None = None) -> Any:
        """Delete one record (idempotent).

        Returns:
            DeleteResult: the delete entry's position and ``deleted`` (whether ``id`` existed).
        """
        return self.delete_vectors([id], collection, ack=ack, request_id=request_id)

    def delete_vectors(self, ids: Sequence[str], collection: str | None = None, *, ack: str | None = None,
                       request_id: str | None = None, batch_size: int = MAX_BATCH_ROWS,
                       progress: Progress | None = None) -> Any:
        """Delete records (idempotent); more than ``batch_size`` ids are split like inserts.

        Returns:
            DeleteResult with ``deleted``, ``deleted_ids`` and ``missing_ids`` (HTTP and gRPC).
        """
        _batching.check_batch_size(batch_size)
        ids = list(ids)
        spans = _batching.bounds(len(ids), batch_size)
        base = request_id or _calls.new_request_id()

        def batches() -> Batches:
            for i, (start, stop) in enumerate(spans):
                rid = base if len(spans) == 1 else _batching.batch_request_id(base, i)
                yield self._written(_calls.delete(ids[start:stop], collection, session_token=self._token(),
                                                  ack=ack, request_id=rid)), stop - start

        def merge(results: list[DeleteResult]) -> DeleteResult:
            return results[0] if len(results) == 1 else _batching.merge_deletes(results, base)

        return self._run_batches(batches(), len(ids), merge, progress)

    def _write_batches(self, vectors: Any, ids: Sequence[str] | None,
                       metadatas: Sequence[Mapping[str, Any] | None] | None,
                       documents: Sequence[str | None] | None, collection: str | None, *, upsert: bool,
                       ack: str | None, request_id: str | None, batch_size: int,
                       progress: Progress | None) -> Any:
        _batching.check_batch_size(batch_size)
        matrix = _calls.as_matrix(vectors)
        rows = int(matrix.shape[0])
        spans = _batching.bounds(rows, batch_size)
        if len(spans) > 1:
            # Checked before the first batch is stored, not by the server half-way through.
            _batching.check_lengths(rows, ids=ids, metadatas=metadatas, documents=documents)
        base = request_id or _calls.new_request_id()

        def batches() -> Batches:
            for i, (start, stop) in enumerate(spans):
                rid = base if len(spans) == 1 else _batching.batch_request_id(base, i)
                yield self._written(_calls.write(
                    matrix[start:stop], _batching.part(ids, start, stop),
                    _batching.part(metadatas, start, stop), _batching.part(documents, start, stop),
                    collection, upsert=upsert, session_token=self._token(), ack=ack,
                    request_id=rid)), stop - start

        def merge(results: list[WriteResult]) -> WriteResult:
            return results[0] if len(results) == 1 else _batching.merge_writes(results, base)

        return self._run_batches(batches(), rows, merge, progress)

    def get_vector(self, id: str, collection: str | None = None, consistency_level: Level = None,
                   include_vector: bool = True) -> Any:
        """The record ``id`` (VectorRecord); raises NotFound if it does not exist.

        ``consistency_level`` None: read-your-writes over this client's own writes, as searches."""
        level, token = self._read(consistency_level)
        return self._run(_calls.get(id, collection, level, include_vector, token))

    # ---- listing -------------------------------------------------------------
    def list_records(self, collection: str | None = None, *, after: str | None = None,
                     limit: int = _listing.DEFAULT_PAGE_SIZE, include_vectors: bool = False,
                     include_metadata: bool = True, include_documents: bool = True,
                     filters: Mapping[str, Any] | None = None, consistency_level: Level = None,
                     min_required_offset: int | None = None) -> Any:
        """One page of the collection's records in id order, after the id ``after``.

        Args:
            after: the previous page's ``next_cursor`` (None = from the first record).
            limit: records per page, 1..1000.
            filters: metadata filter, the grammar of searches.
            consistency_level: eventual, read_your_writes or strong; None = read_your_writes over
                this client's own writes once it has written, eventual before.
            min_required_offset: read at least this offset of the collection's journal partition.
        Returns:
            RecordPage(.records, .next_cursor (None at the end), .index_version, .partition).
        """
        level, token = self._read(consistency_level)
        return self._run(_listing.list_records(
            collection, after=after, limit=limit, include_vectors=include_vectors,
            include_metadata=include_metadata, include_documents=include_documents, filters=filters,
            consistency_level=level, min_required_offset=min_required_offset, session_token=token))

    def _pager(self, collection: str | None, *, page_size: int, after: str | None, include_vectors: bool,
               include_metadata: bool, include_documents: bool, filters: Mapping[str, Any] | None,
               consistency_level: Level, min_required_offset: int | None) -> _listing.Pager:
        level, token = self._read(consistency_level)
        return _listing.Pager(collection, page_size=page_size, after=after, include_vectors=include_vectors,
                              include_metadata=include_metadata, include_documents=include_documents,
                              filters=filters, consistency_level=level,
                              min_required_offset=min_required_offset, session_token=token)

    # ---- collections ---------------------------------------------------------
    def create_collection(self, name: str, dim: int, metric: str = "cosine", shards: int | None = None,
                          replicas: int | None = None, hnsw: Mapping[str, int] | None = None) -> Any:
        """Create a collection; Conflict if the name exists."""
        return self._run(_calls.create_collection(name, dim, metric, shards, replicas, hnsw))

    def get_collection(self, name: str) -> Any:
        return self._run(_calls.get_collection(name))

    def list_collections(self) -> Any:
        return self._run(_calls.list_collections())

    def drop_collection(self, name: str) -> Any:
        """Drop a collection and its records; NotFound if it does not exist."""
        return self._run(_calls.drop_collection(name))

    def alter_collection(self, name: str, *, ef_search: int) -> Any:
        return self._run(_calls.alter_collection(name, ef_search))

    # ---- operations ----------------------------------------------------------
    def get_operation(self, request_id: str) -> Any:
        """Where the write with ``request_id`` is: partition, offset, HLC, replicas applied/pending."""
        return self._run(_calls.get_operation(request_id))


def _run_batches_sync(run: Callable[[Call[Any]], Any], batches: Batches, total: int,
                      merge: Callable[[list[Any]], Any], progress: Progress | None) -> Any:
    results, done = [], 0
    for call, rows in batches:
        results.append(run(call))
        done += rows
        if progress is not None:
            progress(done, total)
    return merge(results)


async def _run_batches_async(run: Callable[[Call[Any]], Any], batches: Batches, total: int,
                             merge: Callable[[list[Any]], Any], progress: Progress | None) -> Any:
    results, done = [], 0
    for call, rows in batches:
        results.append(await run(call))
        done += rows
        if progress is not None:
            progress(done, total)
    return merge(results)


_ITER_DOC = """Every record of ``collection`` (from the first id after ``after``), in id order.

        Reads pages of ``page_size`` records (1..1000) as they are consumed: memory
        stays bounded by one page whatever the collection's size. Each page after
        the first reads at least at the journal offset the page before it was read
        at, so the listing never goes back in time. A record written or deleted
        while the listing runs appears if its id is still ahead of the cursor, and
        never twice. Options as :meth:`list_records`.
        """


class _SyncListing(_Operations):
    def iter_records(self, collection: str | None = None, *, page_size: int = _listing.DEFAULT_PAGE_SIZE,
                     after: str | None = None, include_vectors: bool = False, include_metadata: bool = True,
                     include_documents: bool = True, filters: Mapping[str, Any] | None = None,
                     consistency_level: Level = None,
                     min_required_offset: int | None = None) -> Iterator[VectorRecord]:
        pager = self._pager(collection, page_size=page_size, after=after, include_vectors=include_vectors,
                            include_metadata=include_metadata, include_documents=include_documents,
                            filters=filters, consistency_level=consistency_level,
                            min_required_offset=min_required_offset)
        while (call := pager.next_call()) is not None:
            page: RecordPage = self._run(call)
            pager.advance(page)
            yield from page.records

    iter_records.__doc__ = _ITER_DOC


class _AsyncListing(_Operations):
    async def iter_records(self, collection: str | None = None, *,
                           page_size: int = _listing.DEFAULT_PAGE_SIZE, after: str | None = None,
                           include_vectors: bool = False, include_metadata: bool = True,
                           include_documents: bool = True, filters: Mapping[str, Any] | None = None,
                           consistency_level: Level = None,
                           min_required_offset: int | None = None) -> AsyncIterator[VectorRecord]:
        pager = self._pager(collection, page_size=page_size, after=after, include_vectors=include_vectors,
                            include_metadata=include_metadata, include_documents=include_documents,
                            filters=filters, consistency_level=consistency_level,
                            min_required_offset=min_required_offset)
        while (call := pager.next_call()) is not None:
            page: RecordPage = await self._run(call)
            pager.advance(page)
            for record in page.records:
                yield record

    iter_records.__doc__ = _ITER_DOC


class _SessionOperations(_Operations):
    def __init__(self, client: _Operations, token: str = "") -> None:
        self._client = client
        self._state = _SessionState(token)

    def _run(self, call: Call[Any]) -> Any:
        return self._client._run(call)

    def _run_batches(self, batches: Batches, total: int, merge: Callable[[list[Any]], Any],
                     progress: Progress | None) -> Any:
        return self._client._run_batches(batches, total, merge, progress)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(client={self._client!r}, offsets={self.offsets!r})"

    def export_token(self) -> str:
        """The session as a string (e.g. for a web app's cookie); ``import_session`` restores it."""
        return self._state.token

    @property
    def offsets(self) -> dict[str, int]:
        """Journal offset per partition this session has written up to."""
        return self._state.offsets()


class Session(_SyncListing, _SessionOperations):
    """A read-your-writes session of a :class:`VecraftClient`: same methods, writes tracked."""


class AsyncSession(_AsyncListing, _SessionOperations):
    """A read-your-writes session of an :class:`AsyncVecraftClient`: same coroutines, writes tracked."""


def _transport_args(api_key: str | None, timeout: float, retry: RetryConfig | None, ca_cert: PathArg,
                    client_cert: PathArg, client_key: PathArg) -> dict[str, Any]:
    def text(path: PathArg) -> str | None:
        return os.fspath(path) if path is not None else None

    tls = TlsConfig(ca_cert=text(ca_cert), client_cert=text(client_cert), client_key=text(client_key))
    return {"api_key": api_key, "timeout": timeout, "retry": retry or RetryConfig(), "tls": tls}


class VecraftClient(_SyncListing):
    """Synchronous client.

    Args:
        endpoint: ``http://host:port`` (or ``https://``) for HTTP; ``grpc://host:port`` or
            ``host:port`` for gRPC. Any other form raises ValueError at once.
        api_key: sent as ``Authorization: Bearer <key>``.
        timeout: per-request timeout in seconds.
        transport: ``"http"`` (default) or ``"grpc"``.
        retry: retry policy for 429 / 503 / connection failures.
        ca_cert: path of the CA certificate (PEM) that signed the gateway's certificate, for
            ``https://`` and ``grpcs://`` endpoints (default: the system's trust store). The
            gateway's certificate is always verified.
        client_cert, client_key: a client certificate and its key (PEM paths), for a gateway
            that requires one.

    A plaintext endpoint (``http://``, ``grpc://``) to a gateway that speaks TLS raises
    :class:`InvalidRequest` saying so at the first call, without retrying.
    """

    def __init__(self, endpoint: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0, transport: Transport = "http", *,
                 retry: RetryConfig | None = None, ca_cert: PathArg = None, client_cert: PathArg = None,
                 client_key: PathArg = None) -> None:
        args = _transport_args(api_key, timeout, retry, ca_cert, client_cert, client_key)
        if transport == "http":
            self._transport: HttpTransport | GrpcTransport = HttpTransport(endpoint, **args)
        elif transport == "grpc":
            self._transport = GrpcTransport(endpoint, **args)
        else:
            raise ValueError(f"transport must be 'http' or 'grpc', not {transport!r}")
        self._transport_name = transport
        self._state = _SessionState()

    def _run(self, call: Call[Any]) -> Any:
        return self._transport.execute(call)

    def _run_batches(self, batches: Batches, total: int, merge: Callable[[list[Any]], Any],
                     progress: Progress | None) -> Any:
        return _run_batches_sync(self._run, batches, total, merge, progress)

    @property
    def endpoint(self) -> str:
        """The server this client talks to (``http(s)://host:port`` or ``grpc(s)://host:port``)."""
        return self._transport.endpoint

    @property
    def transport(self) -> Transport:
        return self._transport_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.endpoint!r}, transport={self._transport_name!r})"

    def create_session(self) -> Session:
        """A session whose READ_YOUR_WRITES searches see its own writes."""
        return Session(self)

    def import_session(self, token: str) -> Session:
        """Resume a session from :meth:`Session.export_token`."""
        return Session(self, token)

    def import_file(self, path: str | os.PathLike[str], collection: str, **options: Any) -> Any:
        """Bulk-import a JSON Lines, Parquet or .npy file (resumable); see ``_bulk.import_file``."""
        from vecraft_client import _bulk
        return _bulk.import_file(self, path, collection, **options)

    def export(self, collection: str, path: str | os.PathLike[str], **options: Any) -> Any:
        """Write every record of ``collection`` to a file; see :func:`vecraft_client._bulk.export`."""
        from vecraft_client import _bulk
        return _bulk.export(self, collection, path, **options)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> VecraftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncVecraftClient(_AsyncListing):
    """asyncio client: the same methods as :class:`VecraftClient`, as coroutines."""

    def __init__(self, endpoint: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0, transport: Transport = "http", *,
                 retry: RetryConfig | None = None, ca_cert: PathArg = None, client_cert: PathArg = None,
                 client_key: PathArg = None) -> None:
        args = _transport_args(api_key, timeout, retry, ca_cert, client_cert, client_key)
        if transport == "http":
            self._transport: AsyncHttpTransport | AsyncGrpcTransport = AsyncHttpTransport(endpoint, **args)
        elif transport == "grpc":
            self._transport = AsyncGrpcTransport(endpoint, **args)
        else:
            raise ValueError(f"transport must be 'http' or 'grpc', not {transport!r}")
        self._transport_name = transport
        self._state = _SessionState()

    def _run(self, call: Call[Any]) -> Any:
        return self._transport.execute(call)

    def _run_batches(self, batches: Batches, total: int, merge: Callable[[list[Any]], Any],
                     progress: Progress | None) -> Any:
        return _run_batches_async(self._run, batches, total, merge, progress)

    @property
    def endpoint(self) -> str:
        """The server this client talks to (``http(s)://host:port`` or ``grpc(s)://host:port``)."""
        return self._transport.endpoint

    @property
    def transport(self) -> Transport:
        return self._transport_name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(endpoint={self.endpoint!r}, transport={self._transport_name!r})"

    def create_session(self) -> AsyncSession:
        return AsyncSession(self)

    def import_session(self, token: str) -> AsyncSession:
        return AsyncSession(self, token)

    async def close(self) -> None:
        await self._transport.close()

    async def __aenter__(self) -> AsyncVecraftClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
