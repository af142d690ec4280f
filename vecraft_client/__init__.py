"""Vecraft Python SDK.

>>> from vecraft_client import VecraftClient, ConsistencyLevel
>>> client = VecraftClient(endpoint="http://127.0.0.1:8000")
>>> client.insert_vector(vector=[0.1, 0.2, 0.3, 0.4], metadata={"category": "documents"})
>>> client.vector_search(vector=[0.1, 0.2, 0.3, 0.4], k=10, consistency_level=ConsistencyLevel.STRONG)
"""

from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft_client._client import AsyncSession, AsyncVecraftClient, Session, VecraftClient
from vecraft_client._errors import (
    ClockSkew,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    PermissionDenied,
    RateLimited,
    Timeout,
    Unauthenticated,
    Unavailable,
    VecraftError,
)
from vecraft_client._models import (
    Collection,
    ConsistencyInfo,
    DeleteResult,
    Operation,
    RecordPage,
    SearchResponse,
    SearchResult,
    VectorRecord,
    WriteResult,
)
from vecraft_client._transport import RetryConfig

__all__ = [
    "AsyncSession",
    "AsyncVecraftClient",
    "ClockSkew",
    "Collection",
    "Conflict",
    "ConsistencyInfo",
    "ConsistencyLevel",
    "DeleteResult",
    "InvalidRequest",
    "NotFound",
    "Operation",
    "PayloadTooLarge",
    "PermissionDenied",
    "RateLimited",
    "RecordPage",
    "RetryConfig",
    "SearchResponse",
    "SearchResult",
    "Session",
    "Timeout",
    "Unauthenticated",
    "Unavailable",
    "VecraftClient",
    "VecraftError",
    "VectorRecord",
    "WriteResult",
]
