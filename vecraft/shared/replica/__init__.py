"""What every journal-fed replica shares.

Storage nodes (durable replicas) and query processors (in-memory caches) both
follow journal partitions: :class:`PartitionStaleness` is the one staleness
estimator they report, :class:`PartitionHalts` how either stops a partition
loudly, and :mod:`.queue` the bounded queue between a push stream and an applier.
"""

from vecraft.shared.replica.halt import PartitionHalted, PartitionHalts
from vecraft.shared.replica.staleness import (
    UNKNOWN_STALENESS_MS,
    PartitionStaleness,
    StalenessSnapshot,
    monotonic_ms,
)

__all__ = [
    "UNKNOWN_STALENESS_MS",
    "PartitionHalted",
    "PartitionHalts",
    "PartitionStaleness",
    "StalenessSnapshot",
    "monotonic_ms",
]
