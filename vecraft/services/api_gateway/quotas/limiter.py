"""The checks of quotas and rate limits, for HTTP and gRPC alike (docs/quotas.md).

Every request the gateway's domain layer runs is checked here after its key's role and
scope (a request refused by auth never spends quota) and before anything is appended or
created, so a refused request changes nothing. A request is checked against its tenant's
quota and, when it runs with an API key that has its own quota, that key's quota too; the
first limit it is over refuses it.

- Rates (``write_requests_per_s``, ``write_vectors_per_s``, ``read_requests_per_s``): one
  token bucket per (subject, limit) in this process (pyrate-limiter's ``TokenBucket``: a
  bucket of ``rate`` tokens refilling at ``rate`` per second, so a full second's worth may
  come in one burst). Over a rate: 429 ``rate_limited`` with ``Retry-After`` (gRPC
  RESOURCE_EXHAUSTED with ``retry-after-ms``) saying when the request would fit. A single
  batch of more rows than ``write_vectors_per_s`` can never fit: 400 naming the limit.
- ``max_collections``: the tenant's live collections in the meta manager, read at the
  create; ``max_vectors``: the tenant's stored vectors (:mod:`.counts`). Over either: 429
  ``quota_exceeded`` without ``Retry-After`` (waiting does not help; dropping or deleting does).
- ``max_request_bytes``: the HTTP body or the gRPC message; over it: 413.

Buckets are per gateway process: with N gateways a tenant gets up to N times its rates.
A changed or removed quota resets its subject's buckets.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pyrate_limiter import Rate, RateItem, StateBucket, TokenBucket

from vecraft.services.api_gateway.models import RequestContext
from vecraft.services.api_gateway.quotas.book import QuotaBook, Subject
from vecraft.services.api_gateway.quotas.counts import StoredVectors
from vecraft.services.meta_manager.quotas import subject as subject_text
from vecraft.shared.common.errors import ERROR_CLASSES, InvalidRequest, PayloadTooLarge, RateLimited
from vecraft.shared.common.metrics import counter
from vecraft.shared.rpc.v1 import meta_pb2

THROTTLED = counter("gateway", "throttled", "requests refused by a quota or rate limit, by tenant and limit "
                                           "(limit: write_requests_per_s, write_vectors_per_s, "
                                           "read_requests_per_s, max_collections, max_vectors, "
                                           "max_request_bytes)", ["tenant", "limit"])

#: The names of a tenant's live collections (from the meta manager).
CollectionNames = Callable[[str], Awaitable[set[str]]]


class QuotaExceeded(RateLimited):
    """429 without Retry-After: a tenant's stored collections or vectors are at its quota."""

    wire_name = "quota_exceeded"
    grpc_status = "RESOURCE_EXHAUSTED"


ERROR_CLASSES[QuotaExceeded.wire_name] = QuotaExceeded


class Quotas:
    """The quota checks of one gateway process (see the module doc).

    ``collection_names(tenant)`` and ``stored`` are needed for ``max_collections`` and
    ``max_vectors``; without them those limits are not checked.
    """

    def __init__(self, book: QuotaBook, *, collection_names: CollectionNames | None = None,
                 stored: StoredVectors | None = None) -> None:
        self.book = book
        self._collection_names = collection_names
        self._stored = stored
        self._buckets: dict[tuple[Subject, str], tuple[int, StateBucket]] = {}
        book.on_change(self._forget)

    def _forget(self, subject: Subject) -> None:
        for key in [k for k in self._buckets if k[0] == subject]:
            del self._buckets[key]

    def _quotas(self, ctx: RequestContext) -> list[meta_pb2.Quota]:
        found = []
        tenant_quota = self.book.get(ctx.tenant)
        if tenant_quota is not None:
            found.append(tenant_quota)
        key_id = ctx.principal.key_id
        if key_id:
            key_quota = self.book.get(ctx.tenant, key_id)
            if key_quota is not None:
                found.append(key_quota)
        return found

    # --- checks ------------------------------------------------------------------------------------
    def admit_read(self, ctx: RequestContext) -> None:
        """A search, read by id, listing or other read."""
        quotas = self._quotas(ctx)
        if quotas:
            self._check_size(ctx, quotas)
            self._spend(ctx, quotas, "read_requests_per_s", 1)

    def admit_write(self, ctx: RequestContext, rows: int) -> None:
        """A write of ``rows`` rows (vectors inserted or upserted, ids deleted); DDL: ``rows`` 0."""
        quotas = self._quotas(ctx)
        if quotas:
            self._check_size(ctx, quotas)
            self._spend(ctx, quotas, "write_requests_per_s", 1)
            if rows:
                self._spend(ctx, quotas, "write_vectors_per_s", rows)

    async def check_new_collection(self, ctx: RequestContext, name: str) -> None:
        """Before collection ``name`` of ``ctx.tenant`` is created (an existing name passes: its create
        is a no-op or a conflict)."""
        quota = self.book.get(ctx.tenant)
        if quota is None or not quota.max_collections or self._collection_names is None:
            return
        names = await self._collection_names(ctx.tenant)
        have = len(names)
        if name not in names and have >= quota.max_collections:
            raise self._refused(ctx, quota, "max_collections", QuotaExceeded(
                f"tenant {ctx.tenant!r} has {have} collections, its quota max_collections "
                f"({quota.max_collections}); drop one or ask an administrator to raise the quota",
                details=_details(quota, "max_collections", have=have)))

    async def check_new_vectors(self, ctx: RequestContext, rows: int) -> None:
        """Before ``rows`` vectors of ``ctx.tenant`` are inserted or upserted."""
        quota = self.book.get(ctx.tenant)
        if quota is None or not quota.max_vectors or self._stored is None:
            return
        have = await self._stored.total(ctx.tenant)
        if have + rows > quota.max_vectors:
            raise self._refused(ctx, quota, "max_vectors", QuotaExceeded(
                f"tenant {ctx.tenant!r} stores about {have} vectors; {rows} more would pass its quota "
                f"max_vectors ({quota.max_vectors}); delete some or ask an administrator to raise the "
                f"quota", details=_details(quota, "max_vectors", have=have, adding=rows)))

    def written(self, ctx: RequestContext, rows: int) -> None:
        """Count ``rows`` vectors a write added (for ``max_vectors`` until the next count)."""
        if self._stored is not None and rows:
            quota = self.book.get(ctx.tenant)
            if quota is not None and quota.max_vectors:
                self._stored.admitted(ctx.tenant, rows)

    # --- helpers -----------------------------------------------------------------------------------
    def _check_size(self, ctx: RequestContext, quotas: list[meta_pb2.Quota]) -> None:
        for quota in quotas:
            limit = quota.max_request_bytes
            if limit and ctx.request_bytes > limit:
                raise self._refused(ctx, quota, "max_request_bytes", PayloadTooLarge(
                    f"the request has {ctx.request_bytes} bytes; the quota of "
                    f"{subject_text(quota.tenant, quota.key_id)} allows at most {limit} "
                    f"(max_request_bytes); split it", details=_details(quota, "max_request_bytes",
                                                                      have=ctx.request_bytes)))

    def _spend(self, ctx: RequestContext, quotas: list[meta_pb2.Quota], limit: str, weight: int) -> None:
        for quota in quotas:
            rate = int(getattr(quota, limit))
            if not rate:
                continue
            bucket = self._bucket((quota.tenant, quota.key_id), limit, rate)
            decision = bucket.put_decision(RateItem(limit, bucket.now(), weight))
            if decision.allowed:  # type: ignore[union-attr]  # in-memory store: never awaitable
                continue
            who = subject_text(quota.tenant, quota.key_id)
            retry_ms = decision.retry_after_ms  # type: ignore[union-attr]
            if retry_ms is None:  # more than a whole second's worth: never admissible
                raise self._refused(ctx, quota, limit, InvalidRequest(
                    f"{weight} rows in one request are more than the quota {limit} ({rate}) of {who} "
                    f"admits in a second; split the batch", details=_details(quota, limit, have=weight)))
            raise self._refused(ctx, quota, limit, RateLimited(
                f"{who} is over its quota {limit} ({rate} per second on this gateway); retry after "
                f"{retry_ms} ms", details=_details(quota, limit), retry_after_ms=max(1, retry_ms)))

    def _bucket(self, subject: Subject, limit: str, rate: int) -> StateBucket:
        held = self._buckets.get((subject, limit))
        if held is not None and held[0] == rate:
            return held[1]
        bucket = StateBucket([Rate(rate, 1000)], algorithm=TokenBucket())
        self._buckets[(subject, limit)] = (rate, bucket)
        return bucket

    @staticmethod
    def _refused(ctx: RequestContext, quota: meta_pb2.Quota, limit: str, err: Exception) -> Exception:
        THROTTLED.labels(ctx.tenant, limit).inc()
        return err


def _details(quota: meta_pb2.Quota, limit: str, **extra: Any) -> dict[str, Any]:
    details: dict[str, Any] = {"tenant": quota.tenant, "limit": limit, "quota": int(getattr(quota, limit))}
    if quota.key_id:
        details["key_id"] = quota.key_id
    return {**details, **extra}
