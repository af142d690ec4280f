"""What every journal-fed replica shares: the staleness measure of a followed partition.

Storage nodes (durable replicas) and query processors (in-memory caches) both
follow journal partitions; :class:`PartitionStaleness` is the one staleness
estimator they both report.
"""

from vecraft.shared.replica.staleness import (
    UNKNOWN_STALENESS_MS,
    PartitionStaleness,
    StalenessSnapshot,
    monotonic_ms,
)

__all__ = ["UNKNOWN_STALENESS_MS", "PartitionStaleness", "StalenessSnapshot", "monotonic_ms"]
