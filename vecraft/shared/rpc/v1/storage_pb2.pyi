from vecraft.shared.rpc.v1 import search_pb2 as _search_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CopyShardRequest(_message.Message):
    __slots__ = ("shard",)
    SHARD_FIELD_NUMBER: _ClassVar[int]
    shard: int
    def __init__(self, shard: _Optional[int] = ...) -> None: ...

class ShardFileChunk(_message.Message):
    __slots__ = ("applied", "files", "path", "offset", "data")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    applied: _containers.RepeatedCompositeFieldContainer[PartitionProgress]
    files: _containers.RepeatedCompositeFieldContainer[BackupFile]
    path: str
    offset: int
    data: bytes
    def __init__(self, applied: _Optional[_Iterable[_Union[PartitionProgress, _Mapping]]] = ..., files: _Optional[_Iterable[_Union[BackupFile, _Mapping]]] = ..., path: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class BackupShardRequest(_message.Message):
    __slots__ = ("shard", "target", "known_blobs")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    KNOWN_BLOBS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    target: str
    known_blobs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, shard: _Optional[int] = ..., target: _Optional[str] = ..., known_blobs: _Optional[_Iterable[str]] = ...) -> None: ...

class BackupFile(_message.Message):
    __slots__ = ("path", "sha256", "bytes")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    path: str
    sha256: str
    bytes: int
    def __init__(self, path: _Optional[str] = ..., sha256: _Optional[str] = ..., bytes: _Optional[int] = ...) -> None: ...

class BackupShardResponse(_message.Message):
    __slots__ = ("shard", "applied", "files", "uploaded_bytes", "seconds")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    UPLOADED_BYTES_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    applied: _containers.RepeatedCompositeFieldContainer[PartitionProgress]
    files: _containers.RepeatedCompositeFieldContainer[BackupFile]
    uploaded_bytes: int
    seconds: float
    def __init__(self, shard: _Optional[int] = ..., applied: _Optional[_Iterable[_Union[PartitionProgress, _Mapping]]] = ..., files: _Optional[_Iterable[_Union[BackupFile, _Mapping]]] = ..., uploaded_bytes: _Optional[int] = ..., seconds: _Optional[float] = ...) -> None: ...

class SyncRequest(_message.Message):
    __slots__ = ("partition", "target_offset", "latest", "timeout_ms", "shard")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    TARGET_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    partition: str
    target_offset: int
    latest: bool
    timeout_ms: int
    shard: int
    def __init__(self, partition: _Optional[str] = ..., target_offset: _Optional[int] = ..., latest: _Optional[bool] = ..., timeout_ms: _Optional[int] = ..., shard: _Optional[int] = ...) -> None: ...

class SyncResponse(_message.Message):
    __slots__ = ("partition", "applied_offset", "applied_hlc", "pulled", "entries_pulled")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    APPLIED_HLC_FIELD_NUMBER: _ClassVar[int]
    PULLED_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_PULLED_FIELD_NUMBER: _ClassVar[int]
    partition: str
    applied_offset: int
    applied_hlc: int
    pulled: bool
    entries_pulled: int
    def __init__(self, partition: _Optional[str] = ..., applied_offset: _Optional[int] = ..., applied_hlc: _Optional[int] = ..., pulled: _Optional[bool] = ..., entries_pulled: _Optional[int] = ...) -> None: ...

class ShardSearchRequest(_message.Message):
    __slots__ = ("collection", "tenant", "vector", "k", "filter_json", "ef_search", "min_offset", "sync_latest", "timeout_ms", "shard", "skip_documents")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    MIN_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SYNC_LATEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    SKIP_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tenant: str
    vector: bytes
    k: int
    filter_json: str
    ef_search: int
    min_offset: int
    sync_latest: bool
    timeout_ms: int
    shard: int
    skip_documents: bool
    def __init__(self, collection: _Optional[str] = ..., tenant: _Optional[str] = ..., vector: _Optional[bytes] = ..., k: _Optional[int] = ..., filter_json: _Optional[str] = ..., ef_search: _Optional[int] = ..., min_offset: _Optional[int] = ..., sync_latest: _Optional[bool] = ..., timeout_ms: _Optional[int] = ..., shard: _Optional[int] = ..., skip_documents: _Optional[bool] = ...) -> None: ...

class ShardSearchResponse(_message.Message):
    __slots__ = ("results", "partition", "index_version", "staleness_ms", "sync_performed", "shard")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    STALENESS_MS_FIELD_NUMBER: _ClassVar[int]
    SYNC_PERFORMED_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_search_pb2.ScoredVector]
    partition: str
    index_version: int
    staleness_ms: int
    sync_performed: bool
    shard: int
    def __init__(self, results: _Optional[_Iterable[_Union[_search_pb2.ScoredVector, _Mapping]]] = ..., partition: _Optional[str] = ..., index_version: _Optional[int] = ..., staleness_ms: _Optional[int] = ..., sync_performed: _Optional[bool] = ..., shard: _Optional[int] = ...) -> None: ...

class ShardGetRequest(_message.Message):
    __slots__ = ("collection", "tenant", "ids", "min_offset", "sync_latest", "include_vectors", "shard")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    MIN_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SYNC_LATEST_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tenant: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    min_offset: int
    sync_latest: bool
    include_vectors: bool
    shard: int
    def __init__(self, collection: _Optional[str] = ..., tenant: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., min_offset: _Optional[int] = ..., sync_latest: _Optional[bool] = ..., include_vectors: _Optional[bool] = ..., shard: _Optional[int] = ...) -> None: ...

class StoredRecord(_message.Message):
    __slots__ = ("id", "vector", "metadata_json", "document", "offset", "hlc")
    ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    HLC_FIELD_NUMBER: _ClassVar[int]
    id: str
    vector: bytes
    metadata_json: str
    document: str
    offset: int
    hlc: int
    def __init__(self, id: _Optional[str] = ..., vector: _Optional[bytes] = ..., metadata_json: _Optional[str] = ..., document: _Optional[str] = ..., offset: _Optional[int] = ..., hlc: _Optional[int] = ...) -> None: ...

class ShardGetResponse(_message.Message):
    __slots__ = ("records", "missing_ids", "index_version")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[StoredRecord]
    missing_ids: _containers.RepeatedScalarFieldContainer[str]
    index_version: int
    def __init__(self, records: _Optional[_Iterable[_Union[StoredRecord, _Mapping]]] = ..., missing_ids: _Optional[_Iterable[str]] = ..., index_version: _Optional[int] = ...) -> None: ...

class ShardScanRequest(_message.Message):
    __slots__ = ("collection", "tenant", "after", "limit", "min_offset", "sync_latest", "include_vectors", "include_metadata", "include_documents", "filter_json", "timeout_ms", "shard")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    MIN_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SYNC_LATEST_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_METADATA_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tenant: str
    after: str
    limit: int
    min_offset: int
    sync_latest: bool
    include_vectors: bool
    include_metadata: bool
    include_documents: bool
    filter_json: str
    timeout_ms: int
    shard: int
    def __init__(self, collection: _Optional[str] = ..., tenant: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ..., min_offset: _Optional[int] = ..., sync_latest: _Optional[bool] = ..., include_vectors: _Optional[bool] = ..., include_metadata: _Optional[bool] = ..., include_documents: _Optional[bool] = ..., filter_json: _Optional[str] = ..., timeout_ms: _Optional[int] = ..., shard: _Optional[int] = ...) -> None: ...

class ShardScanResponse(_message.Message):
    __slots__ = ("records", "exhausted", "scanned_to", "index_version")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    EXHAUSTED_FIELD_NUMBER: _ClassVar[int]
    SCANNED_TO_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[StoredRecord]
    exhausted: bool
    scanned_to: str
    index_version: int
    def __init__(self, records: _Optional[_Iterable[_Union[StoredRecord, _Mapping]]] = ..., exhausted: _Optional[bool] = ..., scanned_to: _Optional[str] = ..., index_version: _Optional[int] = ...) -> None: ...

class NodeStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PartitionProgress(_message.Message):
    __slots__ = ("partition", "applied_offset", "applied_hlc", "head_offset", "staleness_ms")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    APPLIED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    APPLIED_HLC_FIELD_NUMBER: _ClassVar[int]
    HEAD_OFFSET_FIELD_NUMBER: _ClassVar[int]
    STALENESS_MS_FIELD_NUMBER: _ClassVar[int]
    partition: str
    applied_offset: int
    applied_hlc: int
    head_offset: int
    staleness_ms: int
    def __init__(self, partition: _Optional[str] = ..., applied_offset: _Optional[int] = ..., applied_hlc: _Optional[int] = ..., head_offset: _Optional[int] = ..., staleness_ms: _Optional[int] = ...) -> None: ...

class CollectionStats(_message.Message):
    __slots__ = ("collection", "live_records", "deleted_records")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    LIVE_RECORDS_FIELD_NUMBER: _ClassVar[int]
    DELETED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    live_records: int
    deleted_records: int
    def __init__(self, collection: _Optional[str] = ..., live_records: _Optional[int] = ..., deleted_records: _Optional[int] = ...) -> None: ...

class ReplicaStatus(_message.Message):
    __slots__ = ("shard", "replica", "replica_id", "partitions", "collections", "ready", "halted")
    class HaltedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SHARD_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    REPLICA_ID_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    HALTED_FIELD_NUMBER: _ClassVar[int]
    shard: int
    replica: int
    replica_id: str
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionProgress]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionStats]
    ready: bool
    halted: _containers.ScalarMap[str, str]
    def __init__(self, shard: _Optional[int] = ..., replica: _Optional[int] = ..., replica_id: _Optional[str] = ..., partitions: _Optional[_Iterable[_Union[PartitionProgress, _Mapping]]] = ..., collections: _Optional[_Iterable[_Union[CollectionStats, _Mapping]]] = ..., ready: _Optional[bool] = ..., halted: _Optional[_Mapping[str, str]] = ...) -> None: ...

class NodeStatusResponse(_message.Message):
    __slots__ = ("node_id", "shard", "partitions", "collections", "ready", "replicas")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    shard: int
    partitions: _containers.RepeatedCompositeFieldContainer[PartitionProgress]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionStats]
    ready: bool
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaStatus]
    def __init__(self, node_id: _Optional[str] = ..., shard: _Optional[int] = ..., partitions: _Optional[_Iterable[_Union[PartitionProgress, _Mapping]]] = ..., collections: _Optional[_Iterable[_Union[CollectionStats, _Mapping]]] = ..., ready: _Optional[bool] = ..., replicas: _Optional[_Iterable[_Union[ReplicaStatus, _Mapping]]] = ...) -> None: ...
