"""Settings of the API gateway (flags, ``VECRAFT_*`` environment, ``[gateway]`` TOML table)."""

from __future__ import annotations

from pydantic import Field

from vecraft.shared.common.config import ServiceSettings
from vecraft.shared.model.limits import MAX_REQUEST_BYTES


class GatewaySettings(ServiceSettings):
    """HTTP and gRPC front door: validation, journal routing, search fan-out.

    Query nodes and storage nodes are not configured: the gateway routes from the meta
    manager's node registry (``--meta-address``, required).
    """

    journal_address: str = Field(..., description="journal service gRPC address host:port")
    data_partitions: int = Field(1, ge=1, le=1024, description="number of journal data partitions")
    max_body_bytes: int = Field(MAX_REQUEST_BYTES, ge=1024, le=MAX_REQUEST_BYTES,
                                description="largest HTTP request body (413 above); gRPC takes the same")
    search_timeout_ms: int = Field(10_000, ge=1, description="default deadline of searches and reads")
    default_max_staleness_ms: int = Field(
        1000, ge=0, le=3_600_000, description="staleness bound of `bounded` searches that give none")
    auth: bool = Field(False, description="require an API key (Authorization: Bearer) on every request "
                                          "but the probes and the API docs (docs/security.md)")
    insecure: bool = Field(False, description="allow binding a non-loopback --host without --auth")
    bootstrap_admin_key_file: str = Field(
        "", description="with --auth and no admin key for every tenant yet: write the one created at "
                        "start to this file (mode 0600) instead of logging it once")
