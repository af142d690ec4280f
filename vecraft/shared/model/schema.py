"""Collection schema: what a collection is, validated.

A :class:`CollectionSchema` is immutable; the meta manager fills in placement
(``partition``, ``collection_id``) and the DDL position (``ddl_offset``,
``ddl_hlc``) with :func:`dataclasses.replace`. Constructing one with a bad
value raises :class:`InvalidRequest` naming the field and the allowed range. Its
proto form and back: :mod:`vecraft.shared.rpc.convert`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.limits import (
    DYNAMIC_EF_SEARCH,
    HNSW_DEFAULT_EF_CONSTRUCTION,
    HNSW_DEFAULT_M,
    HNSW_EF_CONSTRUCTION_RANGE,
    HNSW_EF_SEARCH_RANGE,
    HNSW_M_RANGE,
    MAX_DIM,
    MAX_REPLICAS,
    MAX_SHARDS,
    METRICS,
    MIN_DIM,
    MIN_REPLICAS,
    MIN_SHARDS,
)
from vecraft.shared.model.routing import DEFAULT_TENANT
from vecraft.shared.model.validation import validate_name

DEFAULT_METRIC = "cosine"


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidRequest(f"{name} must be an integer between {low} and {high}, got {value!r}")
    if not low <= value <= high:
        raise InvalidRequest(f"{name} is {value}; it must be between {low} and {high}")


def normalize_metric(metric: Any) -> str:
    """``cosine`` | ``l2`` | ``ip`` from any letter case; InvalidRequest otherwise."""
    if isinstance(metric, str) and metric.strip().lower() in METRICS:
        return metric.strip().lower()
    raise InvalidRequest(f"metric {metric!r} is not supported; use one of {', '.join(METRICS)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class HnswParams:
    """HNSW graph parameters: ``m`` links per node, build and search breadth."""

    m: int = HNSW_DEFAULT_M
    ef_construction: int = HNSW_DEFAULT_EF_CONSTRUCTION
    #: 0 (:data:`DYNAMIC_EF_SEARCH`, the default): each search's ef follows its k (:func:`dynamic_ef`).
    ef_search: int = DYNAMIC_EF_SEARCH

    def __post_init__(self) -> None:
        _check_int("hnsw.m", self.m, *HNSW_M_RANGE)
        _check_int("hnsw.ef_construction", self.ef_construction, *HNSW_EF_CONSTRUCTION_RANGE)
        if self.ef_search != DYNAMIC_EF_SEARCH:
            _check_int("hnsw.ef_search", self.ef_search, *HNSW_EF_SEARCH_RANGE)


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectionSchema:
    """A collection of one tenant: vectors of ``dim`` floats compared by ``metric``.

    ``metric`` is stored lower-case. ``partition`` is the journal data
    partition of its writes; ``collection_id`` is unique per incarnation (a
    dropped and re-created collection gets a new one); ``ddl_offset`` /
    ``ddl_hlc`` locate the DDL entry in the ``system`` partition.
    """

    name: str
    dim: int
    tenant: str = DEFAULT_TENANT
    metric: str = DEFAULT_METRIC
    shards: int = 1
    replicas: int = 1
    hnsw: HnswParams = field(default_factory=HnswParams)
    partition: str = ""
    collection_id: str = ""
    ddl_offset: int = 0
    ddl_hlc: int = 0
    created_unix_ms: int = 0

    def __post_init__(self) -> None:
        validate_name(self.tenant, "tenant")
        validate_name(self.name, "collection")
        _check_int("dim", self.dim, MIN_DIM, MAX_DIM)
        object.__setattr__(self, "metric", normalize_metric(self.metric))
        _check_int("shards", self.shards, MIN_SHARDS, MAX_SHARDS)
        _check_int("replicas", self.replicas, MIN_REPLICAS, MAX_REPLICAS)
        if not isinstance(self.hnsw, HnswParams):
            raise InvalidRequest(f"hnsw must be HnswParams, got {type(self.hnsw).__name__}")
        for name in ("ddl_offset", "ddl_hlc", "created_unix_ms"):
            _check_int(name, getattr(self, name), 0, 2**64 - 1)

    @property
    def qualified_name(self) -> str:
        """``tenant/name``: unique across the cluster."""
        return f"{self.tenant}/{self.name}"
