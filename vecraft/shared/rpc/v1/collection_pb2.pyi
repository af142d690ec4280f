from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class HnswParams(_message.Message):
    __slots__ = ("m", "ef_construction", "ef_search")
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    m: int
    ef_construction: int
    ef_search: int
    def __init__(self, m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., ef_search: _Optional[int] = ...) -> None: ...

class CollectionSchema(_message.Message):
    __slots__ = ("tenant", "name", "dim", "metric", "shards", "replicas", "hnsw", "partition", "collection_id", "ddl_offset", "ddl_hlc", "created_unix_ms")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_ID_FIELD_NUMBER: _ClassVar[int]
    DDL_OFFSET_FIELD_NUMBER: _ClassVar[int]
    DDL_HLC_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    name: str
    dim: int
    metric: str
    shards: int
    replicas: int
    hnsw: HnswParams
    partition: str
    collection_id: str
    ddl_offset: int
    ddl_hlc: int
    created_unix_ms: int
    def __init__(self, tenant: _Optional[str] = ..., name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., shards: _Optional[int] = ..., replicas: _Optional[int] = ..., hnsw: _Optional[_Union[HnswParams, _Mapping]] = ..., partition: _Optional[str] = ..., collection_id: _Optional[str] = ..., ddl_offset: _Optional[int] = ..., ddl_hlc: _Optional[int] = ..., created_unix_ms: _Optional[int] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("tenant", "name", "dim", "metric", "shards", "replicas", "hnsw", "if_not_exists", "request_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    IF_NOT_EXISTS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    name: str
    dim: int
    metric: str
    shards: int
    replicas: int
    hnsw: HnswParams
    if_not_exists: bool
    request_id: str
    def __init__(self, tenant: _Optional[str] = ..., name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., shards: _Optional[int] = ..., replicas: _Optional[int] = ..., hnsw: _Optional[_Union[HnswParams, _Mapping]] = ..., if_not_exists: _Optional[bool] = ..., request_id: _Optional[str] = ...) -> None: ...

class GetCollectionRequest(_message.Message):
    __slots__ = ("tenant", "name")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    name: str
    def __init__(self, tenant: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionSchema]
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionSchema, _Mapping]]] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("tenant", "name", "request_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    name: str
    request_id: str
    def __init__(self, tenant: _Optional[str] = ..., name: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ("name", "ddl_offset", "ddl_hlc")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DDL_OFFSET_FIELD_NUMBER: _ClassVar[int]
    DDL_HLC_FIELD_NUMBER: _ClassVar[int]
    name: str
    ddl_offset: int
    ddl_hlc: int
    def __init__(self, name: _Optional[str] = ..., ddl_offset: _Optional[int] = ..., ddl_hlc: _Optional[int] = ...) -> None: ...

class AlterCollectionRequest(_message.Message):
    __slots__ = ("tenant", "name", "hnsw", "request_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    HNSW_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    name: str
    hnsw: HnswParams
    request_id: str
    def __init__(self, tenant: _Optional[str] = ..., name: _Optional[str] = ..., hnsw: _Optional[_Union[HnswParams, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...
