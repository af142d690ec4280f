"""Prometheus metrics of the storage node (``vecraft_storage_*``).

A node hosts several shard replicas: what is per replica (offsets, lag, staleness, index sizes,
applied entries and records) carries a ``shard`` label; latencies and sync counts are the process's,
over all its replicas.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from vecraft.shared.common.metrics import counter, gauge, latency_histogram

APPLIED_OFFSET = gauge("storage", "applied", "offset",
                       "Highest journal offset applied (durably committed), per shard replica and partition",
                       ["shard", "partition"])
HEAD_OFFSET = gauge("storage", "head", "offset",
                    "Latest committed journal offset this node knows of, per shard replica and partition",
                    ["shard", "partition"])
REPLAY_LAG = gauge("storage", "replay_lag", "ops",
                   "Journal entries committed but not yet applied (head - applied), per shard replica and "
                   "partition", ["shard", "partition"])
STALENESS = gauge("storage", "staleness", "ms",
                  "Age of the oldest committed entry not yet applied (0 when caught up), per shard replica "
                  "and partition", ["shard", "partition"])
APPLY_RECORDS = counter("storage", "apply_records",
                        "Records applied (upserts + deletes); its rate is the apply rate", ["shard", "kind"])
APPLY_ENTRIES = counter("storage", "apply_entries", "Journal entries applied, per shard replica",
                        ["shard", "path"])
APPLY_LATENCY = latency_histogram("storage", "apply_batch",
                                  "Time to apply one batch: records, commit and index update")
INDEX_RECORDS = gauge("storage", "index", "records", "Live records in a collection's index, per hosted shard",
                      ["shard", "collection"])
SEARCH_LATENCY = latency_histogram("storage", "search", "Shard search latency (including any sync)")
GET_LATENCY = latency_histogram("storage", "get", "Get-by-id latency (including any sync)")
SYNCS = counter("storage", "sync", "Pull-before-read syncs, by whether entries had to be pulled",
                ["pulled"])
SYNC_LATENCY = latency_histogram("storage", "sync", "Pull-before-read sync latency")
SEEDED_REPLICAS = counter("storage", "seeded_replicas",
                          "Shard replicas started from a backed-up copy instead of an empty disk")
SEEDS = counter("storage", "seeds", "Attempts to start a shard replica without files from a copy instead of "
                "the whole journal, by source (backup, peer, journal) and outcome (seeded; failed: no copy "
                "could be had; other_history: a backed-up copy of another journal history; no_peer: no peer "
                "serves the shard; trimmed: the journal was trimmed too, the replica waits for a source)",
                ["source", "outcome"])
SNAPSHOT_LATENCY = latency_histogram("storage", "snapshot", "Time to write an index snapshot")
#: Index optimization (vecraft.shared.index.optimizer): rebuilds of a collection's graph without tombstones.
INDEX_REBUILDS = counter("storage", "index_rebuilds", "Index rebuilds done (graph rebuilt without its "
                         "tombstones and swapped in), per shard replica and collection",
                         ["shard", "collection"])
INDEX_REBUILD_DROPPED = counter("storage", "index_rebuild_dropped_rows", "Dead graph nodes removed by index "
                                "rebuilds, per shard replica and collection", ["shard", "collection"])
INDEX_REBUILD_LATENCY = latency_histogram("storage", "index_rebuild", "Duration of one index rebuild "
                                          "(reads and writes go on meanwhile)",
                                          buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800))
INDEX_DEAD_FRACTION = gauge("storage", "index_dead", "ratio", "Share of a collection's graph nodes that are "
                            "tombstones (rebuilt past --optimize-threshold), per shard replica",
                            ["shard", "collection"])

#: Record file compaction and tombstone collection (record_compaction.py).
RECORD_FILE_BYTES = gauge("storage", "record_file", "bytes", "Bytes of blocks in the current record file "
                          "(live and dead), per shard replica", ["shard"])
RECORD_FILE_DEAD_BYTES = gauge("storage", "record_file_dead", "bytes", "Bytes of the record file's dead "
                               "blocks (superseded or deleted versions), per shard replica", ["shard"])
COMPACTIONS = counter("storage", "compactions", "Record file compactions done (the live blocks rewritten "
                      "into a new file), per shard replica", ["shard"])
COMPACTION_RECLAIMED = counter("storage", "compaction_reclaimed_bytes", "Record file bytes reclaimed by "
                               "compactions, per shard replica", ["shard"])
COMPACTION_LATENCY = latency_histogram("storage", "compaction", "Duration of one record file compaction "
                                       "(applies of the replica wait; reads go on)",
                                       buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300))
TOMBSTONES_COLLECTED = counter("storage", "tombstones_collected", "Tombstone rows deleted from the location "
                               "index (covered by the index snapshot), per shard replica", ["shard"])


def forget_shard(shard: int, partitions: Iterable[str], collections: Iterable[str]) -> None:
    """Drop the gauges of a replica no longer hosted (a frozen offset or lag would mislead).

    Counters stay: they only grow, and a replica hosted again continues them.
    """
    label = str(shard)
    for partition in partitions:
        for per_partition in (APPLIED_OFFSET, HEAD_OFFSET, REPLAY_LAG, STALENESS):
            with contextlib.suppress(KeyError):
                per_partition.remove(label, partition)
    for collection in collections:
        for per_collection in (INDEX_RECORDS, INDEX_DEAD_FRACTION):
            with contextlib.suppress(KeyError):
                per_collection.remove(label, collection)
    for per_shard in (RECORD_FILE_BYTES, RECORD_FILE_DEAD_BYTES):
        with contextlib.suppress(KeyError):
            per_shard.remove(label)
