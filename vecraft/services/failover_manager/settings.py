"""Settings of the fail-over manager (flags, ``VECRAFT_*`` environment, ``[failover]`` TOML table)."""

from __future__ import annotations

from pydantic import Field

from vecraft.shared.common.config import ServiceSettings


class FailoverSettings(ServiceSettings):
    """Fail-over manager settings (flags, VECRAFT_* environment, [failover] in the TOML file)."""

    lease_ttl_ms: int = Field(3000, ge=1000, le=60_000,
                              description="lease of the active instance; a standby takes over within it")
    grace_ms: int = Field(10_000, ge=0, description="how long a down node keeps its shard replicas before "
                                                    "they are re-placed on live nodes")
    storage_replicas: int = Field(0, ge=0, le=16, description="storage replicas per shard (0 = as the "
                                                              "cluster was started)")
    query_replicas: int = Field(0, ge=0, le=16, description="query processors per shard (0 = as started)")
    bootstrap_settle_ms: int = Field(1500, ge=0, description="quiet time of the registry before the first "
                                                             "map is written")
    tick_ms: int = Field(250, ge=10, description="how often grace periods are checked between events")
