"""The gateway's domain layer: every operation once, for HTTP and gRPC alike.

Handlers parse their wire format into :mod:`.models` objects and call one
method here. This layer validates against the collection schema (dimension,
ids, metadata), picks the read target of the requested consistency level,
routes writes to the journal (:mod:`.journal_router`) and DDL to the meta
manager, and fans searches out (:mod:`.fanout`). Nothing invalid reaches the
journal: every check runs before the append. Every operation first checks that the
request's principal (its API key; everything is allowed with auth off) may run it on the
collections it names (:mod:`.auth.principal`), so a denied request changes nothing; then
its tenant's and key's quotas and rate limits (:mod:`.quotas`), before anything is appended
or created.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections import defaultdict
from typing import Any

import numpy as np

from vecraft.services.api_gateway.audit import AuditLog
from vecraft.services.api_gateway.auth.principal import Principal, Role
from vecraft.services.api_gateway.downstream import Downstream
from vecraft.services.api_gateway.fanout import SearchFanout
from vecraft.services.api_gateway.journal_router.payloads import summarize_entry
from vecraft.services.api_gateway.journal_router.writes import TxnStep, WriteRouter, generated_ids
from vecraft.services.api_gateway.listing import MAX_LIST_LIMIT, ListQuery, RecordPage, merge_scans
from vecraft.services.api_gateway.merge import max_allowed_staleness
from vecraft.services.api_gateway.models import (
    CollectionSpec,
    ConsistencyReport,
    DeleteBatch,
    DropOutcome,
    GetOutcome,
    GetQuery,
    JournalEntrySummary,
    JournalPage,
    OperationStatus,
    RecordView,
    RequestContext,
    SearchOutcome,
    SearchQuery,
    Transaction,
    WriteBatch,
    WriteOutcome,
    journal_request_id,
)
from vecraft.services.api_gateway.quotas.book import QuotaBook
from vecraft.services.api_gateway.quotas.limiter import Quotas
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.common.errors import DeadlineExceeded, InvalidRequest, NotFound, Trimmed, Unavailable
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.records import RecordBatch
from vecraft.shared.model.routing import DEFAULT_COLLECTION, all_partitions, shard_of
from vecraft.shared.model.schema import CollectionSchema, HnswParams
from vecraft.shared.model.validation import (
    validate_batch_size,
    validate_id,
    validate_ids,
    validate_max_staleness_ms,
    validate_name,
    validate_vector,
    validate_vectors,
)
from vecraft.shared.rpc.convert import hnsw_from_proto
from vecraft.shared.rpc.v1 import collection_pb2, storage_pb2

#: Journal reads return at most this many entries per call.
MAX_JOURNAL_PAGE = 1000
#: Operations per transaction (their rows count against the batch row limit together).
MAX_TXN_STEPS = 64


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class GatewayLimits:
    """Defaults the domain layer applies when a request leaves them out."""

    #: Whole-request deadline of searches and reads by id.
    default_timeout_ms: int = 10_000
    #: Staleness bound of BOUNDED_STALENESS searches that give none.
    default_max_staleness_ms: int = 1_000

    def __post_init__(self) -> None:
        validate_max_staleness_ms(self.default_max_staleness_ms)


class Gateway:
    """Every gateway operation; see the module doc."""

    def __init__(self, downstream: Downstream, schemas: SchemaCache, *,
                 limits: GatewayLimits = GatewayLimits(), quotas: Quotas | None = None,
                 audit: AuditLog | None = None) -> None:
        self._downstream = downstream
        self._schemas = schemas
        self._limits = limits
        #: Without quotas (tests, tools) an empty book: nothing is limited.
        self.quotas = quotas or Quotas(QuotaBook())
        #: Admin actions (collection DDL) are recorded here (docs/audit.md); None: not recorded.
        self.audit = audit
        self._router = WriteRouter(downstream)
        self._fanout = SearchFanout(downstream, default_timeout_ms=limits.default_timeout_ms)

    # --- search ------------------------------------------------------------------------------------
    async def search(self, query: SearchQuery, ctx: RequestContext) -> SearchOutcome:
        """Top-k over every shard at the requested consistency level.

        The implicit ``default`` collection exists, empty, before its first
        insert: searching it then answers no results rather than 404.
        """
        ctx.principal.check_collections(Role.READ, "searching", [query.collection])
        self.quotas.admit_read(ctx)
        vector = validate_vector(query.vector, None)
        max_staleness = 0
        if query.level is ConsistencyLevel.BOUNDED_STALENESS:
            # The codecs validated a bound the request gave; the default was validated with the limits.
            max_staleness = (self._limits.default_max_staleness_ms if query.max_staleness_ms is None
                             else query.max_staleness_ms)
        try:
            schema = await self._schema(query.collection, ctx)
        except NotFound:
            if query.collection != DEFAULT_COLLECTION:
                raise
            return _empty_default(query.level, max_staleness)
        if vector.shape[0] != schema.dim:
            raise InvalidRequest(f"vector has dimension {vector.shape[0]}, collection {schema.name!r} "
                                 f"expects {schema.dim}",
                                 details={"expected_dim": schema.dim, "got_dim": int(vector.shape[0])})
        min_offset = await self._read_target(schema, query.level, query.min_required_offset, ctx)
        # A processor's NotFound does not evict the cached schema: the Watch stream replaces a
        # stale one, and evicting it would make the next lookup need the meta manager, which
        # may be down (docs/consistency.md, "When the meta manager is down").
        return await self._fanout.run(schema, query, vector, min_offset=min_offset,
                                      max_staleness_ms=max_staleness, ctx=ctx)

    async def _read_target(self, schema: CollectionSchema, level: ConsistencyLevel,
                           min_required_offset: int, ctx: RequestContext) -> int:
        """Offset of the collection's partition a read must reach at ``level``.

        STRONG: the journal head, read once for the whole request so every shard
        reads the same prefix. READ_YOUR_WRITES: the session's offset. A
        client-given ``min_required_offset`` raises the target at any level.
        """
        target = min_required_offset
        if level is ConsistencyLevel.STRONG:
            head, _ = await self._downstream.head(schema.partition)
            target = max(target, head)
        elif level is ConsistencyLevel.READ_YOUR_WRITES:
            target = max(target, ctx.session.get(schema.partition, 0))
        return target

    # --- writes ------------------------------------------------------------------------------------
    async def write(self, batch: WriteBatch, ctx: RequestContext) -> WriteOutcome:
        """Insert or upsert ``batch`` as one journal entry.

        The implicit ``default`` collection is created at its first write with
        the batch's dimension and the cosine metric.
        """
        ctx.principal.check_collections(Role.WRITE, "writing", [batch.collection])
        validate_name(batch.collection)
        vectors = validate_vectors(batch.vectors)
        ids = batch.ids if batch.ids is not None else generated_ids(ctx.journal_request_id, vectors.shape[0])
        # Everything is validated before the collection may be created implicitly: a
        # refused request leaves no trace.
        records = RecordBatch.with_vectors(ids, vectors, metadata=batch.metadata, documents=batch.documents)
        rows = len(records.ids)
        self.quotas.admit_write(ctx, rows)
        await self.quotas.check_new_vectors(ctx, rows)
        schema = await self._schema_for_write(batch.collection, records.dim, ctx)
        self._check_dim(schema, records.dim, "the")
        outcome = await self._router.write(schema, records, upsert=batch.upsert, ack=batch.ack, ctx=ctx)
        self.quotas.written(ctx, rows)
        return outcome

    async def transact(self, txn: Transaction, ctx: RequestContext) -> WriteOutcome:
        """Apply writes and deletes to several collections atomically (one journal entry).

        Every step is validated before anything is appended; ids a write step
        leaves out are derived from the request id and the step's position.
        """
        ctx.principal.check_collections(Role.WRITE, "a transaction", [step.collection for step in txn.steps])
        if not 1 <= len(txn.steps) <= MAX_TXN_STEPS:
            raise InvalidRequest(f"a transaction has 1 to {MAX_TXN_STEPS} operations, got {len(txn.steps)}")
        validated: list[tuple[WriteBatch | DeleteBatch, RecordBatch | None, list[str]]] = []
        for n, step in enumerate(txn.steps):
            validate_name(step.collection)
            if isinstance(step, DeleteBatch):
                validated.append((step, None, validate_ids(step.ids, field=f"operations[{n}].ids")))
                continue
            vectors = validate_vectors(step.vectors, field=f"operations[{n}].vectors")
            ids = (step.ids if step.ids is not None
                   else generated_ids(f"{ctx.journal_request_id}/{n}", vectors.shape[0]))
            records = RecordBatch.with_vectors(ids, vectors, metadata=step.metadata, documents=step.documents)
            validated.append((step, records, list(records.ids)))
        total = sum(len(ids) for _, _, ids in validated)
        validate_batch_size(total, field="transaction rows")
        added = sum(len(ids) for _, records, ids in validated if records is not None)
        self.quotas.admit_write(ctx, total)
        await self.quotas.check_new_vectors(ctx, added)
        steps: list[TxnStep] = []
        for n, (step, step_records, ids) in enumerate(validated):
            if step_records is None:
                steps.append(TxnStep(schema=await self._schema(step.collection, ctx), ids=tuple(ids)))
                continue
            schema = await self._schema_for_write(step.collection, step_records.dim, ctx)
            self._check_dim(schema, step_records.dim, f"operations[{n}]")
            steps.append(TxnStep(schema=schema, ids=step_records.ids, records=step_records,
                                 upsert=isinstance(step, WriteBatch) and step.upsert))
        outcome = await self._router.transact(steps, ack=txn.ack, ctx=ctx)
        self.quotas.written(ctx, added)
        return outcome

    @staticmethod
    def _check_dim(schema: CollectionSchema, dim: int, where: str) -> None:
        if dim != schema.dim:
            raise InvalidRequest(f"{where} vectors have dimension {dim}, collection {schema.name!r} "
                                 f"expects {schema.dim}",
                                 details={"expected_dim": schema.dim, "got_dim": dim})

    async def _schema_for_write(self, collection: str, dim: int, ctx: RequestContext) -> CollectionSchema:
        try:
            return await self._schema(collection, ctx)
        except NotFound:
            if collection != DEFAULT_COLLECTION:
                raise
        async with self._audited(ctx, "collection.create", collection,
                                 {"dim": dim, "metric": "cosine", "implicit": True}):
            await self.quotas.check_new_collection(ctx, collection)
            schema = await self._downstream.create_collection(collection_pb2.CreateCollectionRequest(
                tenant=ctx.tenant, name=collection, dim=dim, metric="cosine", if_not_exists=True,
                request_id=ctx.ddl_request_id("create-default", collection)))
        self._schemas.put(schema)
        return schema

    async def delete(self, batch: DeleteBatch, ctx: RequestContext) -> WriteOutcome:
        """Delete ``batch.ids`` (idempotent: deleting a missing id succeeds).

        A strong read before the append tells which ids existed
        (``deleted_ids``) and which did not (``missing_ids``).
        """
        ctx.principal.check_collections(Role.WRITE, "deleting", [batch.collection])
        ids = validate_ids(batch.ids)
        self.quotas.admit_write(ctx, len(ids))
        schema = await self._schema(batch.collection, ctx)
        before = await self._get(schema, ids, include_vectors=False, level=ConsistencyLevel.STRONG,
                                 ctx=ctx)
        outcome = await self._router.delete(schema, ids, ack=batch.ack, ctx=ctx)
        missing = set(before.missing_ids)
        return dataclasses.replace(outcome, deleted_ids=[i for i in ids if i not in missing],
                                   missing_ids=[i for i in ids if i in missing])

    # --- reads by id -------------------------------------------------------------------------------
    async def get(self, query: GetQuery, ctx: RequestContext) -> GetOutcome:
        """Records by id at ``query.level`` (eventual, read_your_writes or strong)."""
        ctx.principal.check_collections(Role.READ, "reading", [query.collection])
        self.quotas.admit_read(ctx)
        _check_read_level(query.level, "reads by id")
        ids = validate_ids(query.ids)
        schema = await self._schema(query.collection, ctx)
        return await self._get(schema, ids, include_vectors=query.include_vectors, level=query.level,
                               ctx=ctx)

    async def _get(self, schema: CollectionSchema, ids: list[str], *, include_vectors: bool,
                   level: ConsistencyLevel, ctx: RequestContext) -> GetOutcome:
        min_offset = await self._read_target(schema, level, 0, ctx)
        by_shard: dict[int, list[str]] = defaultdict(list)
        for record_id in ids:
            by_shard[shard_of(record_id, schema.shards)].append(record_id)
        timeout_s = self._limits.default_timeout_ms / 1000.0
        answers = await asyncio.gather(*(
            self._downstream.get_records(shard, storage_pb2.ShardGetRequest(
                collection=schema.name, tenant=schema.tenant, ids=shard_ids, min_offset=min_offset,
                include_vectors=include_vectors, shard=shard), timeout_s)
            for shard, shard_ids in by_shard.items()))
        found: dict[str, RecordView] = {}
        for answer in answers:
            for rec in answer.records:
                vector = np.frombuffer(rec.vector, dtype="<f4") if include_vectors and rec.vector else None
                found[rec.id] = RecordView(id=rec.id, vector=vector, metadata_json=rec.metadata_json,
                                           document=rec.document, offset=rec.offset, hlc=rec.hlc)
        return GetOutcome(records=[found[i] for i in ids if i in found],
                          missing_ids=[i for i in ids if i not in found])

    # --- listing -----------------------------------------------------------------------------------
    async def list_records(self, query: ListQuery, ctx: RequestContext) -> RecordPage:
        """One page of the collection's records in id order, after ``query.after`` (see :mod:`.listing`).

        Every shard is read at the offset ``query.level`` needs, as reads by id are
        (eventual, read_your_writes or strong), raised to ``min_required_offset``.
        """
        ctx.principal.check_collections(Role.READ, "listing records", [query.collection])
        self.quotas.admit_read(ctx)
        _check_read_level(query.level, "record listings")
        if not 1 <= query.limit <= MAX_LIST_LIMIT:
            raise InvalidRequest(f"limit is {query.limit}; it must be between 1 and {MAX_LIST_LIMIT}",
                                 details={"parameter": "limit"})
        if query.after:
            validate_id(query.after, field="after")
        schema = await self._schema(query.collection, ctx)
        min_offset = await self._read_target(schema, query.level, query.min_required_offset, ctx)
        timeout_ms = self._limits.default_timeout_ms
        answers = await asyncio.gather(*(
            self._downstream.scan_records(shard, storage_pb2.ShardScanRequest(
                collection=schema.name, tenant=schema.tenant, shard=shard, after=query.after,
                limit=query.limit,
                min_offset=min_offset, include_vectors=query.include_vectors,
                include_metadata=query.include_metadata, include_documents=query.include_documents,
                filter_json=query.filter_json, timeout_ms=timeout_ms), timeout_ms / 1000.0)
            for shard in range(schema.shards)))
        records, cursor = merge_scans(answers, query.limit)
        return RecordPage(
            records=[RecordView(id=rec.id, vector=np.frombuffer(rec.vector, dtype="<f4")
                                if query.include_vectors else None,
                                metadata_json=rec.metadata_json, document=rec.document, offset=rec.offset,
                                hlc=rec.hlc) for rec in records],
            next_cursor=cursor, index_version=min(a.index_version for a in answers),
            partition=schema.partition)

    # --- collections (DDL goes to the meta manager, which orders it through `system`) ---------------
    async def create_collection(self, spec: CollectionSpec, ctx: RequestContext) -> CollectionSchema:
        ctx.principal.check_collections(Role.ADMIN, "creating a collection", [spec.name])
        # Validate here, so a bad schema is refused with the model's message before any RPC;
        # zeros stay zeros on the wire ("cluster default").
        user_hnsw = collection_pb2.HnswParams(m=spec.hnsw_m, ef_construction=spec.hnsw_ef_construction,
                                              ef_search=spec.hnsw_ef_search)
        valid = CollectionSchema(name=spec.name, dim=spec.dim, tenant=ctx.tenant, metric=spec.metric,
                                 shards=spec.shards or 1, replicas=spec.replicas or 1,
                                 hnsw=hnsw_from_proto(user_hnsw))
        self.quotas.admit_write(ctx, 0)
        async with self._audited(ctx, "collection.create", valid.name,
                                 {"dim": valid.dim, "metric": valid.metric, "shards": spec.shards}):
            await self.quotas.check_new_collection(ctx, valid.name)
            served = self._downstream.shard_groups
            if spec.shards > served:
                raise InvalidRequest(f"shards is {spec.shards}, but this cluster serves {served} shard(s); "
                                     f"use at most {served} or leave shards out for the cluster default",
                                     details={"max_shards": served})
            schema = await self._downstream.create_collection(collection_pb2.CreateCollectionRequest(
                tenant=ctx.tenant, name=valid.name, dim=valid.dim, metric=valid.metric, shards=spec.shards,
                replicas=spec.replicas, hnsw=user_hnsw, if_not_exists=spec.if_not_exists,
                request_id=ctx.ddl_request_id("create", valid.name)))
        self._schemas.put(schema)
        return schema

    async def get_collection(self, name: str, ctx: RequestContext) -> CollectionSchema:
        ctx.principal.check_collections(Role.READ, "reading a collection", [name])
        self.quotas.admit_read(ctx)
        validate_name(name)
        try:
            return await self._downstream.get_collection(ctx.tenant, name)
        except (Unavailable, DeadlineExceeded):
            # The meta manager cannot be asked: the schema the data path uses, if cached
            # (bulk import and export read it before writing or listing).
            cached = self._schemas.cached(ctx.tenant, name)
            if cached is None:
                raise
            return cached

    async def list_collections(self, ctx: RequestContext) -> list[CollectionSchema]:
        """The collections of ``ctx.tenant`` the principal may use."""
        ctx.principal.require(Role.READ, "listing collections")
        self.quotas.admit_read(ctx)
        return [s for s in await self._downstream.list_collections(ctx.tenant)
                if ctx.principal.may_use(s.name)]

    async def alter_collection(self, name: str, ef_search: int, ctx: RequestContext) -> CollectionSchema:
        ctx.principal.check_collections(Role.ADMIN, "altering a collection", [name])
        self.quotas.admit_write(ctx, 0)
        validate_name(name)
        HnswParams(ef_search=ef_search)
        async with self._audited(ctx, "collection.alter", name, {"hnsw": {"ef_search": ef_search}}):
            schema = await self._downstream.alter_collection(collection_pb2.AlterCollectionRequest(
                tenant=ctx.tenant, name=name, hnsw=collection_pb2.HnswParams(ef_search=ef_search),
                request_id=ctx.ddl_request_id("alter", name)))
        self._schemas.put(schema)
        return schema

    async def drop_collection(self, name: str, ctx: RequestContext) -> DropOutcome:
        ctx.principal.check_collections(Role.ADMIN, "dropping a collection", [name])
        self.quotas.admit_write(ctx, 0)
        validate_name(name)
        async with self._audited(ctx, "collection.drop", name):
            answer = await self._downstream.drop_collection(collection_pb2.DropCollectionRequest(
                tenant=ctx.tenant, name=name, request_id=ctx.ddl_request_id("drop", name)))
        self._schemas.invalidate(ctx.tenant, name)
        return DropOutcome(name=answer.name or name, ddl_offset=answer.ddl_offset, ddl_hlc=answer.ddl_hlc)

    # --- operations and audit ----------------------------------------------------------------------
    async def operation(self, request_id: str, ctx: RequestContext) -> OperationStatus:
        """Where data write ``request_id`` of ``ctx.tenant`` landed and which replicas applied it."""
        ctx.principal.require(Role.READ, "looking up an operation")
        self.quotas.admit_read(ctx)
        answer = await self._downstream.lookup_request(journal_request_id(ctx.tenant, request_id))
        if not answer.found:
            raise NotFound(f"no journal entry has request id {request_id!r}",
                           details={"request_id": request_id})
        return OperationStatus(request_id=request_id, partition=answer.partition, offset=answer.offset,
                               hlc=answer.hlc, replicas_applied=list(answer.replicas_applied),
                               replicas_pending=list(answer.replicas_pending))

    async def read_journal(self, partition: str, from_offset: int, limit: int,
                           ctx: RequestContext | None = None) -> JournalPage:
        """Summaries of entries ``from_offset`` .. ``from_offset + limit - 1`` of ``partition``.

        Partitions are shared by tenants: a principal limited to a tenant or to collections
        sees only the entries whose every mutation is on a live collection it may use (DDL:
        of its tenant); the others are left out of the page (``latest_offset`` stays the
        partition's head, so paging by offset goes on). A ``from_offset`` below what the
        journal still stores (trimmed by the compactor) reads from its first stored entry,
        named in ``trimmed_before``.
        """
        principal = ctx.principal if ctx is not None else None
        if principal is not None:
            principal.require(Role.READ, "reading the journal")
        if ctx is not None:
            self.quotas.admit_read(ctx)
        partitions = all_partitions(self._downstream.data_partitions)
        if partition not in partitions:
            raise NotFound(f"journal partition {partition!r} does not exist; partitions: "
                           f"{', '.join(partitions)}", details={"partitions": partitions})
        if from_offset < 1:
            raise InvalidRequest(f"from_offset is {from_offset}; offsets start at 1")
        if not 1 <= limit <= MAX_JOURNAL_PAGE:
            raise InvalidRequest(f"limit is {limit}; it must be between 1 and {MAX_JOURNAL_PAGE}")
        trimmed_before = None
        try:
            answer = await self._downstream.pull(partition, from_offset, from_offset + limit - 1, limit)
        except Trimmed as err:
            # The compactor removed the start of the partition: the page starts where the log does.
            trimmed_before = int(err.details.get("first_offset", 0))
            if trimmed_before <= from_offset:
                raise
            answer = await self._downstream.pull(partition, trimmed_before, trimmed_before + limit - 1, limit)
        entries = [JournalEntrySummary(partition=e.partition or partition, offset=e.offset, hlc=e.hlc,
                                       request_id=e.request_id, summary=summarize_entry(e.payload))
                   for e in answer.entries]
        if ctx is not None and principal is not None and not principal.unrestricted:
            visible = await self._visible_collections(ctx)
            entries = [e for e in entries if _entry_visible(e, principal, ctx.tenant, visible)]
        return JournalPage(entries=entries, latest_offset=answer.latest_offset, trimmed_before=trimmed_before)

    async def _visible_collections(self, ctx: RequestContext) -> set[str]:
        """Incarnation ids of the live collections of ``ctx.tenant`` the principal may use."""
        return {s.collection_id for s in await self._downstream.list_collections(ctx.tenant)
                if ctx.principal.may_use(s.name)}

    # --- helpers -----------------------------------------------------------------------------------
    def _audited(self, ctx: RequestContext, action: str, target: str,
                 details: dict[str, Any] | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        """Record the admin action of the ``async with`` block in the audit log (when there is one)."""
        if self.audit is None:
            return contextlib.nullcontext()
        return self.audit.action(ctx.principal, action, tenant=ctx.tenant, target=target, details=details)

    async def _schema(self, collection: str, ctx: RequestContext) -> CollectionSchema:
        validate_name(collection)
        return await self._schemas.get(ctx.tenant, collection)


def _entry_visible(entry: JournalEntrySummary, principal: Principal, tenant: str,
                   collection_ids: set[str]) -> bool:
    """Whether a restricted principal may see a journal entry (see :meth:`Gateway.read_journal`)."""
    mutations = entry.summary.get("mutations") or []
    if not mutations:
        return False
    for m in mutations:
        if m.get("kind") in ("create_collection", "drop_collection", "alter_collection"):
            if m.get("tenant") != tenant or not principal.may_use(str(m.get("collection", ""))):
                return False
        elif m.get("collection_id") not in collection_ids:
            return False
    return True


def _check_read_level(level: ConsistencyLevel, what: str) -> None:
    """Reads by id and listings support every level but bounded staleness (a search's bound)."""
    if level is ConsistencyLevel.BOUNDED_STALENESS:
        raise InvalidRequest(f"consistency_level bounded: {what} support consistency levels eventual, "
                             "read_your_writes and strong; bounded staleness applies to searches",
                             details={"accepted": ["eventual", "read_your_writes", "strong"]})


def _empty_default(level: ConsistencyLevel, max_staleness_ms: int) -> SearchOutcome:
    """The answer of a search of the ``default`` collection before its first insert."""
    return SearchOutcome(hits=[], partition="", consistency=ConsistencyReport(
        level_requested=level, level_achieved=level, staleness_ms=0,
        max_allowed_staleness_ms=max_allowed_staleness(level, max_staleness_ms),
        index_version=0, cache_hit=False, sync_performed=False))
