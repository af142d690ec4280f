"""Proto <-> domain conversion: every wire type's paired ``x_to_proto`` / ``x_from_proto``, in one place.

The domain (:mod:`vecraft.shared.model`) knows nothing of protobuf; services
convert at their gRPC edges with these functions, so a field added to a
message is mapped once, both ways, next to its inverse. Wire types:

- collection schemas (``collection.proto``): :func:`schema_to_proto`,
  :func:`schema_from_proto`, :func:`schema_from_create_request`, HNSW params;
- consistency (``search.proto``): the level enum (:func:`level_to_proto`,
  :func:`level_from_proto`) and ``ConsistencyInfo`` (:func:`consistency_to_proto`,
  :func:`consistency_from_proto`);
- hits (``ScoredVector``): :func:`hits_to_proto`, :func:`hits_from_proto`;
- filters (``filter_json`` fields): :func:`filter_to_json` at the edge that
  validated the filter object, :func:`filter_from_json` where it is evaluated.
  A filter crosses every hop as that JSON text; it is never re-encoded from its
  parsed form on the way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import numpy as np
import orjson

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.consistency import ConsistencyLevel, ConsistencyReport
from vecraft.shared.model.filters import Filter, parse_filter
from vecraft.shared.model.records import ShardHits
from vecraft.shared.model.routing import DEFAULT_TENANT
from vecraft.shared.model.schema import DEFAULT_METRIC, CollectionSchema, HnswParams
from vecraft.shared.rpc.v1 import collection_pb2, search_pb2

# --- collection schemas ----------------------------------------------------------------------------


def hnsw_to_proto(params: HnswParams) -> collection_pb2.HnswParams:
    return collection_pb2.HnswParams(m=params.m, ef_construction=params.ef_construction,
                                     ef_search=params.ef_search)


def hnsw_from_proto(msg: collection_pb2.HnswParams | None) -> HnswParams:
    """Validated params; zero fields (unset in proto3) and None take the defaults."""
    if msg is None:
        return HnswParams()
    default = HnswParams()
    return HnswParams(m=msg.m or default.m, ef_construction=msg.ef_construction or default.ef_construction,
                      ef_search=msg.ef_search or default.ef_search)


def schema_to_proto(schema: CollectionSchema) -> collection_pb2.CollectionSchema:
    return collection_pb2.CollectionSchema(
        tenant=schema.tenant, name=schema.name, dim=schema.dim, metric=schema.metric, shards=schema.shards,
        replicas=schema.replicas, hnsw=hnsw_to_proto(schema.hnsw), partition=schema.partition,
        collection_id=schema.collection_id, ddl_offset=schema.ddl_offset, ddl_hlc=schema.ddl_hlc,
        created_unix_ms=schema.created_unix_ms)


def schema_from_proto(msg: collection_pb2.CollectionSchema) -> CollectionSchema:
    """Validate and convert; an empty tenant means ``default``."""
    return CollectionSchema(
        tenant=msg.tenant or DEFAULT_TENANT, name=msg.name, dim=msg.dim, metric=msg.metric,
        shards=msg.shards, replicas=msg.replicas,
        hnsw=hnsw_from_proto(msg.hnsw if msg.HasField("hnsw") else None),
        partition=msg.partition, collection_id=msg.collection_id, ddl_offset=msg.ddl_offset,
        ddl_hlc=msg.ddl_hlc, created_unix_ms=msg.created_unix_ms)


def schema_from_create_request(req: collection_pb2.CreateCollectionRequest, *, default_shards: int,
                               default_replicas: int) -> CollectionSchema:
    """A validated schema (no placement yet) from a create request and its "0 = default" fields."""
    return CollectionSchema(
        tenant=req.tenant or DEFAULT_TENANT, name=req.name, dim=req.dim, metric=req.metric or DEFAULT_METRIC,
        shards=req.shards or default_shards, replicas=req.replicas or default_replicas,
        hnsw=hnsw_from_proto(req.hnsw if req.HasField("hnsw") else None))


# --- consistency -----------------------------------------------------------------------------------


def level_to_proto(level: ConsistencyLevel) -> search_pb2.ConsistencyLevel:
    """The ``search_pb2.ConsistencyLevel`` value (an int, as protobuf enums are)."""
    # protoc's .pyi types enum fields as the enum class, which is a plain int at run time.
    return cast("search_pb2.ConsistencyLevel", int(level))


def level_from_proto(value: int) -> ConsistencyLevel:
    """The level of a ``search_pb2.ConsistencyLevel`` value; InvalidRequest if unknown."""
    return ConsistencyLevel.from_int(value)


def consistency_to_proto(report: ConsistencyReport) -> search_pb2.ConsistencyInfo:
    """``max_allowed_staleness_ms`` None (no bound) is 0 on the wire."""
    return search_pb2.ConsistencyInfo(
        level_requested=level_to_proto(report.level_requested),
        level_achieved=level_to_proto(report.level_achieved), staleness_ms=report.staleness_ms,
        max_allowed_staleness_ms=report.max_allowed_staleness_ms or 0,
        index_version_used=report.index_version, cache_hit=report.cache_hit,
        sync_performed=report.sync_performed)


def consistency_from_proto(info: search_pb2.ConsistencyInfo) -> ConsistencyReport:
    return ConsistencyReport(
        level_requested=level_from_proto(info.level_requested),
        level_achieved=level_from_proto(info.level_achieved), staleness_ms=info.staleness_ms,
        max_allowed_staleness_ms=info.max_allowed_staleness_ms, index_version=info.index_version_used,
        cache_hit=info.cache_hit, sync_performed=info.sync_performed)


# --- hits ------------------------------------------------------------------------------------------


def hits_to_proto(hits: ShardHits) -> list[search_pb2.ScoredVector]:
    """The rows of ``hits`` as wire messages, in order (no documents: empty text)."""
    documents = hits.documents or [""] * len(hits.ids)
    return [search_pb2.ScoredVector(id=i, score=s, metadata_json=m, document=d)
            for i, s, m, d in zip(hits.ids, hits.scores.tolist(), hits.metadata_json, documents, strict=True)]


def hits_from_proto(results: Sequence[search_pb2.ScoredVector]) -> ShardHits:
    """Hits received over gRPC as columns (scores float32)."""
    return ShardHits(ids=[r.id for r in results],
                     scores=np.fromiter((r.score for r in results), dtype=np.float32, count=len(results)),
                     metadata_json=[r.metadata_json for r in results],
                     documents=[r.document for r in results])


# --- filters ---------------------------------------------------------------------------------------


def filter_to_json(obj: Mapping[str, Any] | None) -> str:
    """The wire text of a filter object that :func:`parse_filter` accepted: compact JSON ("" for none).

    The edge that validated ``obj`` calls this once; every hop after it forwards the text.
    """
    return orjson.dumps(obj).decode() if obj else ""


def filter_from_json(text: str) -> Filter | None:
    """The filter a ``filter_json`` field carries (None for ""), parsed where it is evaluated.

    Raises:
        InvalidRequest: not JSON, or not a valid filter (see :mod:`vecraft.shared.model.filters`).
    """
    if not text.strip():
        return None
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"filter_json is not valid JSON: {exc}") from None
    return parse_filter(obj)
