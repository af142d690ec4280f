from vecraft.shared.rpc.v1 import collection_pb2 as _collection_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TenantPartitionRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class TenantPartition(_message.Message):
    __slots__ = ("tenant", "partition", "explicit")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    EXPLICIT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    partition: str
    explicit: bool
    def __init__(self, tenant: _Optional[str] = ..., partition: _Optional[str] = ..., explicit: _Optional[bool] = ...) -> None: ...

class NodeInfo(_message.Message):
    __slots__ = ("node_id", "role", "address", "http_address", "shards", "replica", "partitions", "pid", "state", "last_heartbeat_unix_ms", "loading_shards", "local_shards")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HTTP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    REPLICA_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    LOADING_SHARDS_FIELD_NUMBER: _ClassVar[int]
    LOCAL_SHARDS_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    role: str
    address: str
    http_address: str
    shards: _containers.RepeatedScalarFieldContainer[int]
    replica: int
    partitions: _containers.RepeatedScalarFieldContainer[str]
    pid: int
    state: str
    last_heartbeat_unix_ms: int
    loading_shards: _containers.RepeatedScalarFieldContainer[int]
    local_shards: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, node_id: _Optional[str] = ..., role: _Optional[str] = ..., address: _Optional[str] = ..., http_address: _Optional[str] = ..., shards: _Optional[_Iterable[int]] = ..., replica: _Optional[int] = ..., partitions: _Optional[_Iterable[str]] = ..., pid: _Optional[int] = ..., state: _Optional[str] = ..., last_heartbeat_unix_ms: _Optional[int] = ..., loading_shards: _Optional[_Iterable[int]] = ..., local_shards: _Optional[_Iterable[int]] = ...) -> None: ...

class ShardAssignment(_message.Message):
    __slots__ = ("shard", "storage_nodes", "query_nodes")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    STORAGE_NODES_FIELD_NUMBER: _ClassVar[int]
    QUERY_NODES_FIELD_NUMBER: _ClassVar[int]
    shard: int
    storage_nodes: _containers.RepeatedScalarFieldContainer[str]
    query_nodes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, shard: _Optional[int] = ..., storage_nodes: _Optional[_Iterable[str]] = ..., query_nodes: _Optional[_Iterable[str]] = ...) -> None: ...

class PlacementAction(_message.Message):
    __slots__ = ("at_unix_ms", "action", "node_id", "role", "shards", "detail")
    AT_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    at_unix_ms: int
    action: str
    node_id: str
    role: str
    shards: _containers.RepeatedScalarFieldContainer[int]
    detail: str
    def __init__(self, at_unix_ms: _Optional[int] = ..., action: _Optional[str] = ..., node_id: _Optional[str] = ..., role: _Optional[str] = ..., shards: _Optional[_Iterable[int]] = ..., detail: _Optional[str] = ...) -> None: ...

class PlacementMap(_message.Message):
    __slots__ = ("version", "shards", "storage_replicas", "query_replicas", "down_nodes", "updated_by", "fencing_token", "updated_unix_ms", "history")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    STORAGE_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    QUERY_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    DOWN_NODES_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    version: int
    shards: _containers.RepeatedCompositeFieldContainer[ShardAssignment]
    storage_replicas: int
    query_replicas: int
    down_nodes: _containers.RepeatedScalarFieldContainer[str]
    updated_by: str
    fencing_token: int
    updated_unix_ms: int
    history: _containers.RepeatedCompositeFieldContainer[PlacementAction]
    def __init__(self, version: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[ShardAssignment, _Mapping]]] = ..., storage_replicas: _Optional[int] = ..., query_replicas: _Optional[int] = ..., down_nodes: _Optional[_Iterable[str]] = ..., updated_by: _Optional[str] = ..., fencing_token: _Optional[int] = ..., updated_unix_ms: _Optional[int] = ..., history: _Optional[_Iterable[_Union[PlacementAction, _Mapping]]] = ...) -> None: ...

class GetPlacementMapRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UpdatePlacementMapRequest(_message.Message):
    __slots__ = ("map", "expected_version", "lease_name", "fencing_token")
    MAP_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    LEASE_NAME_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    map: PlacementMap
    expected_version: int
    lease_name: str
    fencing_token: int
    def __init__(self, map: _Optional[_Union[PlacementMap, _Mapping]] = ..., expected_version: _Optional[int] = ..., lease_name: _Optional[str] = ..., fencing_token: _Optional[int] = ...) -> None: ...

class AcquireLeaseRequest(_message.Message):
    __slots__ = ("name", "holder", "ttl_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    holder: str
    ttl_ms: int
    def __init__(self, name: _Optional[str] = ..., holder: _Optional[str] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class LeaseRequest(_message.Message):
    __slots__ = ("name", "holder", "fencing_token")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    name: str
    holder: str
    fencing_token: int
    def __init__(self, name: _Optional[str] = ..., holder: _Optional[str] = ..., fencing_token: _Optional[int] = ...) -> None: ...

class LeaseState(_message.Message):
    __slots__ = ("name", "holder", "fencing_token", "held", "ttl_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    HOLDER_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    holder: str
    fencing_token: int
    held: bool
    ttl_ms: int
    def __init__(self, name: _Optional[str] = ..., holder: _Optional[str] = ..., fencing_token: _Optional[int] = ..., held: _Optional[bool] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class ShardPlacement(_message.Message):
    __slots__ = ("shard", "storage_replicas", "query_processors")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    STORAGE_REPLICAS_FIELD_NUMBER: _ClassVar[int]
    QUERY_PROCESSORS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    storage_replicas: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    query_processors: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    def __init__(self, shard: _Optional[int] = ..., storage_replicas: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ..., query_processors: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ...) -> None: ...

class GetPlacementRequest(_message.Message):
    __slots__ = ("tenant", "collection")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    collection: str
    def __init__(self, tenant: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class Placement(_message.Message):
    __slots__ = ("collection", "shards", "partition", "partition_owner")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    PARTITION_OWNER_FIELD_NUMBER: _ClassVar[int]
    collection: _collection_pb2.CollectionSchema
    shards: _containers.RepeatedCompositeFieldContainer[ShardPlacement]
    partition: str
    partition_owner: NodeInfo
    def __init__(self, collection: _Optional[_Union[_collection_pb2.CollectionSchema, _Mapping]] = ..., shards: _Optional[_Iterable[_Union[ShardPlacement, _Mapping]]] = ..., partition: _Optional[str] = ..., partition_owner: _Optional[_Union[NodeInfo, _Mapping]] = ...) -> None: ...

class RegisterNodeRequest(_message.Message):
    __slots__ = ("node", "ttl_ms")
    NODE_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    node: NodeInfo
    ttl_ms: int
    def __init__(self, node: _Optional[_Union[NodeInfo, _Mapping]] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class RegisterNodeResponse(_message.Message):
    __slots__ = ("lease_id", "ttl_ms")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    ttl_ms: int
    def __init__(self, lease_id: _Optional[str] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("node_id", "lease_id")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    lease_id: str
    def __init__(self, node_id: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("ok",)
    OK_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    def __init__(self, ok: _Optional[bool] = ...) -> None: ...

class ListNodesRequest(_message.Message):
    __slots__ = ("role",)
    ROLE_FIELD_NUMBER: _ClassVar[int]
    role: str
    def __init__(self, role: _Optional[str] = ...) -> None: ...

class ListNodesResponse(_message.Message):
    __slots__ = ("nodes",)
    NODES_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeInfo]
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeInfo, _Mapping]]] = ...) -> None: ...

class ApiKeyInfo(_message.Message):
    __slots__ = ("id", "name", "role", "tenant", "collections", "created_unix_ms", "revoked", "revoked_unix_ms", "key_sha256")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    CREATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    REVOKED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    KEY_SHA256_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    role: str
    tenant: str
    collections: _containers.RepeatedScalarFieldContainer[str]
    created_unix_ms: int
    revoked: bool
    revoked_unix_ms: int
    key_sha256: str
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., role: _Optional[str] = ..., tenant: _Optional[str] = ..., collections: _Optional[_Iterable[str]] = ..., created_unix_ms: _Optional[int] = ..., revoked: _Optional[bool] = ..., revoked_unix_ms: _Optional[int] = ..., key_sha256: _Optional[str] = ...) -> None: ...

class CreateApiKeyRequest(_message.Message):
    __slots__ = ("name", "role", "tenant", "collections")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    role: str
    tenant: str
    collections: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., role: _Optional[str] = ..., tenant: _Optional[str] = ..., collections: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateApiKeyResponse(_message.Message):
    __slots__ = ("info", "key")
    INFO_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    info: ApiKeyInfo
    key: str
    def __init__(self, info: _Optional[_Union[ApiKeyInfo, _Mapping]] = ..., key: _Optional[str] = ...) -> None: ...

class ListApiKeysRequest(_message.Message):
    __slots__ = ("include_revoked",)
    INCLUDE_REVOKED_FIELD_NUMBER: _ClassVar[int]
    include_revoked: bool
    def __init__(self, include_revoked: _Optional[bool] = ...) -> None: ...

class ListApiKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[ApiKeyInfo]
    def __init__(self, keys: _Optional[_Iterable[_Union[ApiKeyInfo, _Mapping]]] = ...) -> None: ...

class RevokeApiKeyRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class Quota(_message.Message):
    __slots__ = ("tenant", "key_id", "write_requests_per_s", "write_vectors_per_s", "read_requests_per_s", "max_collections", "max_vectors", "max_request_bytes", "updated_unix_ms")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    WRITE_REQUESTS_PER_S_FIELD_NUMBER: _ClassVar[int]
    WRITE_VECTORS_PER_S_FIELD_NUMBER: _ClassVar[int]
    READ_REQUESTS_PER_S_FIELD_NUMBER: _ClassVar[int]
    MAX_COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_VECTORS_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    UPDATED_UNIX_MS_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    key_id: str
    write_requests_per_s: int
    write_vectors_per_s: int
    read_requests_per_s: int
    max_collections: int
    max_vectors: int
    max_request_bytes: int
    updated_unix_ms: int
    def __init__(self, tenant: _Optional[str] = ..., key_id: _Optional[str] = ..., write_requests_per_s: _Optional[int] = ..., write_vectors_per_s: _Optional[int] = ..., read_requests_per_s: _Optional[int] = ..., max_collections: _Optional[int] = ..., max_vectors: _Optional[int] = ..., max_request_bytes: _Optional[int] = ..., updated_unix_ms: _Optional[int] = ...) -> None: ...

class ListQuotasRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class ListQuotasResponse(_message.Message):
    __slots__ = ("quotas",)
    QUOTAS_FIELD_NUMBER: _ClassVar[int]
    quotas: _containers.RepeatedCompositeFieldContainer[Quota]
    def __init__(self, quotas: _Optional[_Iterable[_Union[Quota, _Mapping]]] = ...) -> None: ...

class DeleteQuotaRequest(_message.Message):
    __slots__ = ("tenant", "key_id")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    key_id: str
    def __init__(self, tenant: _Optional[str] = ..., key_id: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("topics",)
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    topics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, topics: _Optional[_Iterable[str]] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("type", "collection", "node", "placement", "api_key", "quota", "revision")
    class Type(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        TYPE_UNSPECIFIED: _ClassVar[WatchEvent.Type]
        PUT: _ClassVar[WatchEvent.Type]
        DELETE: _ClassVar[WatchEvent.Type]
    TYPE_UNSPECIFIED: WatchEvent.Type
    PUT: WatchEvent.Type
    DELETE: WatchEvent.Type
    TYPE_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    PLACEMENT_FIELD_NUMBER: _ClassVar[int]
    API_KEY_FIELD_NUMBER: _ClassVar[int]
    QUOTA_FIELD_NUMBER: _ClassVar[int]
    REVISION_FIELD_NUMBER: _ClassVar[int]
    type: WatchEvent.Type
    collection: _collection_pb2.CollectionSchema
    node: NodeInfo
    placement: PlacementMap
    api_key: ApiKeyInfo
    quota: Quota
    revision: int
    def __init__(self, type: _Optional[_Union[WatchEvent.Type, str]] = ..., collection: _Optional[_Union[_collection_pb2.CollectionSchema, _Mapping]] = ..., node: _Optional[_Union[NodeInfo, _Mapping]] = ..., placement: _Optional[_Union[PlacementMap, _Mapping]] = ..., api_key: _Optional[_Union[ApiKeyInfo, _Mapping]] = ..., quota: _Optional[_Union[Quota, _Mapping]] = ..., revision: _Optional[int] = ...) -> None: ...

class ReportHLCRequest(_message.Message):
    __slots__ = ("node_id", "hlc")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    HLC_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    hlc: int
    def __init__(self, node_id: _Optional[str] = ..., hlc: _Optional[int] = ...) -> None: ...

class ReportHLCResponse(_message.Message):
    __slots__ = ("cluster_hlc", "drift_ms", "flagged")
    CLUSTER_HLC_FIELD_NUMBER: _ClassVar[int]
    DRIFT_MS_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    cluster_hlc: int
    drift_ms: int
    flagged: bool
    def __init__(self, cluster_hlc: _Optional[int] = ..., drift_ms: _Optional[int] = ..., flagged: _Optional[bool] = ...) -> None: ...
