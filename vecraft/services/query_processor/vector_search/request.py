"""Validating a ``QuerySearchRequest`` into a :class:`ParsedQuery`.

Every malformed field is refused here with ``InvalidRequest`` naming it, before
any sync or search: an empty or ragged vector, NaN/inf, k out of range, an
unknown consistency level, a filter that is not JSON or breaks the filter
grammar. A shard this processor does not serve (not yet, or not any more: the
placement map moves shards between processors) is ``Unavailable`` (503) naming
it and what the processor serves, so the caller asks another processor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vecraft.services.query_processor.vector_search.consistency import ReadRequirement, requirement
from vecraft.shared.common.errors import InvalidRequest, Unavailable
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.filters import Filter
from vecraft.shared.model.limits import HNSW_EF_SEARCH_RANGE, MAX_DIM, MAX_K, MIN_K
from vecraft.shared.model.routing import DEFAULT_COLLECTION, DEFAULT_TENANT
from vecraft.shared.rpc.convert import filter_from_json, level_from_proto
from vecraft.shared.rpc.v1 import query_pb2


@dataclass(frozen=True, slots=True)
class ParsedQuery:
    """A validated search request."""

    tenant: str
    collection: str
    vector: np.ndarray
    k: int
    filter: Filter | None
    filter_json: str
    ef_search: int | None
    shards: tuple[int, ...]
    requirement: ReadRequirement
    timeout_ms: int

    @property
    def level(self) -> ConsistencyLevel:
        return self.requirement.level


def parse_query(req: query_pb2.QuerySearchRequest, served_shards: Sequence[int],
                loading_shards: Sequence[int] = ()) -> ParsedQuery:
    """Validate ``req`` for a processor serving ``served_shards`` (``loading_shards``: being loaded).

    Raises:
        InvalidRequest: any malformed field (see module doc).
        Unavailable: a shard of ``req`` is not served here (no shard is, when ``req`` names none).
    """
    level = level_from_proto(req.level)
    if len(req.vector) == 0 or len(req.vector) % 4:
        raise InvalidRequest("vector must be non-empty float32 little-endian bytes, "
                             f"got {len(req.vector)} bytes")
    vector = np.frombuffer(req.vector, dtype="<f4").astype(np.float32)
    if vector.size > MAX_DIM:
        raise InvalidRequest(f"vector has {vector.size} dimensions, at most {MAX_DIM} are allowed")
    if not np.all(np.isfinite(vector)):
        raise InvalidRequest("vector contains NaN or infinite values")
    if not MIN_K <= req.k <= MAX_K:
        raise InvalidRequest(f"k must be within {MIN_K}..{MAX_K}, got {req.k}")
    ef_search: int | None = None
    if req.ef_search:
        lo, hi = HNSW_EF_SEARCH_RANGE
        if not lo <= req.ef_search <= hi:
            raise InvalidRequest(f"ef_search must be within {lo}..{hi} (0 = collection default), "
                                 f"got {req.ef_search}")
        ef_search = req.ef_search
    flt = filter_from_json(req.filter_json)
    if req.timeout_ms < 0:
        raise InvalidRequest(f"timeout_ms must be >= 0, got {req.timeout_ms}")
    read = requirement(level, max_staleness_ms=req.max_staleness_ms, min_offset=req.min_offset)
    served = set(served_shards)
    shards = tuple(sorted(set(req.shards))) if req.shards else tuple(sorted(served))
    unknown = [s for s in shards if s not in served]
    if unknown or not shards:
        loading = sorted(set(loading_shards))
        what = (f"shard {unknown[0]} is not served by" if len(unknown) == 1
                else f"shards {unknown} are not served by" if unknown else "no shard is served by")
        raise Unavailable(f"{what} this query processor (it serves {sorted(served)}"
                          f"{f', loading {loading}' if loading else ''})",
                          details={"shards": unknown, "served_shards": sorted(served),
                                   "loading_shards": loading}, retry_after_ms=200)
    return ParsedQuery(
        tenant=req.tenant or DEFAULT_TENANT,
        collection=req.collection or DEFAULT_COLLECTION,
        vector=vector,
        k=req.k,
        filter=flt,
        filter_json=req.filter_json,
        ef_search=ef_search,
        shards=shards,
        requirement=read,
        timeout_ms=req.timeout_ms,
    )
