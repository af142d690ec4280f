"""What the SDK returns: small frozen dataclasses built from server responses."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vecraft.shared.model.consistency import ConsistencyLevel


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def allowed_staleness(level: ConsistencyLevel, bound: int) -> int | None:
    """``max_allowed_staleness_ms`` of a level: the bound of bounded, 0 for strong, else None.

    gRPC has no null for an int64, so its 0 is read back through this rule.
    """
    if level is ConsistencyLevel.BOUNDED_STALENESS:
        return bound
    if level is ConsistencyLevel.STRONG:
        return 0
    return None


@dataclass(frozen=True, slots=True)
class ConsistencyInfo:
    """How fresh the answer was (the spec's ``consistency_info``).

    The levels are :class:`ConsistencyLevel` members: they compare equal to the
    enum (and its proto integer) and print as the HTTP API's names
    (``bounded``, ``strong``, ...). ``max_allowed_staleness_ms`` is the bound of
    ``bounded``, 0 for ``strong`` and None for the levels without a time bound
    (eventual, read-your-writes), as ``null`` over HTTP, whichever transport
    answered.
    """

    level_requested: ConsistencyLevel
    level_achieved: ConsistencyLevel
    staleness_ms: int
    max_allowed_staleness_ms: int | None
    index_version: int
    cache_hit: bool
    sync_performed: bool

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> ConsistencyInfo:
        return cls(
            level_requested=ConsistencyLevel.parse(obj["level_requested"]),
            level_achieved=ConsistencyLevel.parse(obj["level_achieved"]),
            staleness_ms=int(obj.get("staleness_ms") or 0),
            max_allowed_staleness_ms=_optional_int(obj.get("max_allowed_staleness_ms")),
            index_version=int(obj.get("index_version") or 0),
            cache_hit=bool(obj.get("cache_hit")),
            sync_performed=bool(obj.get("sync_performed")),
        )


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One hit. ``score``: higher is better (cosine similarity, inner product or -squared L2)."""

    id: str
    score: float
    metadata: dict[str, Any] | None = None
    document: str | None = None


@dataclass(frozen=True, slots=True)
class SearchResponse:
    results: list[SearchResult]
    consistency_info: ConsistencyInfo
    partition: str = ""
    missing_shards: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Where a write landed in the journal. ``id`` is the first (or only) id written.

    A batch larger than ``batch_size`` is sent as several requests; its result
    is merged: ``ids`` of every batch in order, ``partition``/``offset``/``hlc``
    of the last batch (the journal position that includes all of them),
    ``request_id`` the base id the batch ids were derived from, ``replicas_acked``
    the smallest of the batches, ``session_token`` covering every batch,
    ``duplicate`` true only if every batch was, and ``batches`` each batch's own
    result (empty when the call was one request).
    """

    id: str
    ids: list[str]
    partition: str
    offset: int
    hlc: int
    request_id: str
    replicas_acked: int = 0
    replicas_expected: int = 0
    session_token: str = ""
    #: The journal already held this request id: the answer is the original position.
    duplicate: bool = False
    batches: tuple[WriteResult, ...] = ()


@dataclass(frozen=True, slots=True)
class DeleteResult(WriteResult):
    """A delete's journal position plus which ids existed (strong read) before it.

    ``deleted``: any of the ids existed. HTTP and gRPC answers carry the same
    outcome; they are None only from a gateway that does not report it.
    """

    deleted: bool | None = None
    deleted_ids: list[str] | None = None
    missing_ids: list[str] | None = None


@dataclass(frozen=True, slots=True)
class VectorRecord:
    id: str
    vector: list[float] | None
    metadata: dict[str, Any] | None
    document: str | None
    offset: int = 0
    hlc: int = 0


@dataclass(frozen=True, slots=True)
class RecordPage:
    """One page of a record listing (``list_records``).

    ``records`` are in id order; ``next_cursor`` is the ``after`` of the next
    page, None when the listing is complete. ``index_version`` is the offset of
    the collection's journal partition every shard had applied when read.
    """

    records: list[VectorRecord]
    next_cursor: str | None
    index_version: int = 0
    partition: str = ""


@dataclass(frozen=True, slots=True)
class Collection:
    name: str
    dim: int
    metric: str
    shards: int
    replicas: int
    hnsw: dict[str, int]
    partition: str
    tenant: str = "default"
    collection_id: str = ""

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Collection:
        return cls(name=obj["name"], dim=int(obj["dim"]), metric=obj["metric"],
                   shards=int(obj.get("shards") or 0), replicas=int(obj.get("replicas") or 0),
                   hnsw=dict(obj.get("hnsw") or {}), partition=obj.get("partition", ""),
                   tenant=obj.get("tenant", "default"), collection_id=obj.get("collection_id", ""))


@dataclass(frozen=True, slots=True)
class Operation:
    """Where request X is: its journal position and which replicas applied it."""

    request_id: str
    partition: str
    offset: int
    hlc: int
    replicas_applied: list[str]
    replicas_pending: list[str]
