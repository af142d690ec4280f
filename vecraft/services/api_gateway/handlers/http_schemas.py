"""OpenAPI description of the HTTP API: request and response bodies as pydantic models.

These models document the API (``/docs``, ``/openapi.json``) and are what
schemathesis checks responses against. Request bodies are *parsed* by
:mod:`.http_codec` with orjson straight into numpy arrays (pydantic would
build a Python float object per vector element); the models here must agree
with what the codec accepts and the responses it renders.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from vecraft.shared.model.consistency import ACCEPTED_NAMES
from vecraft.shared.model.limits import (
    HNSW_EF_CONSTRUCTION_RANGE,
    HNSW_EF_SEARCH_RANGE,
    HNSW_M_RANGE,
    MAX_BATCH_ROWS,
    MAX_DIM,
    MAX_K,
    MAX_REPLICAS,
    MAX_SHARDS,
    MAX_STALENESS_MS,
    MIN_K,
)

LevelName = Literal[ACCEPTED_NAMES]  # type: ignore[valid-type]
AckName = Literal["journal", "one", "all"]
WireLevel = Literal["eventual", "bounded", "read_your_writes", "strong"]

#: Search and read deadlines a client may ask for, ms.
MAX_TIMEOUT_MS = 300_000
MAX_OFFSET = 2**63 - 1


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _WriteOptions(_Request):
    collection: str | None = Field(None, description="collection name; default `default` (created at "
                                                     "its first insert with the vector's dimension)")
    request_id: str | None = Field(None, description="idempotency key (wins over X-Request-Id); a retry "
                                                     "with the same id returns the original position")
    ack: AckName | None = Field(None, description="when to answer: durable in the `journal`, applied by "
                                                  "`one` replica of each shard, or by `all` (default)")
    session_token: str | None = Field(None, description="session token of earlier writes (wins over "
                                                        "X-Session-Token); the answer's token includes both")


class SearchRequest(_Request):
    """The spec's search body plus optional Vecraft extensions."""

    vector: list[float] | None = Field(None, min_length=1, max_length=MAX_DIM,
                                       description="the query vector (this or `vector_b64`)")
    vector_b64: str | None = Field(None, description="the query vector as base64 of float32 little "
                                                     "endian (this or `vector`)")
    k: int = Field(10, ge=MIN_K, le=MAX_K)
    consistency_level: LevelName | None = Field(
        None, description="eventual (default) | bounded | read_your_writes | strong; wins over "
                          "X-Consistency-Level")
    max_staleness_ms: int | None = Field(None, ge=0, le=MAX_STALENESS_MS,
                                         description="bound for `bounded` (default 1000); alone it "
                                                     "implies `bounded`")
    filters: dict[str, Any] | None = Field(None, description="metadata filter: {field: value} equality "
                                                             "or $eq $ne $in $nin $gt $gte $lt $lte "
                                                             "$and $or $not")
    collection: str | None = None
    min_required_offset: int | None = Field(None, ge=0, le=MAX_OFFSET,
                                            description="read at least this offset of the collection's "
                                                        "journal partition (client-driven sync)")
    session_token: str | None = Field(None, description="read-your-writes token from a write answer")
    ef_search: int | None = Field(None, ge=HNSW_EF_SEARCH_RANGE[0], le=HNSW_EF_SEARCH_RANGE[1])
    timeout_ms: int | None = Field(None, ge=1, le=MAX_TIMEOUT_MS)
    allow_partial: bool = Field(False, description="answer with the shards that responded; list the "
                                                   "others in `missing_shards`")
    include_documents: bool = Field(False, description="add each result's `document`")


class InsertRequest(_WriteOptions):
    id: str | None = Field(None, description="record id; generated when absent")
    vector: list[float] = Field(..., min_length=1, max_length=MAX_DIM)
    metadata: dict[str, Any] | None = None
    document: str | None = None


class UpsertOneRequest(_WriteOptions):
    vector: list[float] = Field(..., min_length=1, max_length=MAX_DIM)
    metadata: dict[str, Any] | None = None
    document: str | None = None


class BatchWriteRequest(_WriteOptions):
    """Either ``vectors`` (a list of lists) or ``vectors_b64`` + ``dim``."""

    ids: list[str] | None = Field(None, max_length=MAX_BATCH_ROWS)
    vectors: list[list[float]] | None = Field(None, max_length=MAX_BATCH_ROWS)
    vectors_b64: str | None = Field(None, description="base64 of rows x dim float32 little endian")
    dim: int | None = Field(None, ge=1, le=MAX_DIM, description="row length of `vectors_b64`")
    metadatas: list[dict[str, Any] | None] | None = None
    documents: list[str | None] | None = None


class DeleteBatchRequest(_WriteOptions):
    ids: list[str] = Field(..., min_length=1, max_length=MAX_BATCH_ROWS)


class TransactionOperation(_Request):
    """One operation of a transaction: a batch write (as in /v1/vectors/batch) or a delete."""

    op: Literal["insert", "upsert", "delete"]
    collection: str | None = None
    ids: list[str] | None = Field(None, max_length=MAX_BATCH_ROWS)
    vectors: list[list[float]] | None = Field(None, max_length=MAX_BATCH_ROWS)
    vectors_b64: str | None = None
    dim: int | None = Field(None, ge=1, le=MAX_DIM)
    metadatas: list[dict[str, Any] | None] | None = None
    documents: list[str | None] | None = None


class TransactionRequest(_Request):
    """Writes to several collections applied atomically (one entry of the tenant's data partition)."""

    operations: list[TransactionOperation] = Field(..., min_length=1, max_length=64)
    request_id: str | None = None
    ack: AckName | None = None
    session_token: str | None = None


class HnswSpec(_Request):
    m: int | None = Field(None, ge=HNSW_M_RANGE[0], le=HNSW_M_RANGE[1])
    ef_construction: int | None = Field(None, ge=HNSW_EF_CONSTRUCTION_RANGE[0],
                                        le=HNSW_EF_CONSTRUCTION_RANGE[1])
    ef_search: int | None = Field(None, ge=HNSW_EF_SEARCH_RANGE[0], le=HNSW_EF_SEARCH_RANGE[1])


class CreateCollectionRequest(_Request):
    name: str = Field(..., pattern=r"^[A-Za-z_][A-Za-z0-9_-]{0,127}$")
    dim: int = Field(..., ge=1, le=MAX_DIM)
    metric: Literal["cosine", "l2", "ip"] = "cosine"
    shards: int | None = Field(None, ge=1, le=MAX_SHARDS, description="default: the cluster's")
    replicas: int | None = Field(None, ge=1, le=MAX_REPLICAS, description="default: the cluster's")
    hnsw: HnswSpec | None = None


class EfSearchOnly(_Request):
    ef_search: int = Field(..., ge=HNSW_EF_SEARCH_RANGE[0], le=HNSW_EF_SEARCH_RANGE[1])


class AlterCollectionRequest(_Request):
    hnsw: EfSearchOnly


# --- responses -------------------------------------------------------------------------------------

class SearchResult(BaseModel):
    id: str
    score: float = Field(..., description="higher is better: cosine similarity, inner product or "
                                          "negated squared L2 distance")
    metadata: dict[str, Any] | None
    document: str | None = Field(None, description="only with include_documents")


class ConsistencyInfo(BaseModel):
    level_requested: WireLevel
    level_achieved: WireLevel
    staleness_ms: int
    max_allowed_staleness_ms: int | None = Field(..., description="the bound of `bounded`, 0 for "
                                                                   "`strong`, null when unbounded")
    index_version: int
    cache_hit: bool
    sync_performed: bool


class SearchResponse(BaseModel):
    results: list[SearchResult]
    consistency_info: ConsistencyInfo
    partition: str
    missing_shards: list[int]


class WriteResponse(BaseModel):
    id: str | None = Field(..., description="the record's id when one record was written, else null")
    ids: list[str]
    partition: str
    offset: int
    hlc: int
    request_id: str
    replicas_acked: int
    replicas_expected: int
    session_token: str
    duplicate: bool = Field(..., description="true when this request id was written before (a retry)")


class DeleteResponse(WriteResponse):
    deleted: bool = Field(..., description="whether any of the ids existed (strong read) before")
    deleted_ids: list[str]
    missing_ids: list[str]


class RecordResponse(BaseModel):
    id: str
    vector: list[float] | None
    metadata: dict[str, Any] | None
    document: str | None
    offset: int
    hlc: int


class RecordPageResponse(BaseModel):
    records: list[RecordResponse] = Field(..., description="in id order; `vector` is null unless "
                                                           "include_vectors, `metadata` and `document` "
                                                           "null when left out or absent")
    next_cursor: str | None = Field(..., description="`after` of the next page; null when the listing is "
                                                     "complete")
    collection: str
    partition: str
    index_version: int = Field(..., description="smallest applied offset of the collection's partition "
                                                "over the shards read")


class HnswResponse(BaseModel):
    m: int
    ef_construction: int
    ef_search: int


class CollectionResponse(BaseModel):
    name: str
    tenant: str
    dim: int
    metric: Literal["cosine", "l2", "ip"]
    shards: int
    replicas: int
    hnsw: HnswResponse
    partition: str
    collection_id: str
    created_at: str | None
    ddl_offset: int
    ddl_hlc: int


class CollectionListResponse(BaseModel):
    collections: list[CollectionResponse]


class DropResponse(BaseModel):
    name: str
    dropped: bool
    ddl_offset: int
    ddl_hlc: int


class OperationResponse(BaseModel):
    request_id: str
    partition: str
    offset: int
    hlc: int
    replicas_applied: list[str]
    replicas_pending: list[str]


class JournalEntryResponse(BaseModel):
    offset: int
    hlc: int
    request_id: str
    summary: dict[str, Any]


class JournalPageResponse(BaseModel):
    partition: str
    entries: list[JournalEntryResponse]
    latest_offset: int
    next_offset: int = Field(..., description="from_offset of the next page")
    trimmed_before: int | None = Field(None, description="present when from_offset was below the first "
                                                         "offset the journal still stores (the compactor "
                                                         "trimmed the entries before it): that offset")


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: dict[str, Any]


class ErrorResponse(BaseModel):
    error: ErrorDetail


#: Request body models, added to the OpenAPI components by the app.
REQUEST_MODELS: tuple[type[BaseModel], ...] = (
    SearchRequest, InsertRequest, UpsertOneRequest, BatchWriteRequest, DeleteBatchRequest,
    TransactionRequest, CreateCollectionRequest, AlterCollectionRequest,
)
