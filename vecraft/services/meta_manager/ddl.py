"""Collection DDL: ordered through the journal's ``system`` partition, then materialized.

The journal is the source of truth for the catalog; the store is its
materialized view, built by applying the system partition strictly in offset
order. A DDL request:

1. validates (``InvalidRequest``) and checks the catalog (``Conflict`` / ``NotFound``);
2. appends ``JournalPayload{mutations: [Mutation{ddl: CollectionDDL{kind, schema}}]}``
   to ``system`` with the request's id (a retry is answered with the original
   position, never appended twice);
3. catches the store up to that offset (:meth:`DdlCoordinator.catch_up`). Applying
   one entry decides its outcome from the catalog as it stands just before it
   (a CREATE of a taken name, or a DROP/ALTER of an incarnation that is gone,
   has no effect), then, when it has an effect, appends the same DDL (schema
   with ``ddl_offset``/``ddl_hlc`` filled in) to the collection's data partition
   with request id ``<request id>:data`` and ``ACK_DEFAULT`` (the storage
   replicas have applied it before the answer), then commits the outcome and the
   new watermark in one compare-and-swap;
4. answers from the outcome record of its own entry.

Whoever applies an entry first does step 3 for it: this manager's request, a
concurrent one, another meta manager sharing etcd, or the follower loop after a
crash between steps 2 and 3. Every step is idempotent, so the store converges
to the journal's order and of two concurrent creates of one name exactly one
wins: the one the journal ordered first.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from google.protobuf.message import DecodeError

from vecraft.services.meta_manager.placement import TenantMap
from vecraft.services.meta_manager.store import DdlRecord, MetaStore
from vecraft.shared.common.errors import Conflict, InvalidRequest, NotFound, Unavailable, VecraftError
from vecraft.shared.common.metrics import counter, gauge
from vecraft.shared.model.limits import HNSW_EF_SEARCH_RANGE
from vecraft.shared.model.routing import DEFAULT_TENANT, SYSTEM_PARTITION
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.model.validation import validate_name
from vecraft.shared.rpc.convert import schema_from_create_request, schema_to_proto
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

log = logging.getLogger(__name__)

Kind = journal_pb2.CollectionDDL

DDL_WATERMARK = gauge("meta", "ddl_watermark", "offset",
                      "Offset of the last system-partition entry materialized in the meta store")
DDL_APPLIED = counter("meta", "ddl_applied", "System-partition DDL entries materialized", ["kind", "outcome"])


class DdlJournal(Protocol):
    """The part of the journal client DDL needs (``JournalClient`` provides it)."""

    async def append(self, partition: str, payload: bytes, *, request_id: str, shards: Sequence[int] = (),
                     ack: int = journal_pb2.ACK_DEFAULT, client_hlc: int = 0,
                     ack_timeout_ms: int = 0) -> journal_pb2.AppendResponse: ...

    async def get_offset(self, partition: str) -> tuple[int, int]: ...

    async def pull(self, partition: str, from_offset: int,
                   to_offset: int = 0) -> list[journal_pb2.JournalEntry]: ...


class KeyedLocks:
    """One asyncio lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def ddl_payload(kind: int, schema: collection_pb2.CollectionSchema) -> bytes:
    ddl = journal_pb2.CollectionDDL(kind=kind, schema=schema)  # type: ignore[arg-type]
    return journal_pb2.JournalPayload(mutations=[journal_pb2.Mutation(ddl=ddl)]).SerializeToString()


def ddl_of(entry: journal_pb2.JournalEntry) -> journal_pb2.CollectionDDL | None:
    """The collection DDL an entry carries, or None (other system entries, undecodable payloads)."""
    try:
        payload = journal_pb2.JournalPayload.FromString(entry.payload)
    except DecodeError:
        log.warning("undecodable system entry", extra={"offset": entry.offset})
        return None
    for mutation in payload.mutations:
        if mutation.WhichOneof("kind") == "ddl" and mutation.ddl.kind != Kind.KIND_UNSPECIFIED:
            return mutation.ddl
    return None


def _names(tenant: str, name: str) -> tuple[str, str]:
    return validate_name(tenant or DEFAULT_TENANT, "tenant"), validate_name(name, "collection")


class DdlCoordinator:
    """Create / drop / alter collections and keep the store caught up with the system partition."""

    def __init__(self, store: MetaStore, tenants: TenantMap, *, default_shards: int,
                 default_replicas: int, journal: DdlJournal | None = None) -> None:
        self._store = store
        #: the journal client; None until the service connects one (DDL is Unavailable meanwhile)
        self.journal = journal
        self._tenants = tenants
        self._default_shards = default_shards
        self._default_replicas = default_replicas
        self._names = KeyedLocks()
        # Within one manager entries are applied by one task at a time; across
        # managers the watermark compare-and-swap decides.
        self._apply_lock = asyncio.Lock()

    def _require_journal(self) -> DdlJournal:
        if self.journal is None:
            raise Unavailable("this meta manager has no --journal-address; DDL is unavailable")
        return self.journal

    # ---- DDL requests ----------------------------------------------------------
    async def create(self, req: collection_pb2.CreateCollectionRequest) -> collection_pb2.CollectionSchema:
        """Create a collection (see the module docstring).

        Raises:
            InvalidRequest: bad name, dim, metric, shards, replicas or HNSW parameters.
            Conflict: the name is taken (unless ``if_not_exists`` and same dim + metric).
            Unavailable: no journal, or the journal / store cannot answer.
        """
        wanted = schema_from_create_request(
            req, default_shards=self._default_shards, default_replicas=self._default_replicas)
        journal = self._require_journal()
        request_id = req.request_id or uuid.uuid4().hex
        async with self._names.hold((wanted.tenant, wanted.name)):
            if req.request_id and (done := await self._store.get_ddl_record(request_id)) is not None:
                return await self._create_outcome(done, wanted, req.if_not_exists)
            existing = await self._store.get_collection(wanted.tenant, wanted.name)
            if existing is not None:
                return self._existing_or_conflict(existing, wanted, req.if_not_exists)
            proposal = dataclasses.replace(
                wanted, partition=await self._tenants.partition_of(wanted.tenant),
                collection_id=uuid.uuid4().hex, created_unix_ms=time.time_ns() // 1_000_000)
            record = await self._append_and_apply(journal, Kind.CREATE, schema_to_proto(proposal), request_id)
            return await self._create_outcome(record, wanted, req.if_not_exists)

    async def drop(self, req: collection_pb2.DropCollectionRequest) -> collection_pb2.DropCollectionResponse:
        """Drop a collection.

        Raises:
            InvalidRequest: bad tenant or collection name.
            NotFound: no such collection (also when a concurrent drop won).
            Unavailable: no journal, or the journal / store cannot answer.
        """
        tenant, name = _names(req.tenant, req.name)
        journal = self._require_journal()
        request_id = req.request_id or uuid.uuid4().hex
        async with self._names.hold((tenant, name)):
            record = await self._store.get_ddl_record(request_id) if req.request_id else None
            if record is None:
                existing = await self._store.get_collection(tenant, name)
                if existing is None:
                    raise _not_found(tenant, name)
                record = await self._append_and_apply(journal, Kind.DROP, existing, request_id)
            if not (record.applied and record.kind == Kind.DROP):
                raise _not_found(tenant, name)
            return collection_pb2.DropCollectionResponse(name=name, ddl_offset=record.offset,
                                                         ddl_hlc=record.hlc)

    async def alter(self, req: collection_pb2.AlterCollectionRequest) -> collection_pb2.CollectionSchema:
        """Change search-time parameters (``hnsw.ef_search``) of a collection.

        Raises:
            InvalidRequest: bad names, ef_search outside 1..4096 or unset, or an attempt to
                change m / ef_construction (they shape the built graph).
            NotFound: no such collection.
            Unavailable: no journal, or the journal / store cannot answer.
        """
        tenant, name = _names(req.tenant, req.name)
        low, high = HNSW_EF_SEARCH_RANGE
        ef_search = req.hnsw.ef_search
        if not low <= ef_search <= high:
            raise InvalidRequest(f"hnsw.ef_search is {ef_search}; set it between {low} and {high} "
                                 f"(the only parameter that can change)")
        journal = self._require_journal()
        request_id = req.request_id or uuid.uuid4().hex
        async with self._names.hold((tenant, name)):
            record = await self._store.get_ddl_record(request_id) if req.request_id else None
            if record is None:
                existing = await self._store.get_collection(tenant, name)
                if existing is None:
                    raise _not_found(tenant, name)
                for field in ("m", "ef_construction"):
                    asked = getattr(req.hnsw, field)
                    if asked and asked != getattr(existing.hnsw, field):
                        raise InvalidRequest(f"hnsw.{field} cannot change after creation "
                                             f"(is {getattr(existing.hnsw, field)}); only ef_search can")
                proposal = collection_pb2.CollectionSchema()
                proposal.CopyFrom(existing)
                proposal.hnsw.ef_search = ef_search
                record = await self._append_and_apply(journal, Kind.ALTER, proposal, request_id)
            if not (record.applied and record.kind == Kind.ALTER and record.schema is not None):
                raise _not_found(tenant, name)
            current = await self._store.get_collection(tenant, name)
            if current is not None and current.collection_id == record.schema.collection_id:
                return current
            return record.schema

    # ---- outcomes --------------------------------------------------------------
    @staticmethod
    def _existing_or_conflict(existing: collection_pb2.CollectionSchema, wanted: CollectionSchema,
                              if_not_exists: bool) -> collection_pb2.CollectionSchema:
        if if_not_exists and existing.dim == wanted.dim and existing.metric == wanted.metric:
            return existing
        raise Conflict(
            f"collection {wanted.name!r} of tenant {wanted.tenant!r} already exists "
            f"(dim {existing.dim}, metric {existing.metric})",
            details={"tenant": wanted.tenant, "collection": wanted.name, "dim": existing.dim,
                     "metric": existing.metric})

    async def _create_outcome(self, record: DdlRecord, wanted: CollectionSchema,
                              if_not_exists: bool) -> collection_pb2.CollectionSchema:
        current = await self._store.get_collection(wanted.tenant, wanted.name)
        if record.kind == Kind.CREATE and record.applied and record.schema is not None:
            if current is not None and current.collection_id == record.schema.collection_id:
                return current
            return record.schema
        if current is None:
            raise Conflict(f"collection {wanted.name!r} was created and dropped concurrently; retry",
                           details={"tenant": wanted.tenant, "collection": wanted.name})
        return self._existing_or_conflict(current, wanted, if_not_exists)

    async def _append_and_apply(self, journal: DdlJournal, kind: int,
                                schema: collection_pb2.CollectionSchema, request_id: str) -> DdlRecord:
        answer = await journal.append(SYSTEM_PARTITION, ddl_payload(kind, schema), request_id=request_id,
                                      ack=journal_pb2.ACK_JOURNAL)
        await self.catch_up(answer.offset)
        record = await self._store.get_ddl_record(request_id)
        if record is None or record.offset != answer.offset:
            raise VecraftError(f"system entry {answer.offset} (request {request_id}) was not "
                               f"materialized as DDL", details={"offset": answer.offset})
        return record

    # ---- materialization -------------------------------------------------------
    async def catch_up(self, to_offset: int | None = None) -> int:
        """Materialize every system entry up to ``to_offset`` (None = the journal head).

        Returns the watermark reached (>= ``to_offset``).

        Raises:
            Unavailable: no journal, or the journal / store cannot answer.
        """
        journal = self._require_journal()
        async with self._apply_lock:
            if to_offset is None:
                to_offset, _ = await journal.get_offset(SYSTEM_PARTITION)
            watermark = await self._store.ddl_watermark()
            while watermark < to_offset:
                entries = await journal.pull(SYSTEM_PARTITION, watermark + 1, to_offset)
                if not entries:
                    raise Unavailable(f"journal returned no system entries after offset {watermark} "
                                      f"(head {to_offset})")
                for entry in entries:
                    if entry.offset <= watermark:
                        continue
                    if await self._apply(journal, entry, watermark):
                        watermark = entry.offset
                    else:
                        # Another meta manager applied it: continue from where it got to.
                        watermark = await self._store.ddl_watermark()
                        break
            DDL_WATERMARK.set(watermark)
            return watermark

    async def _apply(self, journal: DdlJournal, entry: journal_pb2.JournalEntry, expected: int) -> bool:
        ddl = ddl_of(entry)
        record = await self._decide(entry, ddl) if ddl is not None else None
        if record is not None and record.applied and record.schema is not None:
            await journal.append(record.schema.partition, ddl_payload(record.kind, record.schema),
                                 request_id=f"{record.request_id}:data", ack=journal_pb2.ACK_DEFAULT)
        committed = await self._store.commit_ddl(expected, entry.offset, record)
        if committed and record is not None:
            DDL_APPLIED.labels(Kind.Kind.Name(record.kind).lower(),
                               "applied" if record.applied else "no_effect").inc()
            log.info("ddl materialized", extra={"offset": entry.offset, "ddl": Kind.Kind.Name(record.kind),
                                                "collection": f"{record.tenant}/{record.name}",
                                                "applied": record.applied})
        return committed

    async def _decide(self, entry: journal_pb2.JournalEntry, ddl: journal_pb2.CollectionDDL) -> DdlRecord:
        """The outcome of ``ddl`` against the catalog as it stands before ``entry``."""
        proposed = ddl.schema
        tenant = proposed.tenant or DEFAULT_TENANT
        current = await self._store.get_collection(tenant, proposed.name)
        same = current is not None and current.collection_id == proposed.collection_id
        schema: collection_pb2.CollectionSchema | None = None
        if ddl.kind == Kind.CREATE and current is None:
            schema = collection_pb2.CollectionSchema()
            schema.CopyFrom(proposed)
            schema.tenant = tenant
        elif ddl.kind in (Kind.DROP, Kind.ALTER) and same:
            assert current is not None
            schema = current
            if ddl.kind == Kind.ALTER:
                schema.hnsw.ef_search = proposed.hnsw.ef_search
        if schema is not None:
            schema.ddl_offset = entry.offset
            schema.ddl_hlc = entry.hlc
        return DdlRecord(request_id=entry.request_id or f"system-{entry.offset}", offset=entry.offset,
                         hlc=entry.hlc, kind=ddl.kind, tenant=tenant, name=proposed.name,
                         applied=schema is not None, schema=schema)

    async def follow(self, interval_s: float) -> None:
        """Background loop: keep catching up (DDL of other managers, entries left by a crash)."""
        while True:
            try:
                await self.catch_up()
            except VecraftError as exc:
                log.info("system partition catch-up postponed: %s", exc.message)
            await asyncio.sleep(interval_s)


def _not_found(tenant: str, name: str) -> NotFound:
    return NotFound(f"collection {name!r} of tenant {tenant!r} does not exist",
                    details={"tenant": tenant, "collection": name})
