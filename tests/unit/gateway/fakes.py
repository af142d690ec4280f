"""An in-memory stand-in for the cluster behind the gateway (unit tests only).

It implements the gateway's :class:`Downstream` interface with a dict per
collection, a list per journal partition and exact numpy search, so the HTTP
and gRPC layers can be tested without processes. Failures are injected with
``fail_shards`` / ``fail_append``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Sequence

import numpy as np
import orjson

from vecraft.services.api_gateway.downstream import DELETE, PUT, SNAPSHOT_END, Downstream, SearchPart
from vecraft.shared.common.errors import Conflict, NotFound, VecraftError
from vecraft.shared.model.filters import matches, parse_filter
from vecraft.shared.model.routing import shard_of, tenant_partition
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.convert import hnsw_from_proto
from vecraft.shared.rpc.v1 import (
    collection_pb2,
    journal_pb2,
    query_pb2,
    search_pb2,
    storage_pb2,
)


@dataclasses.dataclass
class _Row:
    vector: np.ndarray
    metadata_json: str
    document: str
    offset: int
    hlc: int


class FakeDownstream(Downstream):
    def __init__(self, *, data_partitions: int = 2, default_shards: int = 3) -> None:
        self.data_partitions = data_partitions
        self.default_shards = default_shards
        self.collections: dict[tuple[str, str], CollectionSchema] = {}
        self.rows: dict[str, dict[str, _Row]] = {}  # collection_id -> id -> row
        self.journal: dict[str, list[journal_pb2.JournalEntry]] = {}
        self.by_request: dict[str, journal_pb2.JournalEntry] = {}
        self.fail_shards: dict[int, VecraftError] = {}
        self.fail_append: VecraftError | None = None
        self.search_requests: list[query_pb2.QuerySearchRequest] = []
        self.scan_requests: list[tuple[int, storage_pb2.ShardScanRequest]] = []
        #: Rows a scan examines at most, like the storage node's budget (None = limit + 1).
        self.scan_budget: int | None = None
        self.search_affinities: list[str | None] = []
        self.events: asyncio.Queue[tuple[int, CollectionSchema]] = asyncio.Queue()
        self._next_id = 0

    # --- meta ----------------------------------------------------------------------------------------
    async def create_collection(self, request: collection_pb2.CreateCollectionRequest) -> CollectionSchema:
        tenant = request.tenant or "default"
        existing = self.collections.get((tenant, request.name))
        if existing is not None:
            if request.if_not_exists:
                return existing
            raise Conflict(f"collection {request.name!r} already exists")
        self._next_id += 1
        schema = CollectionSchema(
            tenant=tenant, name=request.name, dim=request.dim, metric=request.metric or "cosine",
            shards=request.shards or self.default_shards, replicas=request.replicas or 1,
            hnsw=hnsw_from_proto(request.hnsw),
            partition=tenant_partition(tenant, self.data_partitions),
            collection_id=f"c{self._next_id}", created_unix_ms=int(time.time() * 1000))
        self.collections[(tenant, request.name)] = schema
        self.rows[schema.collection_id] = {}
        self.events.put_nowait((PUT, schema))
        return schema

    async def get_collection(self, tenant: str, name: str) -> CollectionSchema:
        try:
            return self.collections[(tenant, name)]
        except KeyError:
            raise NotFound(f"collection {name!r} not found") from None

    async def list_collections(self, tenant: str) -> list[CollectionSchema]:
        return sorted((s for (t, _), s in self.collections.items() if t == tenant), key=lambda s: s.name)

    async def drop_collection(self, request: collection_pb2.DropCollectionRequest
                              ) -> collection_pb2.DropCollectionResponse:
        schema = await self.get_collection(request.tenant or "default", request.name)
        del self.collections[(schema.tenant, schema.name)]
        self.events.put_nowait((DELETE, schema))
        return collection_pb2.DropCollectionResponse(name=schema.name, ddl_offset=1, ddl_hlc=1)

    async def alter_collection(self, request: collection_pb2.AlterCollectionRequest) -> CollectionSchema:
        schema = await self.get_collection(request.tenant or "default", request.name)
        schema = dataclasses.replace(schema, hnsw=dataclasses.replace(schema.hnsw,
                                                                      ef_search=request.hnsw.ef_search))
        self.collections[(schema.tenant, schema.name)] = schema
        self.events.put_nowait((PUT, schema))
        return schema

    async def watch_collections(self) -> AsyncIterator[tuple[int, CollectionSchema | None]]:
        for schema in list(self.collections.values()):
            yield PUT, schema
        yield SNAPSHOT_END, None
        while True:
            yield await self.events.get()

    # --- journal -------------------------------------------------------------------------------------
    async def append(self, partition: str, payload: bytes, *, request_id: str, shards: Sequence[int],
                     ack: int, client_hlc: int) -> journal_pb2.AppendResponse:
        if self.fail_append is not None:
            raise self.fail_append
        if request_id in self.by_request:
            e = self.by_request[request_id]
            return journal_pb2.AppendResponse(partition=e.partition, offset=e.offset, hlc=e.hlc,
                                              duplicate=True, replicas_acked=1, replicas_expected=1)
        log = self.journal.setdefault(partition, [])
        entry = journal_pb2.JournalEntry(partition=partition, offset=len(log) + 1,
                                         hlc=max(client_hlc + 1, len(log) + 1000), request_id=request_id,
                                         payload=payload, shards=shards)
        log.append(entry)
        self.by_request[request_id] = entry
        self._apply(entry)
        return journal_pb2.AppendResponse(partition=partition, offset=entry.offset, hlc=entry.hlc,
                                          replicas_acked=1, replicas_expected=1)

    def _apply(self, entry: journal_pb2.JournalEntry) -> None:
        for m in journal_pb2.JournalPayload.FromString(entry.payload).mutations:
            if m.HasField("write"):
                w = m.write
                vectors = np.frombuffer(w.vectors, dtype="<f4").reshape(len(w.ids), w.dim)
                rows = self.rows[w.collection_id]
                for i, rid in enumerate(w.ids):
                    rows[rid] = _Row(vectors[i], w.metadata_json[i], w.documents[i], entry.offset, entry.hlc)
            elif m.HasField("delete"):
                for rid in m.delete.ids:
                    self.rows[m.delete.collection_id].pop(rid, None)

    async def head(self, partition: str) -> tuple[int, int]:
        log = self.journal.get(partition, [])
        return (log[-1].offset, log[-1].hlc) if log else (0, 0)

    async def lookup_request(self, request_id: str) -> journal_pb2.LookupRequestResponse:
        e = self.by_request.get(request_id)
        if e is None:
            return journal_pb2.LookupRequestResponse(found=False)
        return journal_pb2.LookupRequestResponse(found=True, partition=e.partition, offset=e.offset,
                                                 hlc=e.hlc, replicas_applied=["storage-0-r0"])

    async def pull(self, partition: str, from_offset: int, to_offset: int,
                   max_entries: int) -> journal_pb2.PullWALResponse:
        log = self.journal.get(partition, [])
        entries = [e for e in log if from_offset <= e.offset <= to_offset][:max_entries]
        return journal_pb2.PullWALResponse(entries=entries, latest_offset=len(log))

    # --- shards --------------------------------------------------------------------------------------
    @property
    def shard_groups(self) -> int:
        return self.default_shards

    async def follow_registry(self) -> None:
        await asyncio.Event().wait()  # the fake's routing is fixed: one query node per shard

    async def wait_routable(self) -> None:
        return None

    def routing_health(self) -> dict[str, object]:
        return {"shard_count": self.default_shards}

    def _schema_by_name(self, tenant: str, name: str) -> CollectionSchema:
        schema = self.collections.get((tenant or "default", name))
        if schema is None:
            raise NotFound(f"collection {name!r} not found")
        return schema

    async def search(self, shards: Sequence[int], request: query_pb2.QuerySearchRequest, deadline: float,
                     *, affinity: str | None = None) -> list[SearchPart]:
        """One call per shard (as if each shard had its own query node)."""
        parts = []
        for shard in shards:
            call = query_pb2.QuerySearchRequest()
            call.CopyFrom(request)
            call.shards[:] = [shard]
            call.timeout_ms = max(1, int((deadline - time.monotonic()) * 1000))
            self.search_affinities.append(affinity)
            try:
                parts.append(SearchPart((shard,), answer=await self.search_node([shard], call)))
            except VecraftError as exc:
                parts.append(SearchPart((shard,), error=exc))
        return parts

    async def search_node(self, shards: Sequence[int],
                          request: query_pb2.QuerySearchRequest) -> query_pb2.QuerySearchResponse:
        """One query node's QuerySearch of ``shards``."""
        self.search_requests.append(request)
        for shard in shards:
            if shard in self.fail_shards:
                raise self.fail_shards[shard]
        schema = self._schema_by_name(request.tenant, request.collection)
        query = np.frombuffer(request.vector, dtype="<f4")
        flt = parse_filter(orjson.loads(request.filter_json)) if request.filter_json else None
        rows = [(rid, r) for rid, r in self.rows[schema.collection_id].items()
                if shard_of(rid, schema.shards) in shards
                and matches(flt, orjson.loads(r.metadata_json) if r.metadata_json else None)]
        results = []
        if rows:
            matrix = np.stack([r.vector for _, r in rows])
            if schema.metric == "cosine":
                scores = (matrix @ query) / (np.linalg.norm(matrix, axis=1) * np.linalg.norm(query) + 1e-30)
            elif schema.metric == "ip":
                scores = matrix @ query
            else:
                scores = -((matrix - query) ** 2).sum(axis=1)
            for i in np.argsort(-scores)[:request.k]:
                rid, row = rows[i]
                results.append(search_pb2.ScoredVector(id=rid, score=float(scores[i]),
                                                       metadata_json=row.metadata_json,
                                                       document=row.document))
        head, _ = await self.head(schema.partition)
        info = search_pb2.ConsistencyInfo(level_requested=request.level, level_achieved=request.level,
                                          staleness_ms=3 * shards[0],
                                          max_allowed_staleness_ms=request.max_staleness_ms,
                                          index_version_used=max(head - shards[0], 0),
                                          cache_hit=shards[0] != 1, sync_performed=shards[0] == 1)
        return query_pb2.QuerySearchResponse(results=results, consistency_info=info,
                                             partition=schema.partition, shards=shards)

    async def get_records(self, shard: int, request: storage_pb2.ShardGetRequest,
                          timeout_s: float) -> storage_pb2.ShardGetResponse:
        if shard in self.fail_shards:
            raise self.fail_shards[shard]
        schema = self._schema_by_name(request.tenant, request.collection)
        rows = self.rows[schema.collection_id]
        records, missing = [], []
        for rid in request.ids:
            row = rows.get(rid)
            if row is None:
                missing.append(rid)
                continue
            records.append(storage_pb2.StoredRecord(
                id=rid, vector=row.vector.tobytes() if request.include_vectors else b"",
                metadata_json=row.metadata_json, document=row.document, offset=row.offset, hlc=row.hlc))
        return storage_pb2.ShardGetResponse(records=records, missing_ids=missing)

    async def scan_records(self, shard: int, request: storage_pb2.ShardScanRequest,
                           timeout_s: float) -> storage_pb2.ShardScanResponse:
        """The storage node's Scan: ids of ``shard`` after the cursor in order, filter, budget."""
        self.scan_requests.append((shard, request))
        if shard in self.fail_shards:
            raise self.fail_shards[shard]
        schema = self._schema_by_name(request.tenant, request.collection)
        rows = self.rows[schema.collection_id]
        ids = sorted(rid for rid in rows if shard_of(rid, schema.shards) == shard and rid > request.after)
        flt = parse_filter(orjson.loads(request.filter_json)) if request.filter_json else None
        budget = request.limit if self.scan_budget is None else self.scan_budget
        records: list[storage_pb2.StoredRecord] = []
        scanned_to, exhausted = "", True
        for examined, rid in enumerate(ids):
            if len(records) >= request.limit or examined >= budget:
                exhausted = False
                break
            scanned_to = rid
            row = rows[rid]
            if not matches(flt, orjson.loads(row.metadata_json) if row.metadata_json else None):
                continue
            records.append(storage_pb2.StoredRecord(
                id=rid, vector=row.vector.tobytes() if request.include_vectors else b"",
                metadata_json=row.metadata_json if request.include_metadata else "",
                document=row.document if request.include_documents else "", offset=row.offset, hlc=row.hlc))
        head, _ = await self.head(schema.partition)
        return storage_pb2.ShardScanResponse(records=records, exhausted=exhausted, scanned_to=scanned_to,
                                             index_version=max(head - shard, 0))
