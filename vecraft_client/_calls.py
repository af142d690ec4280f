"""Request building and response parsing, shared by every client and transport.

Each public operation becomes one :class:`Call`: how to send it over HTTP
(method, path, query, JSON body, headers), how to send it over gRPC (method
path and request message), and how to turn either answer into the SDK's
models. Sync and async clients, HTTP and gRPC transports all run the same
Calls; only the I/O differs.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import numpy as np
import orjson
from google.protobuf.message import Message

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.rpc.convert import level_from_proto, level_to_proto
from vecraft.shared.rpc.v1 import collection_pb2, gateway_pb2, journal_pb2, search_pb2, storage_pb2
from vecraft_client._models import (
    Collection,
    ConsistencyInfo,
    DeleteResult,
    Operation,
    SearchResponse,
    SearchResult,
    VectorRecord,
    WriteResult,
    allowed_staleness,
)

T = TypeVar("T")

_ACK = {"journal": journal_pb2.ACK_JOURNAL, "one": journal_pb2.ACK_ONE, "all": journal_pb2.ACK_ALL}


@dataclass
class Call(Generic[T]):
    """One operation, ready for either transport."""

    method: str
    path: str
    parse_http: Callable[[Any], T]
    json: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    #: gRPC method path ("/vecraft.v1.VectorService/Insert") and request message.
    grpc_method: str = ""
    grpc_request: Message | None = None
    grpc_response: type[Message] | None = None
    parse_grpc: Callable[[Any], T] | None = None
    #: Safe to send again after a 429/503 or a lost connection.
    idempotent: bool = True
    #: Run on the parsed result (sessions record their write positions here).
    on_result: list[Callable[[T], None]] = field(default_factory=list)

    def finish(self, result: T) -> T:
        for hook in self.on_result:
            hook(result)
        return result


# ---- conversions ---------------------------------------------------------------

def as_matrix(vectors: Any) -> np.ndarray:
    """A list of lists or a 2-d array as a C-contiguous float32 matrix."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise ValueError(f"vectors must be 2-dimensional (rows of equal length), got shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype="<f4")


def as_list(vector: Any) -> list[float]:
    if isinstance(vector, np.ndarray):
        return vector.astype(np.float32).ravel().tolist()
    return list(vector)


def _vector_bytes(vector: Any) -> bytes:
    return np.ascontiguousarray(np.asarray(vector, dtype="<f4").ravel()).tobytes()


def _numpy_scalar(value: Any) -> Any:
    """orjson's ``default``: numpy scalars as their Python value; anything else is refused."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(obj: Any, what: str = "request body") -> bytes:
    """JSON of a request body or metadata; numpy arrays and scalars become plain numbers.

    Raises:
        InvalidRequest: a value JSON cannot represent (a set, a datetime, an object ...).
    """
    try:
        return orjson.dumps(obj, default=_numpy_scalar, option=orjson.OPT_SERIALIZE_NUMPY)
    except orjson.JSONEncodeError as exc:
        raise InvalidRequest(f"{what} is not JSON serializable: {exc}") from exc


def _meta_json(metadata: Mapping[str, Any] | None) -> str:
    return dumps(metadata, "metadata").decode() if metadata is not None else ""


def path_segment(value: str) -> str:
    """``value`` percent-quoted as one URL path segment (``a/b`` -> ``a%2Fb``)."""
    return quote(value, safe="")


def _meta_obj(text: str) -> dict[str, Any] | None:
    return orjson.loads(text) if text else None


def new_request_id() -> str:
    return uuid.uuid4().hex


def _drop_none(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if v is not None}


def _ack_proto(ack: str | None) -> journal_pb2.AckMode:
    """The gRPC ``ack`` for the name the HTTP gateway accepts (case-insensitive); None: the default."""
    if ack is None:
        return journal_pb2.ACK_DEFAULT
    mode = _ACK.get(ack.strip().lower())
    if mode is None:
        raise InvalidRequest(f"ack {ack!r} is not one of {', '.join(_ACK)}", details={"accepted": list(_ACK)})
    return mode


def _level_proto(level: ConsistencyLevel | str | int | None) -> search_pb2.ConsistencyLevel:
    # Unset: the proto3 default (0, EVENTUAL), the same bytes as leaving the field out.
    return level_to_proto(ConsistencyLevel.parse(level)) if level is not None else search_pb2.EVENTUAL


# ---- parsers -------------------------------------------------------------------

def _write_result(obj: dict[str, Any]) -> WriteResult:
    ids = list(obj.get("ids") or ([obj["id"]] if obj.get("id") else []))
    return WriteResult(id=obj.get("id") or (ids[0] if ids else ""), ids=ids,
                       partition=obj.get("partition", ""), offset=int(obj.get("offset", 0)),
                       hlc=int(obj.get("hlc", 0)), request_id=obj.get("request_id", ""),
                       replicas_acked=int(obj.get("replicas_acked", 0)),
                       replicas_expected=int(obj.get("replicas_expected", 0)),
                       session_token=obj.get("session_token", ""), duplicate=bool(obj.get("duplicate")))


def _delete_result(obj: dict[str, Any]) -> DeleteResult:
    w = _write_result(obj)
    deleted_ids = obj.get("deleted_ids")
    missing_ids = obj.get("missing_ids")
    return DeleteResult(
        id=w.id, ids=w.ids, partition=w.partition, offset=w.offset, hlc=w.hlc, request_id=w.request_id,
        replicas_acked=w.replicas_acked, replicas_expected=w.replicas_expected,
        session_token=w.session_token, duplicate=w.duplicate,
        deleted=bool(obj["deleted"]) if obj.get("deleted") is not None else None,
        deleted_ids=list(deleted_ids) if deleted_ids is not None else None,
        missing_ids=list(missing_ids) if missing_ids is not None else None)


def _delete_result_pb(msg: gateway_pb2.WriteVectorsResponse) -> DeleteResult:
    w = _write_result_pb(msg)
    # Every id of a delete is in deleted_ids or missing_ids; both empty means a gateway that
    # does not report them: unknown (None), not "nothing existed".
    known = bool(msg.deleted_ids or msg.missing_ids)
    return DeleteResult(id=w.id, ids=w.ids, partition=w.partition, offset=w.offset, hlc=w.hlc,
                        request_id=w.request_id, replicas_acked=w.replicas_acked,
                        replicas_expected=w.replicas_expected, session_token=w.session_token,
                        duplicate=w.duplicate, deleted=msg.deleted if known else None,
                        deleted_ids=list(msg.deleted_ids) if known else None,
                        missing_ids=list(msg.missing_ids) if known else None)


def _write_result_pb(msg: gateway_pb2.WriteVectorsResponse) -> WriteResult:
    ids = list(msg.ids)
    return WriteResult(id=ids[0] if ids else "", ids=ids, partition=msg.partition, offset=msg.offset,
                       hlc=msg.hlc, request_id=msg.request_id, replicas_acked=msg.replicas_acked,
                       replicas_expected=msg.replicas_expected, session_token=msg.session_token,
                       duplicate=msg.duplicate)


def _search_response(obj: dict[str, Any]) -> SearchResponse:
    results = [SearchResult(id=r["id"], score=float(r["score"]), metadata=r.get("metadata"),
                            document=r.get("document")) for r in obj.get("results", [])]
    return SearchResponse(results=results,
                          consistency_info=ConsistencyInfo.from_json(obj["consistency_info"]),
                          partition=obj.get("partition", ""),
                          missing_shards=list(obj.get("missing_shards") or []))


def _search_response_pb(msg: search_pb2.SearchResponse) -> SearchResponse:
    ci = msg.consistency_info
    requested = level_from_proto(ci.level_requested)
    info = ConsistencyInfo(
        level_requested=requested,
        level_achieved=level_from_proto(ci.level_achieved),
        staleness_ms=ci.staleness_ms,
        max_allowed_staleness_ms=allowed_staleness(requested, ci.max_allowed_staleness_ms),
        index_version=ci.index_version_used, cache_hit=ci.cache_hit, sync_performed=ci.sync_performed)
    results = [SearchResult(id=r.id, score=r.score, metadata=_meta_obj(r.metadata_json),
                            document=r.document or None) for r in msg.results]
    return SearchResponse(results=results, consistency_info=info, partition=msg.partition,
                          missing_shards=list(msg.missing_shards))


def _record(obj: dict[str, Any]) -> VectorRecord:
    return VectorRecord(id=obj["id"], vector=obj.get("vector"), metadata=obj.get("metadata"),
                        document=obj.get("document"), offset=int(obj.get("offset", 0)),
                        hlc=int(obj.get("hlc", 0)))


def _collection_pb(msg: collection_pb2.CollectionSchema) -> Collection:
    return Collection(name=msg.name, dim=msg.dim, metric=msg.metric, shards=msg.shards,
                      replicas=msg.replicas,
                      hnsw={"m": msg.hnsw.m, "ef_construction": msg.hnsw.ef_construction,
                            "ef_search": msg.hnsw.ef_search},
                      partition=msg.partition, tenant=msg.tenant, collection_id=msg.collection_id)


def _operation(obj: dict[str, Any]) -> Operation:
    return Operation(request_id=obj.get("request_id", ""), partition=obj.get("partition", ""),
                     offset=int(obj.get("offset", 0)), hlc=int(obj.get("hlc", 0)),
                     replicas_applied=list(obj.get("replicas_applied") or []),
                     replicas_pending=list(obj.get("replicas_pending") or []))


# ---- builders ------------------------------------------------------------------

def search(vector: Any, k: int, consistency_level: ConsistencyLevel | str | None,
           max_staleness_ms: int | None, filters: Mapping[str, Any] | None, collection: str | None,
           min_required_offset: int | None, session_token: str | None, ef_search: int | None,
           timeout_ms: int | None, *, include_documents: bool = False) -> Call[SearchResponse]:
    level = ConsistencyLevel.parse(consistency_level) if consistency_level is not None else None
    body = _drop_none({
        "vector": as_list(vector), "k": k,
        "consistency_level": level.wire_name if level is not None else None,
        "max_staleness_ms": max_staleness_ms, "filters": dict(filters) if filters else None,
        "collection": collection, "min_required_offset": min_required_offset,
        "session_token": session_token or None, "ef_search": ef_search, "timeout_ms": timeout_ms,
        # Left out unless asked: the spec's request body stays exactly the spec's.
        "include_documents": True if include_documents else None,
    })
    flat_equality = bool(filters) and all(isinstance(v, str) for v in (filters or {}).values())
    request = search_pb2.SearchRequest(
        vector=as_list(vector), k=k, consistency_level=_level_proto(level),
        max_staleness_ms=max_staleness_ms or 0, min_required_offset=min_required_offset or 0,
        filters=dict(filters) if flat_equality and filters else {},
        filter_json=dumps(dict(filters), "filters").decode() if filters and not flat_equality else "",
        collection=collection or "", session_token=session_token or "", ef_search=ef_search or 0,
        timeout_ms=timeout_ms or 0, include_documents=include_documents)
    return Call("POST", "/v1/vectors/search", _search_response, json=body,
                grpc_method="/vecraft.v1.VectorSearchService/Search", grpc_request=request,
                grpc_response=search_pb2.SearchResponse, parse_grpc=_search_response_pb)


def write(vectors: Any, ids: Sequence[str] | None, metadatas: Sequence[Mapping[str, Any] | None] | None,
          documents: Sequence[str | None] | None, collection: str | None, *, upsert: bool,
          session_token: str | None, ack: str | None, request_id: str | None) -> Call[WriteResult]:
    """One journal entry: a batch insert or upsert."""
    matrix = as_matrix(vectors)
    rid = request_id or new_request_id()
    body = _drop_none({
        "collection": collection, "ids": list(ids) if ids is not None else None,
        "vectors_b64": base64.b64encode(matrix.tobytes()).decode(), "dim": int(matrix.shape[1]),
        "metadatas": list(metadatas) if metadatas is not None else None,
        "documents": list(documents) if documents is not None else None,
        "session_token": session_token or None, "ack": ack,
    })
    request = gateway_pb2.WriteVectorsRequest(
        collection=collection or "", ids=list(ids or []), dim=int(matrix.shape[1]), vectors=matrix.tobytes(),
        metadata_json=[_meta_json(m) for m in metadatas] if metadatas is not None else [],
        documents=[d or "" for d in documents] if documents is not None else [],
        request_id=rid, ack=_ack_proto(ack), session_token=session_token or "")
    return Call("POST", "/v1/vectors/upsert" if upsert else "/v1/vectors/batch", _write_result, json=body,
                headers={"X-Request-Id": rid},
                grpc_method=f"/vecraft.v1.VectorService/{'Upsert' if upsert else 'Insert'}",
                grpc_request=request, grpc_response=gateway_pb2.WriteVectorsResponse,
                parse_grpc=_write_result_pb)


def write_one(vector: Any, record_id: str | None, metadata: Mapping[str, Any] | None, document: str | None,
              collection: str | None, *, upsert: bool, session_token: str | None, ack: str | None,
              request_id: str | None) -> Call[WriteResult]:
    call = write([as_list(vector)], [record_id] if record_id is not None else None,
                 [metadata] if metadata is not None else None,
                 [document] if document is not None else None, collection, upsert=upsert,
                 session_token=session_token, ack=ack, request_id=request_id)
    # The single-record routes keep the HTTP API readable for curl users.
    body = _drop_none({"collection": collection, "id": record_id, "vector": as_list(vector),
                       "metadata": dict(metadata) if metadata is not None else None, "document": document,
                       "session_token": session_token or None, "ack": ack})
    if upsert:
        if record_id is None:
            raise ValueError("upsert_vector needs an id")
        body.pop("id")
        call.method, call.path = "PUT", f"/v1/vectors/{path_segment(record_id)}"
    else:
        call.path = "/v1/vectors"
    call.json = body
    return call


def delete(ids: Sequence[str], collection: str | None, *, session_token: str | None, ack: str | None,
           request_id: str | None) -> Call[DeleteResult]:
    rid = request_id or new_request_id()
    body = _drop_none({"collection": collection, "ids": list(ids), "session_token": session_token or None,
                       "ack": ack})
    request = gateway_pb2.DeleteVectorsRequest(collection=collection or "", ids=list(ids), request_id=rid,
                                               ack=_ack_proto(ack), session_token=session_token or "")
    return Call("POST", "/v1/vectors/delete", _delete_result, json=body, headers={"X-Request-Id": rid},
                grpc_method="/vecraft.v1.VectorService/Delete", grpc_request=request,
                grpc_response=gateway_pb2.WriteVectorsResponse, parse_grpc=_delete_result_pb)


def get(record_id: str, collection: str | None, consistency_level: ConsistencyLevel | str | None,
        include_vector: bool, session_token: str | None) -> Call[VectorRecord]:
    level = ConsistencyLevel.parse(consistency_level) if consistency_level is not None else None
    params = _drop_none({"collection": collection, "include_vector": str(include_vector).lower(),
                         "consistency_level": level.wire_name if level is not None else None})
    headers = {"X-Session-Token": session_token} if session_token else {}
    request = gateway_pb2.GetVectorsRequest(collection=collection or "", ids=[record_id],
                                            include_vectors=include_vector,
                                            strong=level is ConsistencyLevel.STRONG,
                                            session_token=session_token or "")

    def parse_grpc(msg: gateway_pb2.GetVectorsResponse) -> VectorRecord:
        from vecraft.shared.common.errors import NotFound
        if not msg.records:
            raise NotFound(f"vector {record_id!r} not found")
        rec: storage_pb2.StoredRecord = msg.records[0]
        vec = np.frombuffer(rec.vector, dtype="<f4").tolist() if rec.vector else None
        return VectorRecord(id=rec.id, vector=vec, metadata=_meta_obj(rec.metadata_json),
                            document=rec.document or None, offset=rec.offset, hlc=rec.hlc)

    return Call("GET", f"/v1/vectors/{path_segment(record_id)}", _record, params=params, headers=headers,
                grpc_method="/vecraft.v1.VectorService/Get", grpc_request=request,
                grpc_response=gateway_pb2.GetVectorsResponse, parse_grpc=parse_grpc)


def create_collection(name: str, dim: int, metric: str, shards: int | None, replicas: int | None,
                      hnsw: Mapping[str, int] | None) -> Call[Collection]:
    body = _drop_none({"name": name, "dim": dim, "metric": metric, "shards": shards, "replicas": replicas,
                       "hnsw": dict(hnsw) if hnsw else None})
    request = collection_pb2.CreateCollectionRequest(
        name=name, dim=dim, metric=metric, shards=shards or 0, replicas=replicas or 0,
        hnsw=collection_pb2.HnswParams(**(dict(hnsw) if hnsw else {})), request_id=new_request_id())
    return Call("POST", "/v1/collections", Collection.from_json, json=body, idempotent=False,
                grpc_method="/vecraft.v1.CollectionService/CreateCollection", grpc_request=request,
                grpc_response=collection_pb2.CollectionSchema, parse_grpc=_collection_pb)


def get_collection(name: str) -> Call[Collection]:
    return Call("GET", f"/v1/collections/{path_segment(name)}", Collection.from_json,
                grpc_method="/vecraft.v1.CollectionService/GetCollection",
                grpc_request=collection_pb2.GetCollectionRequest(name=name),
                grpc_response=collection_pb2.CollectionSchema, parse_grpc=_collection_pb)


def list_collections() -> Call[list[Collection]]:
    return Call("GET", "/v1/collections", lambda o: [Collection.from_json(c) for c in o["collections"]],
                grpc_method="/vecraft.v1.CollectionService/ListCollections",
                grpc_request=collection_pb2.ListCollectionsRequest(),
                grpc_response=collection_pb2.ListCollectionsResponse,
                parse_grpc=lambda m: [_collection_pb(c) for c in m.collections])


def drop_collection(name: str) -> Call[None]:
    return Call("DELETE", f"/v1/collections/{path_segment(name)}", lambda _o: None, idempotent=False,
                grpc_method="/vecraft.v1.CollectionService/DropCollection",
                grpc_request=collection_pb2.DropCollectionRequest(name=name, request_id=new_request_id()),
                grpc_response=collection_pb2.DropCollectionResponse, parse_grpc=lambda _m: None)


def alter_collection(name: str, ef_search: int) -> Call[Collection]:
    return Call("PATCH", f"/v1/collections/{path_segment(name)}", Collection.from_json,
                json={"hnsw": {"ef_search": ef_search}},
                grpc_method="/vecraft.v1.CollectionService/AlterCollection",
                grpc_request=collection_pb2.AlterCollectionRequest(
                    name=name, hnsw=collection_pb2.HnswParams(ef_search=ef_search)),
                grpc_response=collection_pb2.CollectionSchema, parse_grpc=_collection_pb)


def get_operation(request_id: str) -> Call[Operation]:
    def parse_grpc(msg: journal_pb2.LookupRequestResponse) -> Operation:
        from vecraft.shared.common.errors import NotFound
        if not msg.found:
            raise NotFound(f"no operation with request id {request_id!r}")
        return Operation(request_id=request_id, partition=msg.partition, offset=msg.offset, hlc=msg.hlc,
                         replicas_applied=list(msg.replicas_applied),
                         replicas_pending=list(msg.replicas_pending))

    return Call("GET", f"/v1/operations/{path_segment(request_id)}", _operation,
                grpc_method="/vecraft.v1.OperationService/GetOperation",
                grpc_request=gateway_pb2.GetOperationRequest(request_id=request_id),
                grpc_response=journal_pb2.LookupRequestResponse, parse_grpc=parse_grpc)
