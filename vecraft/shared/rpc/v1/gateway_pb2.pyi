from vecraft.shared.rpc.v1 import collection_pb2 as _collection_pb2
from vecraft.shared.rpc.v1 import journal_pb2 as _journal_pb2
from vecraft.shared.rpc.v1 import search_pb2 as _search_pb2
from vecraft.shared.rpc.v1 import storage_pb2 as _storage_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WriteVectorsRequest(_message.Message):
    __slots__ = ("collection", "tenant", "ids", "dim", "vectors", "metadata_json", "documents", "request_id", "ack", "session_token")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tenant: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    dim: int
    vectors: bytes
    metadata_json: _containers.RepeatedScalarFieldContainer[str]
    documents: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    ack: _journal_pb2.AckMode
    session_token: str
    def __init__(self, collection: _Optional[str] = ..., tenant: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., dim: _Optional[int] = ..., vectors: _Optional[bytes] = ..., metadata_json: _Optional[_Iterable[str]] = ..., documents: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., ack: _Optional[_Union[_journal_pb2.AckMode, str]] = ..., session_token: _Optional[str] = ...) -> None: ...

class DeleteVectorsRequest(_message.Message):
    __slots__ = ("collection", "tenant", "ids", "request_id", "ack", "session_token")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tenant: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    request_id: str
    ack: _journal_pb2.AckMode
    session_token: str
    def __init__(self, collection: _Optional[str] = ..., tenant: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., request_id: _Optional[str] = ..., ack: _Optional[_Union[_journal_pb2.AckMode, str]] = ..., session_token: _Optional[str] = ...) -> None: ...

class WriteVectorsResponse(_message.Message):
    __slots__ = ("ids", "partition", "offset", "hlc", "request_id", "replicas_acked", "replicas_expected", "session_token", "duplicate", "deleted", "deleted_ids", "missing_ids")
    IDS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    HLC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_ACKED_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_EXPECTED_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    DELETED_IDS_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    partition: str
    offset: int
    hlc: int
    request_id: str
    replicas_acked: int
    replicas_expected: int
    session_token: str
    duplicate: bool
    deleted: bool
    deleted_ids: _containers.RepeatedScalarFieldContainer[str]
    missing_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., partition: _Optional[str] = ..., offset: _Optional[int] = ..., hlc: _Optional[int] = ..., request_id: _Optional[str] = ..., replicas_acked: _Optional[int] = ..., replicas_expected: _Optional[int] = ..., session_token: _Optional[str] = ..., duplicate: _Optional[bool] = ..., deleted: _Optional[bool] = ..., deleted_ids: _Optional[_Iterable[str]] = ..., missing_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetVectorsRequest(_message.Message):
    __slots__ = ("collection", "tenant", "ids", "include_vectors", "strong", "session_token")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    STRONG_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tenant: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    include_vectors: bool
    strong: bool
    session_token: str
    def __init__(self, collection: _Optional[str] = ..., tenant: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., include_vectors: _Optional[bool] = ..., strong: _Optional[bool] = ..., session_token: _Optional[str] = ...) -> None: ...

class GetVectorsResponse(_message.Message):
    __slots__ = ("records", "missing_ids")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    MISSING_IDS_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_storage_pb2.StoredRecord]
    missing_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, records: _Optional[_Iterable[_Union[_storage_pb2.StoredRecord, _Mapping]]] = ..., missing_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class ListRecordsRequest(_message.Message):
    __slots__ = ("collection", "tenant", "after", "limit", "include_vectors", "include_metadata", "include_documents", "filter_json", "consistency_level", "session_token", "min_required_offset")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_VECTORS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_METADATA_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    MIN_REQUIRED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tenant: str
    after: str
    limit: int
    include_vectors: bool
    include_metadata: bool
    include_documents: bool
    filter_json: str
    consistency_level: _search_pb2.ConsistencyLevel
    session_token: str
    min_required_offset: int
    def __init__(self, collection: _Optional[str] = ..., tenant: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ..., include_vectors: _Optional[bool] = ..., include_metadata: _Optional[bool] = ..., include_documents: _Optional[bool] = ..., filter_json: _Optional[str] = ..., consistency_level: _Optional[_Union[_search_pb2.ConsistencyLevel, str]] = ..., session_token: _Optional[str] = ..., min_required_offset: _Optional[int] = ...) -> None: ...

class ListRecordsResponse(_message.Message):
    __slots__ = ("records", "next_cursor", "index_version", "partition")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[_storage_pb2.StoredRecord]
    next_cursor: str
    index_version: int
    partition: str
    def __init__(self, records: _Optional[_Iterable[_Union[_storage_pb2.StoredRecord, _Mapping]]] = ..., next_cursor: _Optional[str] = ..., index_version: _Optional[int] = ..., partition: _Optional[str] = ...) -> None: ...

class GetOperationRequest(_message.Message):
    __slots__ = ("request_id",)
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    def __init__(self, request_id: _Optional[str] = ...) -> None: ...

class ReadJournalRequest(_message.Message):
    __slots__ = ("partition", "from_offset", "limit")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    FROM_OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    partition: str
    from_offset: int
    limit: int
    def __init__(self, partition: _Optional[str] = ..., from_offset: _Optional[int] = ..., limit: _Optional[int] = ...) -> None: ...

class DecodedEntry(_message.Message):
    __slots__ = ("partition", "offset", "hlc", "request_id", "summary_json")
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    HLC_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_JSON_FIELD_NUMBER: _ClassVar[int]
    partition: str
    offset: int
    hlc: int
    request_id: str
    summary_json: str
    def __init__(self, partition: _Optional[str] = ..., offset: _Optional[int] = ..., hlc: _Optional[int] = ..., request_id: _Optional[str] = ..., summary_json: _Optional[str] = ...) -> None: ...

class ReadJournalResponse(_message.Message):
    __slots__ = ("entries", "latest_offset")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    LATEST_OFFSET_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[DecodedEntry]
    latest_offset: int
    def __init__(self, entries: _Optional[_Iterable[_Union[DecodedEntry, _Mapping]]] = ..., latest_offset: _Optional[int] = ...) -> None: ...
