"""Settings of the storage node (flags, ``VECRAFT_*`` environment, ``[storage]`` TOML table)."""

from __future__ import annotations

import argparse
from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from vecraft.shared.common.config import ServiceSettings, add_settings_arguments, settings_from_namespace


class StorageNodeSettings(ServiceSettings):
    """Storage node settings (flags, VECRAFT_* environment, [storage] in the TOML file)."""

    shards: Annotated[list[int], NoDecode] = Field(
        default_factory=lambda: [0], description="shards hosted (of every collection): 0,2 or 0 2")
    replica: int = Field(0, ge=0, description="replica number of every hosted shard")
    journal_address: str = Field("127.0.0.1:7100", description="journal service gRPC address")
    data_partitions: int = Field(1, ge=1, description="number of journal data partitions")
    apply_delay_ms: int = Field(0, ge=0, description="test knob: delay the push stream (storage lag); "
                                                      "pull-before-read is never delayed")
    snapshot_every_ops: int = Field(50_000, ge=0, description="index snapshot after this many applied "
                                                              "records (0 = only at shutdown)")
    snapshot_every_s: float = Field(300.0, ge=0, description="... or after this many seconds of applies")
    node_ttl_ms: int = Field(3000, ge=1000, description="lease of the meta manager registration "
                                                        "(heartbeat every third of it)")
    head_poll_ms: int = Field(100, ge=10, description="interval of journal head reads (staleness bound)")
    index_threads: int = Field(1, ge=0, description="OpenMP threads for faiss (0 = library default)")
    optimize_threshold: float = Field(0.2, ge=0, le=1, description="rebuild a collection's index in the "
                                      "background once this share of its graph is deleted rows (0 = never)")
    compact_dead_fraction: float = Field(0.5, ge=0, le=1, description="compact a shard's record file once "
                                         "this share of it is dead blocks (0 = never)")
    compact_min_dead_bytes: int = Field(8 << 20, ge=0, description="... and at least this many bytes are")
    backup_target: str = Field("", description="backup target (docs/backup.md): a shard replica this node "
                                               "has no files for starts from its newest backed-up copy "
                                               "('' = from the journal alone)")

    @field_validator("shards", mode="before")
    @classmethod
    def _parse_shards(cls, value: Any) -> list[int]:
        """``"0,2"``, ``[0, 2]``, ``["0,2"]`` or ``["0", "2"]`` -> ``[0, 2]`` (sorted, each once)."""
        items = value if isinstance(value, list | tuple) else [value]
        out: list[int] = []
        for item in items:
            parts = str(item).strip("[] ").split(",") if isinstance(item, str) else [item]
            for part in parts:
                text = str(part).strip()
                if not text:
                    continue
                try:
                    shard = int(text)
                except ValueError:
                    raise ValueError(f"shards: {text!r} is not a shard number") from None
                if shard < 0:
                    raise ValueError(f"shards: {shard} is negative")
                out.append(shard)
        if not out:
            raise ValueError("shards: at least one shard must be hosted")
        if len(set(out)) != len(out):
            raise ValueError(f"shards: {value!r} names a shard twice")
        return sorted(out)


def parse_settings(argv: list[str] | None = None) -> StorageNodeSettings:
    """Settings from flags, environment and TOML; ``--shards`` takes ``0,2`` or ``0 2`` (or repeats)."""
    parser = argparse.ArgumentParser(description=StorageNodeSettings.__doc__, conflict_handler="resolve")
    add_settings_arguments(parser, StorageNodeSettings)
    parser.add_argument("--shards", dest="shards", type=str, action="extend", nargs="+", default=None,
                        help="shards hosted (of every collection): 0,2 or 0 2")
    return settings_from_namespace(StorageNodeSettings, parser.parse_args(argv), section="storage")
