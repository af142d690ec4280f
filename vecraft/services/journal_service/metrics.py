"""Prometheus metrics of the journal service (``vecraft_journal_*``).

The HLC library exports ``vecraft_hlc_drift_ms`` (last remote drift) and
``vecraft_hlc_remote_rejected_total``; the journal adds the largest drift a
writer has presented, so a single bad clock is visible after the fact.
"""

from __future__ import annotations

import contextlib

from prometheus_client import Histogram

from vecraft.shared.common.metrics import counter, gauge, latency_histogram

AREA = "journal"

APPENDS = counter(AREA, "appends", "Append requests by partition and outcome "
                  "(ok, duplicate, rejected, failed, not_owner)", ["partition", "outcome"])
APPEND_BYTES = counter(AREA, "append_bytes", "Payload bytes of appended entries", ["partition"])
APPEND_SECONDS = latency_histogram(AREA, "append", "Append latency until the answer (durable + acks)",
                                   ["partition", "ack"])
DURABLE_SECONDS = latency_histogram(AREA, "durable", "Append latency until the entry is durable",
                                    ["partition"])
FSYNC_SECONDS = latency_histogram(AREA, "fsync", "Duration of one group-commit write + fsync",
                                  ["partition"])
GROUP_COMMIT_ENTRIES = Histogram(
    "vecraft_journal_group_commit_entries", "Entries made durable by one fsync", ["partition"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024))
HEAD_OFFSET = gauge(AREA, "head_offset", "ops", "Latest committed offset", ["partition"])
PARTITION_FAILURES = counter(AREA, "partition_failures", "Partitions whose writer failed (a disk error, a "
                             "failed high-water-mark write); each stays read-only until a restart",
                             ["partition"])
PARTITION_FAILED = gauge(AREA, "partition_failed", "state", "1 while a partition refuses writes after "
                         "its writer failed", ["partition"])
REQUEST_IDS_HELD = gauge(AREA, "request_ids", "entries", "Request ids remembered for idempotency "
                         "(inside the retention window)")
REQUEST_IDS_EVICTED = counter(AREA, "request_ids_evicted", "Request ids forgotten, oldest first, because "
                              "they left the retention window (reason: age or count)", ["reason"])
FIRST_OFFSET = gauge(AREA, "first_offset", "ops", "Lowest offset still stored (entries below it were "
                     "trimmed by the compactor)", ["partition"])
TRIMMED_BYTES = counter(AREA, "trimmed_bytes", "Bytes of entries trimmed by the compactor", ["partition"])
TRIMMED_ENTRIES = counter(AREA, "trimmed_entries", "Entries trimmed by the compactor", ["partition"])
TORN_TAIL_BYTES = counter(AREA, "torn_tail_bytes", "Bytes cut from torn segment tails on start",
                          ["partition"])

REPLICA_LAG_OPS = gauge(AREA, "replica_lag", "ops", "Entries committed but not applied by a replica",
                        ["partition", "replica"])
REPLICA_LAG_BYTES = gauge(AREA, "replica_lag", "bytes", "Bytes committed but not applied by a replica",
                          ["partition", "replica"])
REPLICA_LAG_MS = gauge(AREA, "replica_lag", "ms", "Age of the oldest entry a replica has not applied",
                       ["partition", "replica"])
REPLICAS_LEFT = counter(AREA, "replicas_left", "Consumers that left a partition on purpose (Leave) and "
                        "were forgotten at once", ["partition"])
REPLICAS_LAGGING = counter(AREA, "replicas_marked_lagging", "Replicas that missed write_ack_timeout",
                           ["partition"])
BACK_PRESSURE = gauge(AREA, "back_pressure", "state", "1 while new writes are refused", ["partition"])
HLC_DRIFT_MAX_MS = gauge(AREA, "hlc_drift_max", "ms",
                         "Largest amount a writer's HLC was ahead of the journal's wall clock")
SUBSCRIBERS = gauge(AREA, "subscribers", "streams", "Open Subscribe streams", ["partition", "role"])
OWNED = gauge(AREA, "partition_owned", "state", "1 while this instance owns the partition (reported only "
              "with partition ownership: --backend jetstream and --meta-address)", ["partition"])
TAKE_OVERS = counter(AREA, "take_overs", "Partitions this instance took over (epoch marker written)",
                     ["partition"])
LEASES_BROKEN = counter(AREA, "leases_broken", "Partition leases this instance broke because their holder's "
                        "port refused connections (a dead owner), to take over before the TTL", ["partition"])


def forget_replica(partition: str, replica_id: str) -> None:
    """Remove a consumer's lag gauges (it left: a frozen last value would read as a live lag)."""
    for metric in (REPLICA_LAG_OPS, REPLICA_LAG_BYTES, REPLICA_LAG_MS):
        with contextlib.suppress(KeyError):
            metric.remove(partition, replica_id)
