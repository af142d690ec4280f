from vecraft.shared.rpc.v1 import collection_pb2 as _collection_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AckMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACK_DEFAULT: _ClassVar[AckMode]
    ACK_JOURNAL: _ClassVar[AckMode]
    ACK_ONE: _ClassVar[AckMode]
    ACK_ALL: _ClassVar[AckMode]
ACK_DEFAULT: AckMode
ACK_JOURNAL: AckMode
ACK_ONE: AckMode
ACK_ALL: AckMode

class JournalEntry(_message.Message):
    __slots__ = ("partition", "offset", "hlc", "request_id", "payload", "shards")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    HLC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    partition: str
    offset: int
    hlc: int
    request_id: str
    payload: bytes
    shards: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, partition: _Optional[str] = ..., offset: _Optional[int] = ..., hlc: _Optional[int] = ..., request_id: _Optional[str] = ..., payload: _Optional[bytes] = ..., shards: _Optional[_Iterable[int]] = ...) -> None: ...

class JournalPayload(_message.Message):
    __slots__ = ("mutations",)
    MUTATIONS_FIELD_NUMBER: _ClassVar[int]
    mutations: _containers.RepeatedCompositeFieldContainer[Mutation]
    def __init__(self, mutations: _Optional[_Iterable[_Union[Mutation, _Mapping]]] = ...) -> None: ...

class Mutation(_message.Message):
    __slots__ = ("write", "delete", "ddl", "audit")
    WRITE_FIELD_NUMBER: _ClassVar[int]
    DELETE_FIELD_NUMBER: _ClassVar[int]
    DDL_FIELD_NUMBER: _ClassVar[int]
    AUDIT_FIELD_NUMBER: _ClassVar[int]
    write: VectorWrite
    delete: VectorDelete
    ddl: CollectionDDL
    audit: AuditRecord
    def __init__(self, write: _Optional[_Union[VectorWrite, _Mapping]] = ..., delete: _Optional[_Union[VectorDelete, _Mapping]] = ..., ddl: _Optional[_Union[CollectionDDL, _Mapping]] = ..., audit: _Optional[_Union[AuditRecord, _Mapping]] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("action", "actor_key_id", "actor_key_name", "tenant", "target", "outcome", "details_json")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    ACTOR_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ACTOR_KEY_NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    DETAILS_JSON_FIELD_NUMBER: _ClassVar[int]
    action: str
    actor_key_id: str
    actor_key_name: str
    tenant: str
    target: str
    outcome: str
    details_json: str
    def __init__(self, action: _Optional[str] = ..., actor_key_id: _Optional[str] = ..., actor_key_name: _Optional[str] = ..., tenant: _Optional[str] = ..., target: _Optional[str] = ..., outcome: _Optional[str] = ..., details_json: _Optional[str] = ...) -> None: ...

class VectorWrite(_message.Message):
    __slots__ = ("collection", "collection_id", "upsert", "ids", "dim", "vectors", "metadata_json", "documents")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    UPSERT_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    collection_id: str
    upsert: bool
    ids: _containers.RepeatedScalarFieldContainer[str]
    dim: int
    vectors: bytes
    metadata_json: _containers.RepeatedScalarFieldContainer[str]
    documents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., collection_id: _Optional[str] = ..., upsert: _Optional[bool] = ..., ids: _Optional[_Iterable[str]] = ..., dim: _Optional[int] = ..., vectors: _Optional[bytes] = ..., metadata_json: _Optional[_Iterable[str]] = ..., documents: _Optional[_Iterable[str]] = ...) -> None: ...

class VectorDelete(_message.Message):
    __slots__ = ("collection", "collection_id", "ids")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    collection_id: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, collection: _Optional[str] = ..., collection_id: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CollectionDDL(_message.Message):
    __slots__ = ("kind", "schema")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_UNSPECIFIED: _ClassVar[CollectionDDL.Kind]
        CREATE: _ClassVar[CollectionDDL.Kind]
        DROP: _ClassVar[CollectionDDL.Kind]
        ALTER: _ClassVar[CollectionDDL.Kind]
    KIND_UNSPECIFIED: CollectionDDL.Kind
    CREATE: CollectionDDL.Kind
    DROP: CollectionDDL.Kind
    ALTER: CollectionDDL.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    kind: CollectionDDL.Kind
    schema: _collection_pb2.CollectionSchema
    def __init__(self, kind: _Optional[_Union[CollectionDDL.Kind, str]] = ..., schema: _Optional[_Union[_collection_pb2.CollectionSchema, _Mapping]] = ...) -> None: ...

class AppendRequest(_message.Message):
    __slots__ = ("partition", "request_id", "payload", "shards", "client_hlc", "ack", "ack_timeout_ms")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    CLIENT_HLC_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    ACK_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    partition: str
    request_id: str
    payload: bytes
    shards: _containers.RepeatedScalarFieldContainer[int]
    client_hlc: int
    ack: AckMode
    ack_timeout_ms: int
    def __init__(self, partition: _Optional[str] = ..., request_id: _Optional[str] = ..., payload: _Optional[bytes] = ..., shards: _Optional[_Iterable[int]] = ..., client_hlc: _Optional[int] = ..., ack: _Optional[_Union[AckMode, str]] = ..., ack_timeout_ms: _Optional[int] = ...) -> None: ...

class AppendResponse(_message.Message):
    __slots__ = ("partition", "offset", "hlc", "duplicate", "replicas_acked", "replicas_expected", "lagging_replicas")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    HLC_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_ACKED_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_EXPECTED_FIELD_NUMBER: _ClassVar[int]
    LAGGING_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    partition: str
    offset: int
    hlc: int
    duplicate: bool
    replicas_acked: int
    replicas_expected: int
    lagging_replicas: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, partition: _Optional[str] = ..., offset: _Optional[int] = ..., hlc: _Optional[int] = ..., duplicate: _Optional[bool] = ..., replicas_acked: _Optional[int] = ..., replicas_expected: _Optional[int] = ..., lagging_replicas: _Optional[_Iterable[str]] = ...) -> None: ...

class AppendBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[AppendRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[AppendRequest, _Mapping]]] = ...) -> None: ...

class AppendResult(_message.Message):
    __slots__ = ("response", "error", "message", "retry_after_ms")
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    response: AppendResponse
    error: str
    message: str
    retry_after_ms: int
    def __init__(self, response: _Optional[_Union[AppendResponse, _Mapping]] = ..., error: _Optional[str] = ..., message: _Optional[str] = ..., retry_after_ms: _Optional[int] = ...) -> None: ...

class AppendBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[AppendResult]
    def __init__(self, results: _Optional[_Iterable[_Union[AppendResult, _Mapping]]] = ...) -> None: ...

class GetOffsetRequest(_message.Message):
    __slots__ = ("partitions",)
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, partitions: _Optional[_Iterable[str]] = ...) -> None: ...

class PartitionOffset(_message.Message):
    __slots__ = ("partition", "offset", "hlc")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    HLC_FIELD_NUMBER: _ClassVar[int]
    partition: str
    offset: int
    hlc: int
    def __init__(self, partition: _Optional[str] = ..., offset: _Optional[int] = ..., hlc: _Optional[int] = ...) -> None: ...

class GetOffsetResponse(_message.Message):
    __slots__ = ("offsets",)
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    offsets: _containers.RepeatedCompositeFieldContainer[PartitionOffset]
    def __init__(self, offsets: _Optional[_Iterable[_Union[PartitionOffset, _Mapping]]] = ...) -> None: ...

class PullWALRequest(_message.Message):
    __slots__ = ("partition", "from_offset", "to_offset", "max_entries", "max_bytes")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    FROM_OFFSET_FIELD_NUMBER: _ClassVar[int]
    TO_OFFSET_FIELD_NUMBER: _ClassVar[int]
    MAX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    MAX_BYTES_FIELD_NUMBER: _ClassVar[int]
    partition: str
    from_offset: int
    to_offset: int
    max_entries: int
    max_bytes: int
    def __init__(self, partition: _Optional[str] = ..., from_offset: _Optional[int] = ..., to_offset: _Optional[int] = ..., max_entries: _Optional[int] = ..., max_bytes: _Optional[int] = ...) -> None: ...

class PullWALResponse(_message.Message):
    __slots__ = ("entries", "latest_offset", "latest_hlc")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    LATEST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LATEST_HLC_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[JournalEntry]
    latest_offset: int
    latest_hlc: int
    def __init__(self, entries: _Optional[_Iterable[_Union[JournalEntry, _Mapping]]] = ..., latest_offset: _Optional[int] = ..., latest_hlc: _Optional[int] = ...) -> None: ...

class SubscribeRequest(_message.Message):
    __slots__ = ("partition", "from_offset", "replica_id", "shards", "role", "after_hlc")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    FROM_OFFSET_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    AFTER_HLC_FIELD_NUMBER: _ClassVar[int]
    partition: str
    from_offset: int
    replica_id: str
    shards: _containers.RepeatedScalarFieldContainer[int]
    role: str
    after_hlc: int
    def __init__(self, partition: _Optional[str] = ..., from_offset: _Optional[int] = ..., replica_id: _Optional[str] = ..., shards: _Optional[_Iterable[int]] = ..., role: _Optional[str] = ..., after_hlc: _Optional[int] = ...) -> None: ...

class SubscribeEvent(_message.Message):
    __slots__ = ("entries", "head_offset", "head_hlc")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    HEAD_OFFSET_FIELD_NUMBER: _ClassVar[int]
    HEAD_HLC_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[JournalEntry]
    head_offset: int
    head_hlc: int
    def __init__(self, entries: _Optional[_Iterable[_Union[JournalEntry, _Mapping]]] = ..., head_offset: _Optional[int] = ..., head_hlc: _Optional[int] = ...) -> None: ...

class ReportAppliedRequest(_message.Message):
    __slots__ = ("partition", "replica_id", "applied_offset")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    APPLIED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    partition: str
    replica_id: str
    applied_offset: int
    def __init__(self, partition: _Optional[str] = ..., replica_id: _Optional[str] = ..., applied_offset: _Optional[int] = ...) -> None: ...

class ReportAppliedResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class LeaveRequest(_message.Message):
    __slots__ = ("partition", "replica_id")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    partition: str
    replica_id: str
    def __init__(self, partition: _Optional[str] = ..., replica_id: _Optional[str] = ...) -> None: ...

class LeaveResponse(_message.Message):
    __slots__ = ("known",)
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    known: bool
    def __init__(self, known: _Optional[bool] = ...) -> None: ...

class LookupRequestRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class LookupRequestResponse(_message.Message):
    __slots__ = ("found", "partition", "offset", "hlc", "replicas_applied", "replicas_pending")
    FOUND_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    HLC_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_APPLIED_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_PENDING_FIELD_NUMBER: _ClassVar[int]
    found: bool
    partition: str
    offset: int
    hlc: int
    replicas_applied: _containers.RepeatedScalarFieldContainer[str]
    replicas_pending: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, found: _Optional[bool] = ..., partition: _Optional[str] = ..., offset: _Optional[int] = ..., hlc: _Optional[int] = ..., replicas_applied: _Optional[_Iterable[str]] = ..., replicas_pending: _Optional[_Iterable[str]] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReplicaLag(_message.Message):
    __slots__ = ("replica_id", "partition", "shards", "applied_offset", "lag_ops", "lag_bytes", "lag_ms", "live", "lagging", "role")
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LAG_OPS_FIELD_NUMBER: _ClassVar[int]
    LAG_BYTES_FIELD_NUMBER: _ClassVar[int]
    LAG_MS_FIELD_NUMBER: _ClassVar[int]
    LIVE_FIELD_NUMBER: _ClassVar[int]
    LAGGING_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    replica_id: str
    partition: str
    shards: _containers.RepeatedScalarFieldContainer[int]
    applied_offset: int
    lag_ops: int
    lag_bytes: int
    lag_ms: int
    live: bool
    lagging: bool
    role: str
    def __init__(self, replica_id: _Optional[str] = ..., partition: _Optional[str] = ..., shards: _Optional[_Iterable[int]] = ..., applied_offset: _Optional[int] = ..., lag_ops: _Optional[int] = ..., lag_bytes: _Optional[int] = ..., lag_ms: _Optional[int] = ..., live: _Optional[bool] = ..., lagging: _Optional[bool] = ..., role: _Optional[str] = ...) -> None: ...

class PartitionStats(_message.Message):
    __slots__ = ("partition", "head_offset", "head_hlc", "bytes", "segments", "first_offset")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    HEAD_OFFSET_FIELD_NUMBER: _ClassVar[int]
    HEAD_HLC_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    partition: str
    head_offset: int
    head_hlc: int
    bytes: int
    segments: int
    first_offset: int
    def __init__(self, partition: _Optional[str] = ..., head_offset: _Optional[int] = ..., head_hlc: _Optional[int] = ..., bytes: _Optional[int] = ..., segments: _Optional[int] = ..., first_offset: _Optional[int] = ...) -> None: ...

class TrimRequest(_message.Message):
    __slots__ = ("partition", "before_offset")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    BEFORE_OFFSET_FIELD_NUMBER: _ClassVar[int]
    partition: str
    before_offset: int
    def __init__(self, partition: _Optional[str] = ..., before_offset: _Optional[int] = ...) -> None: ...

class TrimResponse(_message.Message):
    __slots__ = ("first_offset", "entries", "bytes")
    FIRST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    first_offset: int
    entries: int
    bytes: int
    def __init__(self, first_offset: _Optional[int] = ..., entries: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("partitions", "replicas", "back_pressure", "back_pressure_reason")
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    BACK_PRESSURE_FIELD_NUMBER: _ClassVar[int]
    BACK_PRESSURE_REASON_FIELD_NUMBER: _ClassVar[int]
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionStats]
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaLag]
    back_pressure: bool
    back_pressure_reason: str
    def __init__(self, partitions: _Optional[_Iterable[_Union[PartitionStats, _Mapping]]] = ..., replicas: _Optional[_Iterable[_Union[ReplicaLag, _Mapping]]] = ..., back_pressure: _Optional[bool] = ..., back_pressure_reason: _Optional[str] = ...) -> None: ...
