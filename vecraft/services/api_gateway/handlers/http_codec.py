"""HTTP <-> domain conversion: JSON bodies and headers in, JSON bodies and headers out.

Bodies are parsed with orjson and read field by field: vectors go straight to
numpy (one float32 array per request) and every other field is type-checked
here with a message naming it. Unknown fields are refused (a typo such as
``filter`` for ``filters`` would otherwise be silently ignored). ``null`` is the
same as leaving a field out.

Precedence: a body field wins over its header (``consistency_level`` over
``X-Consistency-Level``, ``max_staleness_ms`` over ``X-Max-Staleness-Ms``,
``session_token`` over ``X-Session-Token``, ``request_id`` over ``X-Request-Id``).
The collection may be named in the body or by ``?collection=``; both must agree.
"""

from __future__ import annotations

import base64
import binascii
import builtins
import datetime as dt
from collections.abc import Mapping
from typing import Any

import numpy as np
import orjson
from starlette.requests import Request

from vecraft.services.api_gateway.auth.principal import OPEN, Principal
from vecraft.services.api_gateway.journal_router.sessions import decode_token
from vecraft.services.api_gateway.listing import ListQuery, RecordPage
from vecraft.services.api_gateway.middleware.request_id import REQUEST_ID_RE, REQUEST_ID_RULE
from vecraft.services.api_gateway.models import (
    CollectionSpec,
    DeleteBatch,
    DropOutcome,
    GetOutcome,
    JournalPage,
    OperationStatus,
    RecordView,
    RequestContext,
    SearchOutcome,
    SearchQuery,
    Transaction,
    WriteBatch,
    WriteOutcome,
)
from vecraft.services.api_gateway.responses import fragment
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.filters import parse_filter
from vecraft.shared.model.limits import MAX_DIM
from vecraft.shared.model.routing import DEFAULT_COLLECTION
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.model.validation import (
    json_type_name,
    validate_k,
    validate_max_staleness_ms,
    validate_name,
)
from vecraft.shared.rpc.convert import filter_to_json
from vecraft.shared.rpc.v1 import journal_pb2

ACK_MODES = {"journal": journal_pb2.ACK_JOURNAL, "one": journal_pb2.ACK_ONE, "all": journal_pb2.ACK_ALL}
_MAX_INT64 = 2**63 - 1


# --- parsing helpers ---------------------------------------------------------------------------------

async def read_json(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or InvalidRequest saying what is wrong with it."""
    raw = await request.body()
    request.scope.setdefault("state", {})["body_bytes"] = len(raw)
    if not raw.strip():
        raise InvalidRequest("request body is empty; send a JSON object")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        hint = ""
        if any(word in raw for word in (b"NaN", b"Infinity")):
            hint = "; NaN and Infinity are not JSON numbers and vector values must be finite"
        raise InvalidRequest(f"request body is not valid JSON: {exc}{hint}") from None
    if not isinstance(obj, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {json_type_name(obj)}")
    return obj


class Fields:
    """Typed access to a JSON object's fields; refuses fields not in ``allowed``."""

    def __init__(self, obj: Mapping[str, Any], allowed: tuple[str, ...], where: str = "body") -> None:
        unknown = [key for key in obj if key not in allowed]
        if unknown:
            raise InvalidRequest(f"unknown field {unknown[0]!r} in the {where}; accepted fields: "
                                 f"{', '.join(allowed)}", details={"unknown_fields": unknown})
        self._obj = obj

    def has(self, name: str) -> bool:
        return self._obj.get(name) is not None

    def raw(self, name: str, default: Any = None) -> Any:
        value = self._obj.get(name)
        return default if value is None else value

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self._obj.get(name)
        if value is None:
            return default
        if not isinstance(value, str):
            raise InvalidRequest(f"{name} must be a string, got {json_type_name(value)}")
        return value

    def int(self, name: builtins.str, default: int | None = None, *, low: int = 0,
            high: int = _MAX_INT64) -> int | None:
        value = self._obj.get(name)
        if value is None:
            return default
        return check_int(name, value, low, high)

    def bool(self, name: builtins.str, default: bool = False) -> bool:
        value = self._obj.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise InvalidRequest(f"{name} must be true or false, got {json_type_name(value)}")
        return value

    def object(self, name: builtins.str) -> dict[builtins.str, Any] | None:
        value = self._obj.get(name)
        if value is not None and not isinstance(value, dict):
            raise InvalidRequest(f"{name} must be a JSON object, got {json_type_name(value)}")
        return value

    def list(self, name: builtins.str) -> list[Any] | None:
        value = self._obj.get(name)
        if value is not None and not isinstance(value, list):
            raise InvalidRequest(f"{name} must be a list, got {json_type_name(value)}")
        return value


def check_int(name: str, value: Any, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(
            f"{name} must be an integer between {low} and {high}, got {json_type_name(value)}")
    if not low <= value <= high:
        raise InvalidRequest(f"{name} is {value}; it must be between {low} and {high}")
    return value


def parse_ack(value: str | None) -> int:
    if value is None:
        return journal_pb2.ACK_DEFAULT
    mode = ACK_MODES.get(value.strip().lower())
    if mode is None:
        raise InvalidRequest(f"ack {value!r} is not one of {', '.join(ACK_MODES)}",
                             details={"accepted": list(ACK_MODES)})
    return mode


def collection_of(f: Fields, query_collection: str | None) -> str:
    """The collection a request names in its body or by ``?collection=`` (``default`` if neither).

    Raises:
        InvalidRequest: body and query name different collections.
    """
    body = f.str("collection") or None
    if body is not None and query_collection is not None and body != query_collection:
        raise InvalidRequest(f"the body names collection {body!r} but ?collection= names "
                             f"{query_collection!r}; name it once, or the same in both",
                             details={"body": body, "query": query_collection})
    return body or query_collection or DEFAULT_COLLECTION


def request_context(request: Request, body: Fields | None = None) -> RequestContext:
    """Request id, tenant and session of a request (body fields win over headers)."""
    state = request.scope.get("state", {})
    request_id = body.str("request_id") if body is not None else None
    if request_id is not None:
        if not REQUEST_ID_RE.match(request_id):
            raise InvalidRequest(f"request_id must be {REQUEST_ID_RULE}")
        state["request_id"] = request_id
    elif state.get("request_id_error"):
        raise InvalidRequest(state["request_id_error"])
    token = body.str("session_token") if body is not None else None
    if token is None:
        token = request.headers.get("x-session-token")
    principal = principal_of(request)
    tenant = principal.resolve_tenant(request.headers.get("x-tenant"))
    offsets, session_id = decode_token(token)
    return RequestContext(request_id=state["request_id"], tenant=validate_name(tenant, "tenant"),
                          session=offsets, session_id=session_id, principal=principal,
                          request_bytes=_request_bytes(request))


def _request_bytes(request: Request) -> int:
    """The body's size: as read, else as declared (the body-limit middleware checked the header)."""
    read = request.scope.get("state", {}).get("body_bytes")
    if isinstance(read, int):
        return read
    declared = request.headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


def principal_of(request: Request) -> Principal:
    """Who the request runs as: set by the auth middleware; OPEN when auth is off."""
    principal = request.scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else OPEN


# --- requests ----------------------------------------------------------------------------------------

SEARCH_FIELDS = ("vector", "vector_b64", "k", "consistency_level", "max_staleness_ms", "filters",
                 "collection", "min_required_offset", "session_token", "ef_search", "timeout_ms",
                 "allow_partial", "include_documents")


def search_query(f: Fields, headers: Mapping[str, str], *, query_collection: str | None) -> SearchQuery:
    """The spec's search body (+ extensions) and its X-Consistency-Level / X-Max-Staleness-Ms headers."""
    if f.has("vector") and f.has("vector_b64"):
        raise InvalidRequest("give one of vector (a list of numbers) or vector_b64, not both")
    if f.has("vector_b64"):
        vector: Any = decode_b64_vector(f.str("vector_b64") or "")
    elif f.has("vector"):
        vector = f.raw("vector")
    else:
        raise InvalidRequest("vector is required: a list of numbers (or vector_b64: base64 of float32 "
                             "little endian)")
    level_text = f.raw("consistency_level", headers.get("x-consistency-level"))
    staleness: Any = f.raw("max_staleness_ms")
    if staleness is None and headers.get("x-max-staleness-ms") is not None:
        text = headers["x-max-staleness-ms"].strip()
        if not text.lstrip("-").isdigit():
            raise InvalidRequest(f"X-Max-Staleness-Ms must be an integer number of milliseconds, got "
                                 f"{text[:32]!r}")
        staleness = int(text)
    if staleness is not None:
        staleness = validate_max_staleness_ms(staleness)
    if level_text is not None:
        level = ConsistencyLevel.parse(level_text)
    else:
        # A staleness bound alone asks for bounded staleness.
        level = ConsistencyLevel.BOUNDED_STALENESS if staleness is not None else ConsistencyLevel.EVENTUAL
    k = validate_k(f.raw("k", 10))
    min_offset = f.int("min_required_offset", 0) or 0
    filter_obj = f.object("filters")
    flt = parse_filter(filter_obj)
    return SearchQuery(
        vector=vector, k=k, level=level, max_staleness_ms=staleness, min_required_offset=min_offset,
        filter=flt, filter_json=filter_to_json(filter_obj) if flt is not None else "",
        collection=collection_of(f, query_collection),
        ef_search=f.int("ef_search", 0, low=1, high=4096) or 0,
        timeout_ms=f.int("timeout_ms", 0, low=1, high=300_000) or 0,
        allow_partial=f.bool("allow_partial"), include_documents=f.bool("include_documents"))


WRITE_OPTION_FIELDS = ("collection", "request_id", "ack", "session_token")
INSERT_FIELDS = ("id", "vector", "metadata", "document", *WRITE_OPTION_FIELDS)
UPSERT_ONE_FIELDS = ("vector", "metadata", "document", *WRITE_OPTION_FIELDS)
BATCH_FIELDS = ("ids", "vectors", "vectors_b64", "dim", "metadatas", "documents", *WRITE_OPTION_FIELDS)
DELETE_FIELDS = ("ids", *WRITE_OPTION_FIELDS)


def _ack(f: Fields, query_ack: str | None) -> int:
    return parse_ack(f.str("ack", query_ack))


def write_one(f: Fields, *, record_id: str | None, upsert: bool, query_ack: str | None,
              query_collection: str | None) -> WriteBatch:
    """``POST /v1/vectors`` (id in the body) or ``PUT /v1/vectors/{id}`` (id in the path)."""
    if not f.has("vector"):
        raise InvalidRequest("vector is required: a list of numbers")
    vector = f.raw("vector")
    if not isinstance(vector, list):
        raise InvalidRequest(f"vector must be a list of numbers, got {json_type_name(vector)}")
    if record_id is None and f.has("id"):
        record_id = f.raw("id")
    return WriteBatch(
        vectors=[vector], ids=[record_id] if record_id is not None else None,
        metadata=[f.raw("metadata")], documents=[f.raw("document")],
        collection=collection_of(f, query_collection), upsert=upsert,
        ack=_ack(f, query_ack))


def write_many(f: Fields, *, upsert: bool, query_ack: str | None,
               query_collection: str | None) -> WriteBatch:
    """``POST /v1/vectors/batch`` and ``/v1/vectors/upsert``: ``vectors`` or ``vectors_b64`` + ``dim``."""
    if f.has("vectors") == f.has("vectors_b64"):
        raise InvalidRequest("give exactly one of vectors (a list of lists of numbers) or vectors_b64 "
                             "(base64 float32 little endian) with dim")
    if f.has("vectors"):
        if f.has("dim"):
            raise InvalidRequest("dim goes with vectors_b64; with vectors the dimension is the row length")
        vectors: Any = f.list("vectors")
    else:
        vectors = decode_b64_vectors(f.str("vectors_b64") or "", f.int("dim", low=1, high=MAX_DIM))
    return WriteBatch(
        vectors=vectors, ids=f.list("ids"), metadata=f.list("metadatas"), documents=f.list("documents"),
        collection=collection_of(f, query_collection), upsert=upsert,
        ack=_ack(f, query_ack))


def _b64_floats(text: str, field: str) -> bytes:
    """The bytes of a base64 field of little-endian float32 values."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{field} is not valid base64 (standard alphabet, with padding)") from None


def decode_b64_vectors(text: str, dim: int | None) -> np.ndarray:
    """rows x dim float32 from base64 of little-endian floats."""
    if dim is None:
        raise InvalidRequest("dim is required with vectors_b64 (the number of floats per vector)")
    raw = _b64_floats(text, "vectors_b64")
    row_bytes = 4 * dim
    if not raw or len(raw) % row_bytes:
        raise InvalidRequest(f"vectors_b64 holds {len(raw)} bytes, not a whole number of vectors of "
                             f"dim {dim} ({row_bytes} bytes each)")
    return np.frombuffer(raw, dtype="<f4").reshape(-1, dim)


def decode_b64_vector(text: str) -> np.ndarray:
    """A search's ``vector_b64``: one vector, its dimension its length."""
    raw = _b64_floats(text, "vector_b64")
    if not raw or len(raw) % 4 or len(raw) // 4 > MAX_DIM:
        raise InvalidRequest(f"vector_b64 holds {len(raw)} bytes, not 1 to {MAX_DIM} float32 values "
                             "(4 bytes each)")
    return np.frombuffer(raw, dtype="<f4")


def delete_batch(f: Fields, *, query_ack: str | None, query_collection: str | None) -> DeleteBatch:
    if not f.has("ids"):
        raise InvalidRequest("ids is required: a list of record ids")
    return DeleteBatch(ids=f.list("ids") or [], collection=collection_of(f, query_collection),
                       ack=_ack(f, query_ack))


TXN_FIELDS = ("operations", "request_id", "ack", "session_token")
TXN_STEP_FIELDS = ("op", "collection", "ids", "vectors", "vectors_b64", "dim", "metadatas", "documents")
TXN_OPS = ("insert", "upsert", "delete")


def transaction(f: Fields, *, query_ack: str | None) -> Transaction:
    """``POST /v1/transactions``: ``operations`` is a list of batch writes / deletes, each naming
    its ``op``."""
    items = f.list("operations")
    if not items:
        raise InvalidRequest("operations is required: a list of {op: insert|upsert|delete, collection, ...}")
    steps: list[WriteBatch | DeleteBatch] = []
    for n, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequest(f"operations[{n}] must be a JSON object, got {json_type_name(item)}")
        step = Fields(item, TXN_STEP_FIELDS, f"operations[{n}] object")
        op = step.str("op")
        if op not in TXN_OPS:
            raise InvalidRequest(f"operations[{n}].op must be one of {', '.join(TXN_OPS)}, got {op!r}")
        if op == "delete":
            steps.append(delete_batch(step, query_ack=None, query_collection=None))
        else:
            steps.append(write_many(step, upsert=op == "upsert", query_ack=None, query_collection=None))
    return Transaction(steps=steps, ack=_ack(f, query_ack))


COLLECTION_FIELDS = ("name", "dim", "metric", "shards", "replicas", "hnsw")
HNSW_FIELDS = ("m", "ef_construction", "ef_search")


def collection_spec(f: Fields) -> CollectionSpec:
    for required in ("name", "dim"):
        if not f.has(required):
            raise InvalidRequest(f"{required} is required to create a collection")
    hnsw = Fields(f.object("hnsw") or {}, HNSW_FIELDS, "hnsw object")
    return CollectionSpec(
        name=f.raw("name"), dim=f.raw("dim"), metric=f.raw("metric", "cosine"),
        shards=f.int("shards", 0, low=1, high=64) or 0, replicas=f.int("replicas", 0, low=1, high=5) or 0,
        hnsw_m=hnsw.int("m", 0, low=1, high=2**31 - 1) or 0,
        hnsw_ef_construction=hnsw.int("ef_construction", 0, low=1, high=2**31 - 1) or 0,
        hnsw_ef_search=hnsw.int("ef_search", 0, low=1, high=2**31 - 1) or 0)


def alter_ef_search(f: Fields) -> int:
    hnsw = Fields(f.object("hnsw") or {}, ("ef_search",), "hnsw object")
    if not hnsw.has("ef_search"):
        raise InvalidRequest('only hnsw.ef_search can change: send {"hnsw": {"ef_search": N}}')
    return hnsw.int("ef_search", low=1, high=2**31 - 1) or 0


def level_param(value: str | None) -> ConsistencyLevel:
    return ConsistencyLevel.parse(value) if value is not None else ConsistencyLevel.EVENTUAL


def _query_parameter(name: str, exc: InvalidRequest) -> InvalidRequest:
    """``exc`` with the query parameter it is about named first."""
    return InvalidRequest(f"query parameter {name!r}: {exc.message}",
                          details={**exc.details, "parameter": name})


def filter_param(text: str | None) -> str:
    """``?filter=`` (a JSON object in the search filter grammar), validated, as the compact text
    forwarded to the storage nodes ("" for none)."""
    if text is None:
        return ""
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"query parameter 'filter' is not valid JSON: {exc}",
                             details={"parameter": "filter"}) from None
    if not isinstance(obj, dict):
        raise InvalidRequest(f"query parameter 'filter' must be a JSON object, got {json_type_name(obj)}",
                             details={"parameter": "filter"})
    try:
        parse_filter(obj)
    except InvalidRequest as exc:
        raise _query_parameter("filter", exc) from None
    return filter_to_json(obj)


def list_query(collection: str, *, after: str | None, limit: int, include_vectors: bool,
               include_metadata: bool, include_documents: bool, filter_text: str | None,
               consistency_level: str | None, min_required_offset: int) -> ListQuery:
    """``GET /v1/collections/{name}/records``; every problem names its query parameter."""
    try:
        level = level_param(consistency_level)
    except InvalidRequest as exc:
        raise _query_parameter("consistency_level", exc) from None
    return ListQuery(collection=collection, after=after or "", limit=limit, include_vectors=include_vectors,
                     include_metadata=include_metadata, include_documents=include_documents,
                     filter_json=filter_param(filter_text), level=level,
                     min_required_offset=min_required_offset)


# --- responses ---------------------------------------------------------------------------------------

def search_json(out: SearchOutcome, *, include_documents: bool) -> dict[str, Any]:
    results = []
    for hit in out.hits:
        item: dict[str, Any] = {"id": hit.id, "score": np.float32(hit.score),
                                "metadata": fragment(hit.metadata_json)}
        if include_documents:
            item["document"] = hit.document or None
        results.append(item)
    c = out.consistency
    return {
        "results": results,
        "consistency_info": {
            "level_requested": c.level_requested.wire_name, "level_achieved": c.level_achieved.wire_name,
            "staleness_ms": c.staleness_ms, "max_allowed_staleness_ms": c.max_allowed_staleness_ms,
            "index_version": c.index_version, "cache_hit": c.cache_hit,
            "sync_performed": c.sync_performed,
        },
        "partition": out.partition,
        "missing_shards": out.missing_shards,
    }


def search_headers(out: SearchOutcome) -> dict[str, str]:
    """The spec's response headers; always equal to ``consistency_info``."""
    c = out.consistency
    return {"X-Actual-Staleness-Ms": str(c.staleness_ms), "X-Index-Version-Used": str(c.index_version),
            "X-Consistency-Achieved": c.level_achieved.wire_name,
            "X-Cache-Hit": "true" if c.cache_hit else "false",
            "X-Sync-Performed": "true" if c.sync_performed else "false"}


def write_json(out: WriteOutcome) -> dict[str, Any]:
    return {"id": out.ids[0] if len(out.ids) == 1 else None, "ids": out.ids, "partition": out.partition,
            "offset": out.offset, "hlc": out.hlc, "request_id": out.request_id,
            "replicas_acked": out.replicas_acked, "replicas_expected": out.replicas_expected,
            "session_token": out.session_token, "duplicate": out.duplicate}


def delete_json(out: WriteOutcome) -> dict[str, Any]:
    return {**write_json(out), "deleted": bool(out.deleted_ids), "deleted_ids": out.deleted_ids,
            "missing_ids": out.missing_ids}


def record_json(rec: RecordView) -> dict[str, Any]:
    return {"id": rec.id, "vector": rec.vector, "metadata": fragment(rec.metadata_json),
            "document": rec.document or None, "offset": rec.offset, "hlc": rec.hlc}


def record_page_json(collection: str, page: RecordPage) -> dict[str, Any]:
    return {"records": [record_json(rec) for rec in page.records], "next_cursor": page.next_cursor,
            "collection": collection, "partition": page.partition, "index_version": page.index_version}


def single_record(out: GetOutcome) -> RecordView | None:
    return out.records[0] if out.records else None


def collection_json(s: CollectionSchema) -> dict[str, Any]:
    created = (dt.datetime.fromtimestamp(s.created_unix_ms / 1000, tz=dt.UTC).isoformat()
               .replace("+00:00", "Z") if s.created_unix_ms else None)
    return {"name": s.name, "tenant": s.tenant, "dim": s.dim, "metric": s.metric, "shards": s.shards,
            "replicas": s.replicas,
            "hnsw": {"m": s.hnsw.m, "ef_construction": s.hnsw.ef_construction, "ef_search": s.hnsw.ef_search},
            "partition": s.partition, "collection_id": s.collection_id, "created_at": created,
            "ddl_offset": s.ddl_offset, "ddl_hlc": s.ddl_hlc}


def drop_json(out: DropOutcome) -> dict[str, Any]:
    return {"name": out.name, "dropped": True, "ddl_offset": out.ddl_offset, "ddl_hlc": out.ddl_hlc}


def operation_json(op: OperationStatus) -> dict[str, Any]:
    return {"request_id": op.request_id, "partition": op.partition, "offset": op.offset, "hlc": op.hlc,
            "replicas_applied": op.replicas_applied, "replicas_pending": op.replicas_pending}


def journal_json(partition: str, page: JournalPage, from_offset: int) -> dict[str, Any]:
    entries = [{"offset": e.offset, "hlc": e.hlc, "request_id": e.request_id, "summary": e.summary}
               for e in page.entries]
    next_offset = page.entries[-1].offset + 1 if page.entries else (page.trimmed_before or from_offset)
    out = {"partition": partition, "entries": entries, "latest_offset": page.latest_offset,
           "next_offset": next_offset}
    if page.trimmed_before is not None:
        out["trimmed_before"] = page.trimmed_before
    return out
