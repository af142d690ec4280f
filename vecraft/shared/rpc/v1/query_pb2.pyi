from vecraft.shared.rpc.v1 import search_pb2 as _search_pb2
from vecraft.shared.rpc.v1 import storage_pb2 as _storage_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class QuerySearchRequest(_message.Message):
    __slots__ = ("collection", "tenant", "vector", "k", "filter_json", "ef_search", "level", "max_staleness_ms", "min_offset", "timeout_ms", "shards")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    MAX_STALENESS_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_OFFSET_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tenant: str
    vector: bytes
    k: int
    filter_json: str
    ef_search: int
    level: _search_pb2.ConsistencyLevel
    max_staleness_ms: int
    min_offset: int
    timeout_ms: int
    shards: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, collection: _Optional[str] = ..., tenant: _Optional[str] = ..., vector: _Optional[bytes] = ..., k: _Optional[int] = ..., filter_json: _Optional[str] = ..., ef_search: _Optional[int] = ..., level: _Optional[_Union[_search_pb2.ConsistencyLevel, str]] = ..., max_staleness_ms: _Optional[int] = ..., min_offset: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., shards: _Optional[_Iterable[int]] = ...) -> None: ...

class QuerySearchResponse(_message.Message):
    __slots__ = ("results", "consistency_info", "partition", "shards")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_INFO_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[_search_pb2.ScoredVector]
    consistency_info: _search_pb2.ConsistencyInfo
    partition: str
    shards: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, results: _Optional[_Iterable[_Union[_search_pb2.ScoredVector, _Mapping]]] = ..., consistency_info: _Optional[_Union[_search_pb2.ConsistencyInfo, _Mapping]] = ..., partition: _Optional[str] = ..., shards: _Optional[_Iterable[int]] = ...) -> None: ...
