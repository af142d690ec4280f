"""What every journal-fed replica shares.

Storage nodes (durable replicas) and query processors (in-memory caches) both
follow journal partitions with the one :class:`.follower.PartitionFollower`
(push tail, single-flight pull-before-read, history check) driving a
:class:`.follower.ShardApplier` -- the node's durable engine or the processor's
in-memory cache. :class:`PartitionStaleness` is the one staleness estimator,
:class:`PartitionHalts` how either stops a partition loudly, and :mod:`.queue`
the bounded queue between a push stream and an applier.
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
