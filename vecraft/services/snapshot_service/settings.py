"""Settings of the snapshot service (flags, ``VECRAFT_*`` environment, ``[snapshot]`` TOML table)."""

from __future__ import annotations

from pydantic import Field

from vecraft.shared.common.config import ServiceSettings


class SnapshotSettings(ServiceSettings):
    """Snapshot service settings (flags, VECRAFT_* environment, [snapshot] in the TOML file)."""

    journal_address: str = Field("", description="journal gRPC address(es), comma separated")
    target: str = Field("", description="backup target: a directory or an s3:// URL (docs/backup.md)")
    archive_interval_ms: int = Field(5000, ge=0, description="how often new journal entries are archived "
                                                             "(0 = only with base backups)")
    backup_interval_s: float = Field(0, ge=0, description="take a base backup this often (0 = only on "
                                                          "request)")
    keep_backups: int = Field(0, ge=0, description="keep the newest N base backups (0 = all)")
    default_shards: int = Field(0, ge=0, description="the cluster's default shard count, recorded in each "
                                                     "backup for the restored cluster (0 = unknown)")
    keep_days: float = Field(0, ge=0, description="delete base backups older than this many days "
                                                  "(0 = any age); the newest is always kept")
