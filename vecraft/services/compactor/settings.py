"""Settings of the compactor (flags, ``VECRAFT_*`` environment, ``[compactor]`` TOML table)."""

from __future__ import annotations

from pydantic import Field

from vecraft.shared.common.config import ServiceSettings


class CompactorSettings(ServiceSettings):
    """Compactor settings (flags, VECRAFT_* environment, [compactor] in the TOML file)."""

    journal_address: str = Field("", description="journal gRPC address(es), comma separated")
    backup_target: str = Field("", description="the snapshot service's target: only entries archived and "
                                               "older than the newest backed-up shard copies are trimmed")
    trim_without_backup: bool = Field(False, description="trim without a backup target: the storage "
                                                         "replicas' files are then the only copy of older "
                                                         "writes")
    gc_interval_s: float = Field(30.0, gt=0, description="how often the journal is garbage-collected")
    replica_retention_s: float = Field(86_400.0, ge=0, description="how long a replica that is down holds "
                                                                   "GC back; after it, it must be rebuilt "
                                                                   "from a backup or a peer")
