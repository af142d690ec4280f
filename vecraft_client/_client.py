"""VecraftClient, AsyncVecraftClient and their sessions.

The operations are written once, in :class:`_Operations`: each method builds a
:class:`~vecraft_client._calls.Call` and hands it to ``self._run``. The sync
client's ``_run`` executes it and returns the result; the async client's
returns a coroutine, so the same methods are awaited there. Sessions wrap a
client: they add their token to every request and merge the token of every
write they make.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft_client import _calls, _session_token
from vecraft_client._calls import Call
from vecraft_client._models import WriteResult
from vecraft_client._transport import (
    AsyncGrpcTransport,
    AsyncHttpTransport,
    GrpcTransport,
    HttpTransport,
    RetryConfig,
)

Transport = Literal["http", "grpc"]
Level = ConsistencyLevel | str | None


class _Operations:
    """Every public operation; subclasses decide how a Call is run."""

    def _run(self, call: Call[Any]) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def _token(self) -> str | None:
        """The session token to send (sessions only)."""
        return None

    def _written(self, call: Call[WriteResult]) -> Call[WriteResult]:
        """Hook for sessions to record a write's position."""
        return call

    # ---- search --------------------------------------------------------------
    def vector_search(self, vector: Any, k: int = 10, consistency_level: Level = None,
                      max_staleness_ms: int | None = None, filters: Mapping[str, Any] | None = None,
                      collection: str | None = None, *, min_required_offset: int | None = None,
                      ef_search: int | None = None, timeout_ms: int | None = None) -> Any:
        """Top-``k`` most similar records at the requested consistency level.

        Args:
            vector: query vector (list of floats or a 1-d numpy array).
            consistency_level: ``ConsistencyLevel`` or its name; None = the server default (eventual).
            max_staleness_ms: bound for BOUNDED_STALENESS.
            filters: metadata filter (``{"category": "documents"}``, ``$in``, ``$gte``, ``$and`` ...).
            collection: collection name; None = "default".
            min_required_offset: READ_YOUR_WRITES / client-driven sync: the journal offset to reach.
        Returns:
            SearchResponse with ``.results`` and ``.consistency_info``.
        """
        return self._run(_calls.search(vector, k, consistency_level, max_staleness_ms, filters, collection,
                                       min_required_offset, self._token(), ef_search, timeout_ms))

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
                       ack: str | None = None, request_id: str | None = None) -> Any:
        """Insert a batch (list of lists or a 2-d numpy array) as ONE journal entry (atomic)."""
        return self._run(self._written(_calls.write(
            vectors, ids, metadatas, documents, collection, upsert=False, session_token=self._token(),
            ack=ack, request_id=request_id)))

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
                       ack: str | None = None, request_id: str | None = None) -> Any:
        """Insert or replace a batch as one journal entry."""
        return self._run(self._written(_calls.write(
            vectors, ids, metadatas, documents, collection, upsert=True, session_token=self._token(), ack=ack,
            request_id=request_id)))

    def delete_vector(self, id: str, collection: str | None = None, *, ack: str | None = None,
                      request_id: str | None = None) -> Any:
        """Delete one record (idempotent). Returns the WriteResult of the delete entry."""
        return self.delete_vectors([id], collection, ack=ack, request_id=request_id)

    def delete_vectors(self, ids: Sequence[str], collection: str | None = None, *, ack: str | None = None,
                       request_id: str | None = None) -> Any:
        return self._run(self._written(_calls.delete(
            ids, collection, session_token=self._token(), ack=ack, request_id=request_id)))

    def get_vector(self, id: str, collection: str | None = None, consistency_level: Level = None,
                   include_vector: bool = True) -> Any:
        """The record ``id`` (VectorRecord); raises NotFound if it does not exist."""
        return self._run(_calls.get(id, collection, consistency_level, include_vector, self._token()))

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


class _SessionOperations(_Operations):
    def __init__(self, client: _Operations, token: str = "") -> None:
        self._client = client
        self._state = _SessionState(token)

    def _run(self, call: Call[Any]) -> Any:
        return self._client._run(call)

    def _token(self) -> str | None:
        return self._state.token or None

    def _written(self, call: Call[WriteResult]) -> Call[WriteResult]:
        call.on_result.append(self._state.record)
        return call

    def export_token(self) -> str:
        """The session as a string (e.g. for a web app's cookie); ``import_session`` restores it."""
        return self._state.token

    @property
    def offsets(self) -> dict[str, int]:
        """Journal offset per partition this session has written up to."""
        return self._state.offsets()


class Session(_SessionOperations):
    """A read-your-writes session of a :class:`VecraftClient`: same methods, writes tracked."""


class AsyncSession(_SessionOperations):
    """A read-your-writes session of an :class:`AsyncVecraftClient`: same coroutines, writes tracked."""


def _transport_args(api_key: str | None, timeout: float, retry: RetryConfig | None) -> dict[str, Any]:
    return {"api_key": api_key, "timeout": timeout, "retry": retry or RetryConfig()}


class VecraftClient(_Operations):
    """Synchronous client.

    Args:
        endpoint: ``http://127.0.0.1:8000`` for HTTP; ``127.0.0.1:50051`` (or ``grpc://...``) for gRPC.
        api_key: sent as ``Authorization: Bearer <key>``.
        timeout: per-request timeout in seconds.
        transport: ``"http"`` (default) or ``"grpc"``.
        retry: retry policy for 429 / 503 / connection failures.
    """

    def __init__(self, endpoint: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0, transport: Transport = "http", *,
                 retry: RetryConfig | None = None) -> None:
        args = _transport_args(api_key, timeout, retry)
        if transport == "http":
            self._transport: HttpTransport | GrpcTransport = HttpTransport(endpoint, **args)
        elif transport == "grpc":
            self._transport = GrpcTransport(endpoint, **args)
        else:
            raise ValueError(f"transport must be 'http' or 'grpc', not {transport!r}")

    def _run(self, call: Call[Any]) -> Any:
        return self._transport.execute(call)

    def create_session(self) -> Session:
        """A session whose READ_YOUR_WRITES searches see its own writes."""
        return Session(self)

    def import_session(self, token: str) -> Session:
        """Resume a session from :meth:`Session.export_token`."""
        return Session(self, token)

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> VecraftClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncVecraftClient(_Operations):
    """asyncio client: the same methods as :class:`VecraftClient`, as coroutines."""

    def __init__(self, endpoint: str = "http://127.0.0.1:8000", api_key: str | None = None,
                 timeout: float = 30.0, transport: Transport = "http", *,
                 retry: RetryConfig | None = None) -> None:
        args = _transport_args(api_key, timeout, retry)
        if transport == "http":
            self._transport: AsyncHttpTransport | AsyncGrpcTransport = AsyncHttpTransport(endpoint, **args)
        elif transport == "grpc":
            self._transport = AsyncGrpcTransport(endpoint, **args)
        else:
            raise ValueError(f"transport must be 'http' or 'grpc', not {transport!r}")

    def _run(self, call: Call[Any]) -> Any:
        return self._transport.execute(call)

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
