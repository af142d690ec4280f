"""Settings of the meta manager (flags, ``VECRAFT_*`` environment, ``[meta]`` TOML table)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vecraft.shared.common.config import ServiceSettings


class MetaSettings(ServiceSettings):
    """Settings of the meta manager (flags, ``VECRAFT_*`` variables or the ``[meta]`` TOML table)."""

    backend: Literal["sqlite", "etcd"] = Field("sqlite", description="where the catalog lives")
    etcd_endpoints: str = Field(
        "", description="etcd client endpoints [https://]host:port[,...] (etcd backend); TLS with https:// "
                        "or, without a scheme, when --tls-cert/--tls-key are given (then also used for etcd)")
    etcd_prefix: str = Field("/vecraft", description="key prefix of this cluster in etcd")
    journal_address: str = Field("", description="journal gRPC address host:port (required for DDL)")
    data_partitions: int = Field(1, ge=1, le=1024, description="number of journal data partitions P")
    default_shards: int = Field(3, ge=1, le=64, description="shards of a collection created without any")
    default_replicas: int = Field(1, ge=1, le=5, description="replicas of a collection created without any")
    lease_ttl_ms: int = Field(5000, ge=100, description="node lease TTL when RegisterNode asks for none")
    max_clock_offset_ms: int = Field(500, ge=1, description="HLC drift beyond which a node is flagged")
    ddl_follow_interval_ms: int = Field(
        1000, ge=50,
        description="how often to catch up with DDL appended elsewhere (other managers, crashes)")
