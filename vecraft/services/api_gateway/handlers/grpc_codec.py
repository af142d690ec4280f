"""Proto <-> domain conversion for the gateway's public gRPC services.

proto3 cannot tell "unset" from zero, so zeros mean "default" where the HTTP
API would leave a field out: ``k`` 0 = 10, ``max_staleness_ms`` 0 with
BOUNDED_STALENESS = the gateway's default bound, ``collection`` "" =
``default``, ``ack`` ACK_DEFAULT = all. The request id comes from the
message's ``request_id`` field, else the ``x-request-id`` call metadata, else
it is generated; the tenant from the message, else ``x-tenant`` metadata.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import orjson

from vecraft.services.api_gateway.auth.principal import OPEN, Principal
from vecraft.services.api_gateway.journal_router.sessions import decode_token
from vecraft.services.api_gateway.listing import DEFAULT_LIST_LIMIT, ListQuery, RecordPage
from vecraft.services.api_gateway.middleware.request_id import (
    REQUEST_ID_RE,
    REQUEST_ID_RULE,
    new_request_id,
)
from vecraft.services.api_gateway.models import (
    CollectionSpec,
    DeleteBatch,
    DropOutcome,
    GetOutcome,
    GetQuery,
    JournalPage,
    OperationStatus,
    RecordView,
    RequestContext,
    SearchOutcome,
    SearchQuery,
    WriteBatch,
    WriteOutcome,
)
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.filters import parse_filter
from vecraft.shared.model.routing import DEFAULT_COLLECTION
from vecraft.shared.model.validation import validate_max_staleness_ms, validate_name
from vecraft.shared.rpc.convert import consistency_to_proto, filter_to_json, level_from_proto
from vecraft.shared.rpc.v1 import (
    collection_pb2,
    gateway_pb2,
    journal_pb2,
    search_pb2,
    storage_pb2,
)

DEFAULT_K = 10
DEFAULT_JOURNAL_LIMIT = 100


def request_context(metadata: Iterable[tuple[str, Any]] | None, *, request_id: str = "", tenant: str = "",
                    session_token: str = "", principal: Principal = OPEN,
                    request_bytes: int = 0) -> RequestContext:
    """The context of one call from its message fields and call metadata, run as ``principal``."""
    md = {key: value for key, value in metadata or () if isinstance(value, str)}
    rid = request_id or md.get("x-request-id", "")
    if rid and not REQUEST_ID_RE.match(rid):
        raise InvalidRequest(f"request_id must be {REQUEST_ID_RULE}")
    tenant_name = principal.resolve_tenant(tenant or md.get("x-tenant", ""))
    offsets, session_id = decode_token(session_token or md.get("x-session-token", ""))
    return RequestContext(request_id=rid or new_request_id(), tenant=validate_name(tenant_name, "tenant"),
                          session=offsets, session_id=session_id, principal=principal,
                          request_bytes=request_bytes)


def _collection(name: str) -> str:
    return name or DEFAULT_COLLECTION


# --- search ------------------------------------------------------------------------------------------

def _filter_json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"filter_json is not valid JSON: {exc}") from None


def search_query(req: search_pb2.SearchRequest) -> SearchQuery:
    """The search, its filter and staleness bound validated here, once (the domain layer trusts them)."""
    # Without filter_json, the spec's map<string, string>: equality on each field.
    filter_obj = _filter_json(req.filter_json) if req.filter_json else dict(req.filters)
    if req.k < 0:
        raise InvalidRequest(f"k is {req.k}; it must be between 1 and 1024")
    level = level_from_proto(req.consistency_level)
    # Only a bounded read has a bound: the field is ignored at the other levels.
    bounded = level is ConsistencyLevel.BOUNDED_STALENESS and req.max_staleness_ms != 0
    max_staleness = validate_max_staleness_ms(req.max_staleness_ms) if bounded else None
    min_offset = _offset(req.min_required_offset)
    flt = parse_filter(filter_obj)
    return SearchQuery(
        vector=np.asarray(req.vector, dtype=np.float32), k=req.k or DEFAULT_K, level=level,
        max_staleness_ms=max_staleness, min_required_offset=min_offset,
        filter=flt, filter_json=filter_to_json(filter_obj) if flt is not None else "",
        collection=_collection(req.collection), ef_search=req.ef_search,
        timeout_ms=req.timeout_ms, allow_partial=req.allow_partial,
        include_documents=req.include_documents)


def _offset(value: int) -> int:
    if value < 0:
        raise InvalidRequest(f"min_required_offset is {value}; offsets are >= 0")
    return value


def search_response(out: SearchOutcome) -> search_pb2.SearchResponse:
    return search_pb2.SearchResponse(
        results=[search_pb2.ScoredVector(id=h.id, score=h.score, metadata_json=h.metadata_json,
                                         document=h.document) for h in out.hits],
        consistency_info=consistency_to_proto(out.consistency),
        missing_shards=out.missing_shards, partition=out.partition)


# --- writes ------------------------------------------------------------------------------------------

def _ack(value: int) -> int:
    if value not in journal_pb2.AckMode.values():
        raise InvalidRequest(f"ack {value} is not an AckMode ({', '.join(journal_pb2.AckMode.keys())})")
    return value


def write_batch(req: gateway_pb2.WriteVectorsRequest, *, upsert: bool) -> WriteBatch:
    if req.dim == 0:
        raise InvalidRequest("dim is required: the number of float32 values per vector")
    row_bytes = 4 * req.dim
    if not req.vectors or len(req.vectors) % row_bytes:
        raise InvalidRequest(f"vectors holds {len(req.vectors)} bytes, not a whole number of vectors of "
                             f"dim {req.dim} ({row_bytes} bytes each)")
    vectors = np.frombuffer(req.vectors, dtype="<f4").reshape(-1, req.dim)
    return WriteBatch(
        vectors=vectors, ids=list(req.ids) or None,
        metadata=[_metadata(text, i) for i, text in enumerate(req.metadata_json)] or None,
        documents=[d or None for d in req.documents] or None, collection=_collection(req.collection),
        upsert=upsert, ack=_ack(req.ack))


def _metadata(text: str, index: int) -> Any:
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"metadata_json[{index}] is not valid JSON: {exc}") from None


def delete_batch(req: gateway_pb2.DeleteVectorsRequest) -> DeleteBatch:
    return DeleteBatch(ids=list(req.ids), collection=_collection(req.collection), ack=_ack(req.ack))


def write_response(out: WriteOutcome) -> gateway_pb2.WriteVectorsResponse:
    return gateway_pb2.WriteVectorsResponse(
        ids=out.ids, partition=out.partition, offset=out.offset, hlc=out.hlc, request_id=out.request_id,
        replicas_acked=out.replicas_acked, replicas_expected=out.replicas_expected,
        session_token=out.session_token, duplicate=out.duplicate)


def delete_response(out: WriteOutcome) -> gateway_pb2.WriteVectorsResponse:
    """A write answer plus which ids existed before the delete (as HTTP's ``delete_json``)."""
    answer = write_response(out)
    answer.deleted = bool(out.deleted_ids)
    answer.deleted_ids.extend(out.deleted_ids)
    answer.missing_ids.extend(out.missing_ids)
    return answer


# --- reads by id -------------------------------------------------------------------------------------

def get_query(req: gateway_pb2.GetVectorsRequest) -> GetQuery:
    if req.strong:
        level = ConsistencyLevel.STRONG
    elif req.session_token:
        level = ConsistencyLevel.READ_YOUR_WRITES
    else:
        level = ConsistencyLevel.EVENTUAL
    return GetQuery(ids=list(req.ids), collection=_collection(req.collection),
                    include_vectors=req.include_vectors, level=level)


def _stored_record(r: RecordView) -> storage_pb2.StoredRecord:
    return storage_pb2.StoredRecord(
        id=r.id, vector=r.vector.astype("<f4").tobytes() if r.vector is not None else b"",
        metadata_json=r.metadata_json, document=r.document, offset=r.offset, hlc=r.hlc)


def get_response(out: GetOutcome) -> gateway_pb2.GetVectorsResponse:
    return gateway_pb2.GetVectorsResponse(records=[_stored_record(r) for r in out.records],
                                          missing_ids=out.missing_ids)


# --- listing -----------------------------------------------------------------------------------------

def _validated_filter(text: str) -> str:
    """``filter_json`` of a listing, checked against the filter grammar, as forwarded ("" for none)."""
    if not text:
        return ""
    obj = _filter_json(text)
    parse_filter(obj)
    return filter_to_json(obj)


def list_query(req: gateway_pb2.ListRecordsRequest) -> ListQuery:
    """``ListRecords``: ``limit`` 0 = the default page; unset include_metadata/documents = true."""
    return ListQuery(
        collection=_collection(req.collection), after=req.after, limit=req.limit or DEFAULT_LIST_LIMIT,
        include_vectors=req.include_vectors,
        include_metadata=req.include_metadata if req.HasField("include_metadata") else True,
        include_documents=req.include_documents if req.HasField("include_documents") else True,
        filter_json=_validated_filter(req.filter_json),
        level=level_from_proto(req.consistency_level),
        min_required_offset=req.min_required_offset)


def list_response(page: RecordPage) -> gateway_pb2.ListRecordsResponse:
    return gateway_pb2.ListRecordsResponse(records=[_stored_record(r) for r in page.records],
                                           next_cursor=page.next_cursor or "",
                                           index_version=page.index_version, partition=page.partition)


# --- collections -------------------------------------------------------------------------------------

def collection_spec(req: collection_pb2.CreateCollectionRequest) -> CollectionSpec:
    return CollectionSpec(name=req.name, dim=req.dim, metric=req.metric or "cosine", shards=req.shards,
                          replicas=req.replicas, hnsw_m=req.hnsw.m,
                          hnsw_ef_construction=req.hnsw.ef_construction, hnsw_ef_search=req.hnsw.ef_search,
                          if_not_exists=req.if_not_exists)


def drop_response(out: DropOutcome) -> collection_pb2.DropCollectionResponse:
    return collection_pb2.DropCollectionResponse(name=out.name, ddl_offset=out.ddl_offset,
                                                 ddl_hlc=out.ddl_hlc)


# --- operations and audit ----------------------------------------------------------------------------

def operation_response(op: OperationStatus) -> journal_pb2.LookupRequestResponse:
    return journal_pb2.LookupRequestResponse(
        found=True, partition=op.partition, offset=op.offset, hlc=op.hlc,
        replicas_applied=op.replicas_applied, replicas_pending=op.replicas_pending)


def journal_request(req: gateway_pb2.ReadJournalRequest) -> tuple[str, int, int]:
    """(partition, from_offset, limit) with proto3 zeros as defaults."""
    return req.partition, req.from_offset or 1, req.limit or DEFAULT_JOURNAL_LIMIT


def journal_response(page: JournalPage) -> gateway_pb2.ReadJournalResponse:
    return gateway_pb2.ReadJournalResponse(
        entries=[gateway_pb2.DecodedEntry(partition=e.partition, offset=e.offset, hlc=e.hlc,
                                          request_id=e.request_id,
                                          summary_json=orjson.dumps(e.summary).decode())
                 for e in page.entries],
        latest_offset=page.latest_offset)
