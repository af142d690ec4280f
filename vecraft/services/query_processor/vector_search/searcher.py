"""One search request end to end: validate, meet the consistency level, search, report truthfully.

Order of work for a request served from the cache:

1. validate (``InvalidRequest`` before anything else happens);
2. find the collection's schema; a collection the cache does not know yet is
   only reported missing (``NotFound``) after every partition met the level
   (a strong read must see a collection created just before it);
3. loop: measure the partition's applied offset and staleness; stop when the
   level is met; otherwise sync (pull-before-read, single flight) to the
   target the decision names;
4. search the served shards in the thread pool and merge their top-k;
5. answer with ``consistency_info`` measured in step 3 right before the
   search: the state searched is at least that fresh.

The whole request runs under one deadline (``timeout_ms``, else
``--sync-timeout-ms``, capped by the caller's gRPC deadline), and every journal
call made for it (head reads, pulls, also a pull it shares with other requests)
ends within what is left of it. Missing it is ``DeadlineExceeded``; an
unreachable journal is ``Unavailable``. A level is never silently downgraded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from vecraft.services.query_processor import metrics
from vecraft.services.query_processor.cache import ShardCache
from vecraft.services.query_processor.vector_search.consistency import (
    ReadRequirement,
    decide,
    is_met,
)
from vecraft.services.query_processor.vector_search.fallback import StorageFallback
from vecraft.services.query_processor.vector_search.request import ParsedQuery, parse_query
from vecraft.shared.common.errors import DeadlineExceeded, InvalidRequest, NotFound, Unavailable, VecraftError
from vecraft.shared.model.consistency import ConsistencyLevel, ConsistencyReport
from vecraft.shared.model.ranking import merge_top_k
from vecraft.shared.model.records import ShardHits
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.replica.follower import PartitionFollower
from vecraft.shared.rpc.convert import consistency_to_proto, hits_to_proto
from vecraft.shared.rpc.v1 import query_pb2


@dataclass(frozen=True, slots=True)
class MetState:
    """The partition state a request will search, measured right before the search."""

    applied: int
    staleness_ms: int
    synced: bool


class VectorSearcher:
    """Serves ``QuerySearchRequest``s from the cache (or storage nodes while warming).

    Contract: :meth:`search` is safe to call concurrently; it raises
    InvalidRequest, NotFound, Unavailable or DeadlineExceeded and otherwise
    returns a response whose ``consistency_info`` is true of the state searched.
    """

    def __init__(self, cache: ShardCache, followers: Mapping[str, PartitionFollower], *,
                 sync_timeout_ms: int, warm: Callable[[], bool],
                 fallback: StorageFallback | None = None,
                 loading: Callable[[], Sequence[int]] = tuple) -> None:
        self.cache = cache
        self.followers = followers
        self.sync_timeout_ms = sync_timeout_ms
        self.warm = warm
        self.fallback = fallback
        #: The shards being loaded (named in the 503 of a request for a shard not served yet).
        self.loading = loading

    async def search(self, req: query_pb2.QuerySearchRequest,
                     time_remaining_s: float | None = None) -> query_pb2.QuerySearchResponse:
        """Answer ``req``; ``time_remaining_s`` is the caller's gRPC deadline, if any."""
        level_name = _level_label(req.level)
        start = time.perf_counter()
        try:
            q = parse_query(req, self.cache.shards, self.loading())
            timeout_s = (q.timeout_ms or self.sync_timeout_ms) / 1000.0
            if time_remaining_s is not None:
                timeout_s = min(timeout_s, time_remaining_s)
            deadline = asyncio.get_running_loop().time() + timeout_s
            try:
                async with asyncio.timeout(timeout_s):
                    if self.warm():
                        resp = await self._from_cache(q, deadline)
                        metrics.CACHE_HITS.labels(level_name).inc()
                    else:
                        resp = await self._from_storage(q, timeout_s)
            except TimeoutError:
                raise _missed(q, timeout_s) from None
            except DeadlineExceeded as err:
                # A journal call (or storage node) given the rest of the budget missed it first.
                raise _missed(q, timeout_s, err) from err
        except VecraftError as err:
            metrics.REQUESTS.labels(level_name, err.wire_name).inc()
            raise
        finally:
            metrics.REQUEST_SECONDS.labels(level_name).observe(time.perf_counter() - start)
        metrics.REQUESTS.labels(level_name, "ok").inc()
        return resp

    # ---- cache path ------------------------------------------------------------
    async def _from_cache(self, q: ParsedQuery, deadline: float) -> query_pb2.QuerySearchResponse:
        schema, synced_for_schema = await self._schema(q, deadline)
        if q.vector.size != schema.dim:
            raise InvalidRequest(f"vector has {q.vector.size} dimensions, collection {schema.name!r} "
                                 f"has {schema.dim}", details={"expected_dim": schema.dim})
        partition = schema.partition
        if partition not in self.followers:
            raise Unavailable(f"partition {partition} of collection {schema.name!r} is not cached here")
        state = await self._meet(partition, q.requirement, deadline)
        if synced_for_schema:
            state = MetState(state.applied, state.staleness_ms, True)
        shards = [s for s in q.shards if s < max(1, schema.shards)]
        parts = await self.cache.search(shards, q.tenant, q.collection, q.vector, q.k, q.filter, q.ef_search)
        return self._response(q, partition, shards, parts, state, cache_hit=True)

    async def _schema(self, q: ParsedQuery, deadline: float) -> tuple[CollectionSchema, bool]:
        """The collection's schema and whether finding it needed a sync."""
        try:
            return self.cache.schema(q.tenant, q.collection), False
        except NotFound:
            if q.level is ConsistencyLevel.EVENTUAL and not q.requirement.min_offset:
                raise
        # The collection may have been created after the cached state. Its
        # partition is unknown, and a session offset, min_required_offset or
        # gateway head belongs to that unknown partition, so every partition must
        # meet the level (a bounded read without an offset its bound, the others
        # the journal head) before "not found".
        miss_req = (q.requirement if q.level is ConsistencyLevel.BOUNDED_STALENESS
                    and not q.requirement.min_offset
                    else ReadRequirement(ConsistencyLevel.STRONG, latest=True))
        states = await asyncio.gather(*(self._meet(p, miss_req, deadline) for p in self.followers))
        return self.cache.schema(q.tenant, q.collection), any(st.synced for st in states)

    async def _meet(self, partition: str, req: ReadRequirement, deadline: float) -> MetState:
        """Sync ``partition`` until the state meets ``req``; the state measured last.

        Every journal call ends by ``deadline`` (event-loop time): the request's budget.
        """
        self.cache.halts.check(partition)
        follower = self.followers[partition]
        loop = asyncio.get_running_loop()
        synced = False
        asked_head = False
        head_target = 0
        while True:
            applied = follower.applied_offset
            staleness = follower.staleness_ms()
            if ((asked_head or not req.latest)
                    and is_met(req, applied=applied, staleness_ms=staleness, head_target=head_target)):
                return MetState(applied, staleness, synced)
            decision = decide(req, applied=applied, staleness_ms=staleness)
            if decision.target is None:
                # Bounded reads ask again on every round: the head they need moves on.
                target = await follower.journal_head(timeout_s=deadline - loop.time())
                if req.latest and not asked_head:
                    head_target, asked_head = target, True
            else:
                target = decision.target
            synced = (await follower.sync(target, timeout_s=deadline - loop.time())).pulled or synced

    # ---- storage path ----------------------------------------------------------
    async def _from_storage(self, q: ParsedQuery, timeout_s: float) -> query_pb2.QuerySearchResponse:
        if self.fallback is None:
            raise Unavailable("query processor is warming up its cache and has no storage nodes to ask",
                              retry_after_ms=500)
        metrics.STORAGE_FALLBACKS.labels(q.level.wire_name).inc()
        answer = await self.fallback.search(q, timeout_s)
        state = MetState(answer.index_version, answer.staleness_ms, answer.sync_performed)
        return self._response(q, answer.partition, list(q.shards), answer.hits, state, cache_hit=False)

    # ---- answer ----------------------------------------------------------------
    @staticmethod
    def _response(q: ParsedQuery, partition: str, shards: list[int], parts: list[ShardHits], state: MetState,
                  *, cache_hit: bool) -> query_pb2.QuerySearchResponse:
        info = ConsistencyReport(
            level_requested=q.level,
            level_achieved=q.level,
            staleness_ms=state.staleness_ms,
            max_allowed_staleness_ms=q.requirement.max_staleness_ms,
            index_version=state.applied,
            cache_hit=cache_hit,
            sync_performed=state.synced,
        )
        return query_pb2.QuerySearchResponse(results=hits_to_proto(merge_top_k(parts, q.k)),
                                             consistency_info=consistency_to_proto(info),
                                             partition=partition, shards=shards)


def _missed(q: ParsedQuery, timeout_s: float, cause: DeadlineExceeded | None = None) -> DeadlineExceeded:
    """The error of a request whose level was not met within its budget."""
    ms = int(timeout_s * 1000)
    name = q.level.wire_name
    why = f": {cause.message}" if cause is not None else ""
    return DeadlineExceeded(f"consistency level {name} could not be met within {ms} ms{why}",
                            details={"level": name, "timeout_ms": ms})


def _level_label(value: int) -> str:
    """Metric label of a raw level (an unknown one is counted, then refused by parsing)."""
    try:
        return ConsistencyLevel(value).wire_name
    except ValueError:
        return "unknown"
