"""What both framework adapters need from the SDK, written once.

- searches that return each hit's document (the HTTP API leaves it out unless
  asked; the adapters keep the text there);
- a collection created on first write with the embedding's dimension;
- one read-your-writes token shared by a sync and an async session, so a
  store written through ``add_texts`` sees it in ``asimilarity_search``;
- reading several records by id, and ranking candidates by maximal marginal
  relevance.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft_client import _calls
from vecraft_client._client import AsyncSession, AsyncVecraftClient, Session, VecraftClient
from vecraft_client._errors import Conflict, NotFound
from vecraft_client._models import Collection, SearchResult, VectorRecord

Sync = VecraftClient | Session
Async = AsyncVecraftClient | AsyncSession


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """How the adapters read: the consistency level of searches and reads by id."""

    consistency_level: ConsistencyLevel | None = None
    #: Staleness bound of BOUNDED_STALENESS searches.
    max_staleness_ms: int | None = None

    @classmethod
    def of(cls, level: ConsistencyLevel | str | None, max_staleness_ms: int | None) -> ReadOptions:
        parsed = ConsistencyLevel.parse(level) if level is not None else None
        if parsed is None and max_staleness_ms is not None:
            parsed = ConsistencyLevel.BOUNDED_STALENESS
        return cls(parsed, max_staleness_ms)

    @property
    def session(self) -> bool:
        """Reads must see this store's own writes: writes and reads go through one session."""
        return self.consistency_level is ConsistencyLevel.READ_YOUR_WRITES

    @property
    def get_level(self) -> ConsistencyLevel | None:
        """The level of a read by id: bounded staleness applies to searches only (eventual there)."""
        if self.consistency_level is ConsistencyLevel.BOUNDED_STALENESS:
            return ConsistencyLevel.EVENTUAL
        return self.consistency_level


def sessions(client: VecraftClient | None, async_client: AsyncVecraftClient | None,
             options: ReadOptions) -> tuple[Sync | None, Async | None]:
    """The clients the adapter calls: plain, or (read-your-writes) sessions sharing one token."""
    if not options.session:
        return client, async_client
    sync = client.create_session() if client is not None else None
    asy = async_client.create_session() if async_client is not None else None
    if sync is not None and asy is not None:
        # One thread-safe token for both: a write made through either is seen by reads of both.
        asy._state = sync._state
    return sync, asy


def search_call(ops: Sync | Async, vector: Sequence[float], k: int, options: ReadOptions,
                filters: Mapping[str, Any] | None, collection: str) -> _calls.Call[Any]:
    """A search whose hits carry their documents (the adapters keep the text there)."""
    level, token = ops._read(options.consistency_level, options.max_staleness_ms)
    return _calls.search(list(vector), k, level, options.max_staleness_ms, filters,
                         collection, None, token, None, None, include_documents=True)


def search(ops: Sync, vector: Sequence[float], k: int, options: ReadOptions,
           filters: Mapping[str, Any] | None, collection: str) -> list[SearchResult]:
    """Top-``k`` hits with documents; [] while the collection does not exist yet."""
    try:
        return list(ops._run(search_call(ops, vector, k, options, filters, collection)).results)
    except NotFound:
        if _collection_exists(ops, collection):
            raise
        return []


async def asearch(ops: Async, vector: Sequence[float], k: int, options: ReadOptions,
                  filters: Mapping[str, Any] | None, collection: str) -> list[SearchResult]:
    try:
        return list((await ops._run(search_call(ops, vector, k, options, filters, collection))).results)
    except NotFound:
        try:
            await ops.get_collection(collection)
        except NotFound:
            return []
        raise


def _collection_exists(ops: Sync, collection: str) -> bool:
    try:
        ops.get_collection(collection)
    except NotFound:
        return False
    return True


def ensure_collection(ops: Sync, name: str, dim: int, metric: str) -> Collection:
    """The collection ``name``, created with ``dim`` and ``metric`` if it does not exist."""
    try:
        return ops.get_collection(name)
    except NotFound:
        pass
    try:
        return ops.create_collection(name, dim=dim, metric=metric)
    except Conflict:  # created concurrently
        return ops.get_collection(name)


async def aensure_collection(ops: Async, name: str, dim: int, metric: str) -> Collection:
    try:
        return await ops.get_collection(name)
    except NotFound:
        pass
    try:
        return await ops.create_collection(name, dim=dim, metric=metric)
    except Conflict:
        return await ops.get_collection(name)


def get_many(ops: Sync, ids: Sequence[str], collection: str, options: ReadOptions,
             include_vector: bool = False) -> list[VectorRecord]:
    """The records of ``ids`` that exist, in the order asked (missing ones skipped)."""
    found = []
    for record_id in ids:
        try:
            found.append(ops.get_vector(record_id, collection=collection, consistency_level=options.get_level,
                                        include_vector=include_vector))
        except NotFound:
            continue
    return found


async def aget_many(ops: Async, ids: Sequence[str], collection: str, options: ReadOptions,
                    include_vector: bool = False) -> list[VectorRecord]:
    async def one(record_id: str) -> VectorRecord | None:
        try:
            return await ops.get_vector(record_id, collection=collection,
                                        consistency_level=options.get_level, include_vector=include_vector)
        except NotFound:
            return None

    return [r for r in await asyncio.gather(*(one(i) for i in ids)) if r is not None]


def mmr(query: Sequence[float], candidates: Sequence[Sequence[float]], k: int,
        lambda_mult: float) -> list[int]:
    """Indexes of up to ``k`` candidates picked by maximal marginal relevance (cosine similarity).

    Each step takes the candidate maximising
    ``lambda_mult * sim(query, c) - (1 - lambda_mult) * max(sim(c, chosen))``.
    """
    if not candidates or k <= 0:
        return []
    mat = np.asarray(candidates, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    mat_n = mat / np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
    q_n = q / max(float(np.linalg.norm(q)), 1e-12)
    to_query = mat_n @ q_n
    pairwise = mat_n @ mat_n.T
    chosen = [int(np.argmax(to_query))]
    while len(chosen) < min(k, len(candidates)):
        redundancy = pairwise[:, chosen].max(axis=1)
        score = lambda_mult * to_query - (1 - lambda_mult) * redundancy
        score[chosen] = -np.inf
        chosen.append(int(np.argmax(score)))
    return chosen


def relevance_fn(metric: str) -> Callable[[float], float]:
    """Vecraft's score (higher is better) mapped to 0..1 for unit-length embeddings.

    cosine and ip: ``(1 + s) / 2``; l2 (the score is ``-‖a-b‖²``): ``1 - ‖a-b‖ / √2``,
    the same as LangChain's Euclidean function on the distance.
    """
    if metric == "l2":
        return lambda s: 1.0 - math.sqrt(max(0.0, -s)) / math.sqrt(2)
    if metric in ("cosine", "ip"):
        return lambda s: (1.0 + s) / 2.0
    raise ValueError(f"unknown metric {metric!r}: cosine, l2 or ip")
