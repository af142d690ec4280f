"""Journal partitions: the partition map and the routing rule."""

from vecraft.services.journal_service.partitioning.map import PartitionMap

__all__ = ["PartitionMap"]
