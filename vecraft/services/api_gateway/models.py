"""The gateway's domain requests and answers, shared by the HTTP and gRPC handlers.

The handlers convert their wire form into these objects (``handlers/http_codec``
and ``handlers/grpc_codec``) and the domain layer (:mod:`.gateway`) validates
them against the collection schema and executes them. Vectors travel as numpy
arrays or raw values still to be validated against the schema's dimension.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vecraft.services.api_gateway.auth.principal import OPEN, Principal
from vecraft.shared.model.consistency import ConsistencyLevel, ConsistencyReport
from vecraft.shared.model.filters import Filter
from vecraft.shared.model.routing import DEFAULT_COLLECTION, DEFAULT_TENANT
from vecraft.shared.rpc.v1 import journal_pb2


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who asks and under which idempotency key.

    ``request_id`` is the client's X-Request-Id (or body ``request_id``), else a
    generated one; ``session`` is the client's decoded read-your-writes token
    (``{partition: offset}``), decoded before anything is appended so a bad
    token never follows a successful write.
    """

    request_id: str
    tenant: str = DEFAULT_TENANT
    session: dict[str, int] = field(default_factory=dict)
    #: the token's session identity ("" when none): pins READ_YOUR_WRITES reads to one processor
    session_id: str = ""
    #: the API key the request runs as (OPEN when auth is off); ``tenant`` is already resolved
    principal: Principal = OPEN
    #: size of the request (HTTP body / gRPC message), for the ``max_request_bytes`` quota
    request_bytes: int = 0

    @property
    def journal_request_id(self) -> str:
        """The journal's deduplication key of a data write (:func:`journal_request_id`)."""
        return journal_request_id(self.tenant, self.request_id)

    def ddl_request_id(self, verb: str, collection: str) -> str:
        """The deduplication key of a DDL request (:func:`ddl_request_id`)."""
        return ddl_request_id(self.tenant, verb, collection, self.request_id)


# --- idempotency keys ----------------------------------------------------------------------------
#
# The journal deduplicates appends by request id across every partition, so the keys the gateway
# derives from a client's X-Request-Id must be distinct for every (kind, tenant, collection, verb,
# id), whatever characters the client's id holds ("/" included). By construction:
#
# - a default-tenant data write's key is the client's id itself (the journal's audit read and the
#   operation lookup show it as given), with a leading "~" doubled;
# - every other key starts with "~" and a kind letter ("~w" data write of another tenant, "~d" DDL)
#   followed by length-prefixed fields ("4:acme3:o-1"), which parse back one way only;
# - a key longer than the journal accepts becomes "~h" + the SHA-256 of the key it stands for.
#
# So no default-tenant key starts with "~" and one letter, and no two field lists encode alike.

#: The journal's limit on a request id, in bytes (``journal_service.journal.MAX_REQUEST_ID_BYTES``).
MAX_JOURNAL_KEY_BYTES = 256
_MARK = "~"


def journal_request_id(tenant: str, request_id: str) -> str:
    """The journal's deduplication key of a data write of ``tenant`` with the client's ``request_id``.

    Two tenants that pick the same X-Request-Id never swallow each other's writes, and no id the
    default tenant picks (``acme/o-1``, ``~w...``) equals another tenant's key or a DDL key.
    """
    if tenant == DEFAULT_TENANT:
        return _MARK + request_id if request_id.startswith(_MARK) else request_id
    return _key("w", tenant, request_id)


def ddl_request_id(tenant: str, verb: str, collection: str, request_id: str) -> str:
    """The deduplication key of a DDL request: per tenant, verb and collection, so reusing an
    X-Request-Id for another collection, another verb or a data write never collides with it."""
    return _key("d", tenant, collection, verb, request_id)


def _key(kind: str, *fields: str) -> str:
    key = _MARK + kind + "".join(f"{len(f)}:{f}" for f in fields)
    if len(key.encode()) <= MAX_JOURNAL_KEY_BYTES:
        return key
    return _MARK + "h" + hashlib.sha256(key.encode()).hexdigest()


# --- search ------------------------------------------------------------------------------------------

@dataclass(slots=True)
class SearchQuery:
    """One top-k search; ``vector`` is validated against the collection's dim by the domain layer."""

    vector: Any
    k: int
    level: ConsistencyLevel = ConsistencyLevel.EVENTUAL
    #: Only for BOUNDED_STALENESS; None = the gateway's default bound.
    max_staleness_ms: int | None = None
    min_required_offset: int = 0
    filter: Filter | None = None
    #: The filter as the edge validated it, forwarded as is (``convert.filter_to_json``); "" for none.
    filter_json: str = ""
    collection: str = DEFAULT_COLLECTION
    ef_search: int = 0
    #: 0 = the gateway's default deadline.
    timeout_ms: int = 0
    allow_partial: bool = False
    include_documents: bool = False


@dataclass(frozen=True, slots=True)
class SearchHit:
    id: str
    score: float
    #: Compact JSON text of the record's metadata, "" when it has none.
    metadata_json: str
    document: str


@dataclass(frozen=True, slots=True)
class SearchOutcome:
    hits: list[SearchHit]
    consistency: ConsistencyReport
    partition: str
    missing_shards: list[int] = field(default_factory=list)


# --- writes ------------------------------------------------------------------------------------------

@dataclass(slots=True)
class WriteBatch:
    """Insert or upsert of one or more records: one journal entry.

    ``ids`` None = generated; ``vectors`` is a list of lists or an (n, dim)
    array, validated against the collection's dimension by the domain layer.
    """

    vectors: Any
    ids: list[Any] | None = None
    metadata: list[Any] | None = None
    documents: list[Any] | None = None
    collection: str = DEFAULT_COLLECTION
    upsert: bool = False
    ack: int = journal_pb2.ACK_DEFAULT


@dataclass(slots=True)
class DeleteBatch:
    ids: list[Any]
    collection: str = DEFAULT_COLLECTION
    ack: int = journal_pb2.ACK_DEFAULT


@dataclass(slots=True)
class Transaction:
    """Writes and deletes across collections that apply together (one journal entry of their data partition).

    The steps' own ``ack`` is ignored; the transaction's applies.
    """

    steps: list[WriteBatch | DeleteBatch]
    ack: int = journal_pb2.ACK_DEFAULT


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    """Where a write landed in the journal, and the client's updated session token."""

    ids: list[str]
    partition: str
    offset: int
    hlc: int
    request_id: str
    replicas_acked: int
    replicas_expected: int
    session_token: str
    #: True when the request id had been appended before (a retry).
    duplicate: bool = False
    #: Deletes only: ids that existed (by a strong read) before the delete.
    deleted_ids: list[str] = field(default_factory=list)
    #: Deletes only: ids that did not exist.
    missing_ids: list[str] = field(default_factory=list)


# --- reads by id -------------------------------------------------------------------------------------

@dataclass(slots=True)
class GetQuery:
    ids: list[Any]
    collection: str = DEFAULT_COLLECTION
    include_vectors: bool = True
    level: ConsistencyLevel = ConsistencyLevel.EVENTUAL


@dataclass(frozen=True, slots=True)
class RecordView:
    id: str
    #: float32 vector, or None when not requested.
    vector: np.ndarray | None
    metadata_json: str
    document: str
    offset: int
    hlc: int


@dataclass(frozen=True, slots=True)
class GetOutcome:
    records: list[RecordView]
    missing_ids: list[str]


# --- collections -------------------------------------------------------------------------------------

@dataclass(slots=True)
class CollectionSpec:
    """A create-collection request; zeros mean "cluster default"."""

    name: Any
    dim: Any
    metric: Any = "cosine"
    shards: int = 0
    replicas: int = 0
    hnsw_m: int = 0
    hnsw_ef_construction: int = 0
    hnsw_ef_search: int = 0
    #: Answer with the existing collection when one with the same name, dim and metric exists.
    if_not_exists: bool = False


@dataclass(frozen=True, slots=True)
class DropOutcome:
    name: str
    ddl_offset: int
    ddl_hlc: int


# --- operations and audit ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class OperationStatus:
    request_id: str
    partition: str
    offset: int
    hlc: int
    replicas_applied: list[str]
    replicas_pending: list[str]


@dataclass(frozen=True, slots=True)
class JournalEntrySummary:
    """One journal entry as an audit line: what it did, to which ids; never vectors."""

    partition: str
    offset: int
    hlc: int
    request_id: str
    summary: dict[str, Any]


@dataclass(frozen=True, slots=True)
class JournalPage:
    entries: list[JournalEntrySummary]
    latest_offset: int
    #: Set when the read started below the partition's first stored offset: that offset.
    trimmed_before: int | None = None

