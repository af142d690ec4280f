"""Settings of the journal service (flags, ``VECRAFT_*`` environment, ``[journal]`` TOML table)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from vecraft.shared.common.config import ServiceSettings
from vecraft.shared.model.limits import MAX_REQUEST_BYTES


class JournalSettings(ServiceSettings):
    """Durable, partitioned, HLC-ordered journal.

    With ``--backend jetstream`` and ``--meta-address`` several instances share the
    streams and each partition is written by the instance holding its lease
    (docs/journal.md, "Fail-over"); otherwise this instance writes every partition.
    """

    backend: Literal["local", "jetstream"] = Field(
        "local", description="log backend: local segment files, or NATS JetStream streams (cluster mode)")
    nats_url: str = Field("", description=(
        "NATS servers of the jetstream backend: nats://host:port[,nats://host:port...]"))
    nats_replicas: int = Field(3, ge=1, le=5, description=(
        "replicas of each partition's stream when the jetstream backend creates it (1 for one server)"))
    nats_stream_prefix: str = Field("vecraft", pattern=r"^[A-Za-z0-9_-]{1,64}$", description=(
        "names this journal's streams <prefix>-<partition> and subjects <prefix>.journal.<partition>"))
    partition_lease_ttl_ms: int = Field(1500, ge=300, le=60_000, description=(
        "jetstream backend with --meta-address: TTL of the partition ownership leases (renewed every third; "
        "an owner stops writing once it could not renew for this long; fail-over takes about this long)"))
    node_ttl_ms: int = Field(3000, ge=1000, description=(
        "lease of the meta manager registration (jetstream backend with --meta-address)"))
    data_partitions: int = Field(1, ge=1, le=1024, description="number of data partitions (data-0..)")
    segment_bytes: int = Field(64 << 20, ge=4096, description="roll to a new segment file past this size")
    max_entry_bytes: int = Field(MAX_REQUEST_BYTES, ge=1, description=(
        f"largest entry payload accepted (at most MAX_REQUEST_BYTES, {MAX_REQUEST_BYTES})"))
    request_id_retention_count: int = Field(1_000_000, ge=1, description=(
        "idempotency window: request ids remembered at most (the oldest is forgotten first)"))
    request_id_retention_s: float = Field(86_400.0, gt=0, description=(
        "idempotency window: seconds a request id is remembered after its entry was written"))
    fsync: bool = Field(True, description="fsync before acknowledging (turn off only for benchmarks)")
    write_ack_timeout_ms: int = Field(
        2000, ge=1, description="replica apply wait before answering and marking the replica lagging")
    backpressure_lag_ms: int = Field(1000, ge=1, description="refuse writes past this replica lag (ms)")
    backpressure_lag_ops: int = Field(10_000, ge=1,
                                      description="refuse writes past this replica lag (entries)")
    backpressure_lag_bytes: int = Field(25 << 20, ge=1,
                                        description="refuse writes past this replica lag (bytes)")
    replica_liveness_ms: int = Field(
        5000, ge=1, description="a replica with no stream and no report for this long stops counting")
    max_clock_offset_ms: int = Field(500, ge=0, description="refuse writers whose HLC is further ahead")
    heartbeat_ms: int = Field(150, ge=10, description="Subscribe heartbeat interval when idle")
    pull_max_entries: int = Field(10_000, ge=1, description="most entries per PullWAL page / stream event")
    pull_max_bytes: int = Field(16 << 20, ge=1,
                                description="most payload bytes per PullWAL page / stream event")

    @model_validator(mode="after")
    def _entries_fit_a_request(self) -> JournalSettings:
        if self.max_entry_bytes > MAX_REQUEST_BYTES:
            raise ValueError(
                f"--max-entry-bytes {self.max_entry_bytes} is above MAX_REQUEST_BYTES ({MAX_REQUEST_BYTES}, "
                f"vecraft/shared/model/limits.py), the largest request any Vecraft service accepts: an "
                f"entry that large could never reach the journal, nor its replicas; use at most "
                f"{MAX_REQUEST_BYTES}")
        return self

    @model_validator(mode="after")
    def _backend_needs_its_address(self) -> JournalSettings:
        if self.backend == "jetstream" and not self.nats_urls:
            raise ValueError("--backend jetstream needs --nats-url nats://host:port[,...]")
        return self

    @property
    def partition_ownership(self) -> bool:
        """Take part in partition ownership (leases from the meta manager, fenced streams)."""
        return self.backend == "jetstream" and bool(self.meta_address)

    @property
    def nats_urls(self) -> list[str]:
        return [u.strip() for u in self.nats_url.split(",") if u.strip()]
