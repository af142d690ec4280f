"""Settings of the query processor (flags, ``VECRAFT_*`` environment, ``[query]`` TOML table)."""

from __future__ import annotations

import argparse

from pydantic import Field

from vecraft.shared.common.config import ServiceSettings, add_settings_arguments, settings_from_namespace


class QueryProcessorSettings(ServiceSettings):
    """Query processor settings (flags, VECRAFT_* environment, [query] in the TOML file)."""

    shard: list[int] = Field([0], description="shard(s) served while there is no placement map; repeat "
                                              "the flag or list several")
    journal_address: str = Field("127.0.0.1:7100", description="journal service gRPC address")
    data_partitions: int = Field(1, ge=1, description="number of journal data partitions")
    apply_delay_ms: int = Field(0, ge=0, description="test knob: delay the push stream (cache lag); "
                                                      "pull-before-read is never delayed")
    sync_timeout_ms: int = Field(5000, ge=1, description="deadline of a search whose request sets none")
    head_poll_ms: int = Field(100, ge=10, description="interval of journal head polls (staleness bound)")
    journal_retry_ms: int = Field(1000, ge=0, description="how long a journal call rides out an unreachable "
                                                          "journal before the search fails with 503")
    index_threads: int = Field(0, ge=0, description="threads for index applies and searches (0 = CPUs)")
    node_ttl_ms: int = Field(3000, ge=1000, description="lease of the meta manager registration")
    placement_wait_ms: int = Field(2000, ge=0, description="at start, how long to wait for the meta "
                                                           "manager's placement map before serving the "
                                                           "--shard flags")
    cache: bool = Field(True, description="keep an in-memory copy of the served shards, fed by the journal. "
                                         "--no-cache answers every search from the storage nodes the "
                                         "meta manager's registry lists instead (needs --meta-address), "
                                         "at the same consistency level "
                                         "(standalone mode: they run in this process, so the shards are "
                                         "indexed once)")
    optimize_threshold: float = Field(0.2, ge=0, le=1, description="rebuild a cached collection's index in "
                                      "the background once this share of its graph is deleted rows "
                                      "(0 = never)")


def parse_settings(argv: list[str] | None = None) -> QueryProcessorSettings:
    """Settings from flags, environment and TOML; ``--shard`` may repeat (``--shard 0 --shard 2``)."""
    parser = argparse.ArgumentParser(description=QueryProcessorSettings.__doc__, conflict_handler="resolve")
    add_settings_arguments(parser, QueryProcessorSettings)
    parser.add_argument("--shard", dest="shard", type=int, action="extend", nargs="+", default=None,
                        help="shard(s) served; repeat the flag or list several")
    return settings_from_namespace(QueryProcessorSettings, parser.parse_args(argv), section="query")
