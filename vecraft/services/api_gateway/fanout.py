"""Search fan-out: one QuerySearch per query node, in parallel, under one deadline.

Every shard of the collection is searched by a query node serving it, as the
routing table of the node registry says; the shards are covered with as few
nodes as possible and a node serving several of them gets one call naming them
all (:mod:`.query_routing`, :mod:`.shard_calls`). Each call carries the
remaining time of the request's deadline, slightly shortened so that a node
that cannot meet the consistency level in time answers with its own error
instead of being cut off by the transport. The shards of a node that is
unavailable are retried on other nodes serving them within the same deadline.

A shard may have several query nodes: a READ_YOUR_WRITES search with a
session passes the session's affinity key (:func:`affinity_key`) so that every
read of the session is served by the same nodes, which then sync once per
write instead of each node syncing in turn; other searches are spread
round-robin.

A shard that fails for availability reasons (503, 504) fails the whole search
unless the client allowed partial answers; then the others' results are
merged and the failed shards are listed. Any other error (a bad filter, an
unknown collection) fails the search whatever ``allow_partial`` says: it is
not a shard's outage.

Documents: the query processors' caches hold vectors and metadata only, so a
search that asks for documents reads them afterwards for the final top-k from
the storage replicas of the shards that hold the hits (one read per shard, in
parallel, within the search's deadline), each at or after the index version
that shard's search reflected. Keeping every document in every cache would
cost each processor the collection's text and put it on every search answer;
this way a search that does not ask pays nothing, and one that does pays one
extra parallel round trip for at most ``k`` records.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from vecraft.services.api_gateway.downstream import Downstream, SearchPart
from vecraft.services.api_gateway.merge import combine_consistency, max_allowed_staleness, merge_top_k
from vecraft.services.api_gateway.models import RequestContext, SearchHit, SearchOutcome, SearchQuery
from vecraft.shared.common.errors import DeadlineExceeded, Unavailable, VecraftError
from vecraft.shared.common.metrics import counter, latency_histogram, timed
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.routing import shard_of
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.convert import level_to_proto
from vecraft.shared.rpc.v1 import query_pb2, storage_pb2

_SEARCH_SECONDS = latency_histogram("gateway", "search", "search latency by requested level",
                                    ["level"])
_SHARD_FAILURES = counter("gateway", "shard_failures", "failed per-shard searches by error",
                          ["error"])
_DOCUMENT_SECONDS = latency_histogram("gateway", "search_documents",
                                      "reading the documents of a search's top-k from storage")

def affinity_key(query: SearchQuery, ctx: RequestContext, schema: CollectionSchema) -> str | None:
    """The key pinning a read-your-writes search to one query processor per shard, or None.

    A READ_YOUR_WRITES search with a session token is keyed by the token's session
    identity (tokens issued before it existed: by tenant and the partitions they name,
    which is stable for a session); a ``min_required_offset`` without a token by the
    collection. Other searches have no key and are spread.
    """
    ryw = query.level is ConsistencyLevel.READ_YOUR_WRITES and bool(ctx.session)
    if not ryw and query.min_required_offset <= 0:
        return None
    if ctx.session_id:
        return f"s:{ctx.session_id}"
    if ctx.session:
        return f"p:{ctx.tenant}:{','.join(sorted(ctx.session))}"
    return f"c:{schema.tenant}/{schema.name}"


class SearchFanout:
    """Runs one validated search over every shard of a collection."""

    def __init__(self, downstream: Downstream, *, default_timeout_ms: int) -> None:
        self._downstream = downstream
        self._default_timeout_ms = default_timeout_ms

    async def run(self, schema: CollectionSchema, query: SearchQuery, vector: np.ndarray, *,
                  min_offset: int, max_staleness_ms: int, ctx: RequestContext) -> SearchOutcome:
        """Search every shard of ``schema`` for ``vector`` (already validated, float32).

        ``min_offset`` is the offset of the collection's partition every shard
        must have applied (journal head for STRONG, the session's offset for
        READ_YOUR_WRITES, 0 otherwise); ``max_staleness_ms`` the bound for
        BOUNDED_STALENESS (0 for other levels).
        """
        timeout_s = (query.timeout_ms or self._default_timeout_ms) / 1000.0
        deadline = time.monotonic() + timeout_s
        affinity = affinity_key(query, ctx, schema)
        base = query_pb2.QuerySearchRequest(
            collection=schema.name, tenant=schema.tenant,
            vector=np.ascontiguousarray(vector, dtype="<f4").tobytes(), k=query.k,
            filter_json=query.filter_json, ef_search=query.ef_search, level=level_to_proto(query.level),
            max_staleness_ms=max_staleness_ms, min_offset=min_offset)
        with timed(_SEARCH_SECONDS.labels(query.level.wire_name)):
            parts: list[SearchPart] = await self._downstream.search(range(schema.shards), base, deadline,
                                                                    affinity=affinity)
        ok: list[query_pb2.QuerySearchResponse] = []
        missing: list[int] = []
        failure: BaseException | None = None
        first_error: BaseException | None = None
        for part in sorted(parts, key=lambda p: p.shards):
            if part.answer is not None:
                ok.append(part.answer)
                continue
            error = part.error or Unavailable(f"no answer for shards {list(part.shards)}")
            self._count_failure(error)
            first_error = first_error or error
            if not (query.allow_partial and isinstance(error, Unavailable | DeadlineExceeded)):
                failure = failure or error
            missing.extend(part.shards)
        if failure is not None or not ok:
            # With allow_partial and every shard down, the first shard's error is the answer.
            raise self._failure(failure or first_error, missing, schema)
        hits = merge_top_k(ok, query.k, metric=schema.metric, include_documents=query.include_documents)
        if query.include_documents and hits:
            hits = await self._with_documents(schema, hits, ok, deadline)
        max_allowed = max_allowed_staleness(query.level, max_staleness_ms)
        report = combine_consistency([a.consistency_info for a in ok], query.level, max_allowed)
        partition = next((a.partition for a in ok if a.partition), schema.partition)
        return SearchOutcome(hits=hits, consistency=report, partition=partition,
                             missing_shards=sorted(missing))

    async def _with_documents(self, schema: CollectionSchema, hits: list[SearchHit],
                              answers: Sequence[query_pb2.QuerySearchResponse],
                              deadline: float) -> list[SearchHit]:
        """``hits`` with their documents, read from the storage replicas of their shards.

        Hits that already carry one (a processor that answered through a storage
        node) are kept as they are. A record deleted since its shard was searched
        keeps ``document`` empty.
        """
        version: dict[int, int] = {}
        for answer in answers:
            for shard in answer.shards:
                version[shard] = answer.consistency_info.index_version_used
        by_shard: dict[int, list[str]] = defaultdict(list)
        for hit in hits:
            if not hit.document:
                by_shard[shard_of(hit.id, schema.shards)].append(hit.id)
        if not by_shard:
            return hits
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("search deadline expired before the documents were read")
        with timed(_DOCUMENT_SECONDS):
            answers_by_shard = await asyncio.gather(*(
                self._downstream.get_records(shard, storage_pb2.ShardGetRequest(
                    collection=schema.name, tenant=schema.tenant, shard=shard, ids=ids,
                    min_offset=version.get(shard, 0), include_vectors=False), remaining)
                for shard, ids in by_shard.items()))
        documents = {rec.id: rec.document for answer in answers_by_shard for rec in answer.records}
        return [hit if hit.document or hit.id not in documents
                else dataclasses.replace(hit, document=documents[hit.id]) for hit in hits]

    @staticmethod
    def _count_failure(exc: BaseException) -> None:
        name = exc.wire_name if isinstance(exc, VecraftError) else type(exc).__name__
        _SHARD_FAILURES.labels(name).inc()

    @staticmethod
    def _failure(exc: BaseException | None, missing: list[int], schema: CollectionSchema
                 ) -> BaseException:
        """The error the client sees, with the failed shards in its details."""
        if isinstance(exc, VecraftError):
            exc.details.setdefault("collection", schema.name)
            if isinstance(exc, Unavailable | DeadlineExceeded):
                exc.details.setdefault("failed_shards", sorted(missing))
            return exc
        if exc is not None:
            return exc
        return Unavailable(f"collection {schema.name!r} has no shard to search",
                           details={"failed_shards": sorted(missing)})

