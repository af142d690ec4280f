from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ConsistencyLevel(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENTUAL: _ClassVar[ConsistencyLevel]
    BOUNDED_STALENESS: _ClassVar[ConsistencyLevel]
    READ_YOUR_WRITES: _ClassVar[ConsistencyLevel]
    STRONG: _ClassVar[ConsistencyLevel]
EVENTUAL: ConsistencyLevel
BOUNDED_STALENESS: ConsistencyLevel
READ_YOUR_WRITES: ConsistencyLevel
STRONG: ConsistencyLevel

class SearchRequest(_message.Message):
    __slots__ = ("vector", "k", "consistency_level", "max_staleness_ms", "min_required_offset", "filters", "collection", "filter_json", "session_token", "ef_search", "timeout_ms", "allow_partial", "include_documents")
    class FiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_LEVEL_FIELD_NUMBER: _ClassVar[int]
    MAX_STALENESS_MS_FIELD_NUMBER: _ClassVar[int]
    MIN_REQUIRED_OFFSET_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_JSON_FIELD_NUMBER: _ClassVar[int]
    SESSION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    vector: _containers.RepeatedScalarFieldContainer[float]
    k: int
    consistency_level: ConsistencyLevel
    max_staleness_ms: int
    min_required_offset: int
    filters: _containers.ScalarMap[str, str]
    collection: str
    filter_json: str
    session_token: str
    ef_search: int
    timeout_ms: int
    allow_partial: bool
    include_documents: bool
    def __init__(self, vector: _Optional[_Iterable[float]] = ..., k: _Optional[int] = ..., consistency_level: _Optional[_Union[ConsistencyLevel, str]] = ..., max_staleness_ms: _Optional[int] = ..., min_required_offset: _Optional[int] = ..., filters: _Optional[_Mapping[str, str]] = ..., collection: _Optional[str] = ..., filter_json: _Optional[str] = ..., session_token: _Optional[str] = ..., ef_search: _Optional[int] = ..., timeout_ms: _Optional[int] = ..., allow_partial: _Optional[bool] = ..., include_documents: _Optional[bool] = ...) -> None: ...

class ScoredVector(_message.Message):
    __slots__ = ("id", "score", "metadata_json", "document")
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    metadata_json: str
    document: str
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., metadata_json: _Optional[str] = ..., document: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "consistency_info", "missing_shards", "partition")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_INFO_FIELD_NUMBER: _ClassVar[int]
    MISSING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ScoredVector]
    consistency_info: ConsistencyInfo
    missing_shards: _containers.RepeatedScalarFieldContainer[int]
    partition: str
    def __init__(self, results: _Optional[_Iterable[_Union[ScoredVector, _Mapping]]] = ..., consistency_info: _Optional[_Union[ConsistencyInfo, _Mapping]] = ..., missing_shards: _Optional[_Iterable[int]] = ..., partition: _Optional[str] = ...) -> None: ...

class ConsistencyInfo(_message.Message):
    __slots__ = ("level_requested", "level_achieved", "staleness_ms", "max_allowed_staleness_ms", "index_version_used", "cache_hit", "sync_performed")
    LEVEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    LEVEL_ACHIEVED_FIELD_NUMBER: _ClassVar[int]
    STALENESS_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_ALLOWED_STALENESS_MS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_USED_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    SYNC_PERFORMED_FIELD_NUMBER: _ClassVar[int]
    level_requested: ConsistencyLevel
    level_achieved: ConsistencyLevel
    staleness_ms: int
    max_allowed_staleness_ms: int
    index_version_used: int
    cache_hit: bool
    sync_performed: bool
    def __init__(self, level_requested: _Optional[_Union[ConsistencyLevel, str]] = ..., level_achieved: _Optional[_Union[ConsistencyLevel, str]] = ..., staleness_ms: _Optional[int] = ..., max_allowed_staleness_ms: _Optional[int] = ..., index_version_used: _Optional[int] = ..., cache_hit: _Optional[bool] = ..., sync_performed: _Optional[bool] = ...) -> None: ...
