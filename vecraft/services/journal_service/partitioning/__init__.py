"""Journal partitions: the three classes, the partition map and the routing rule."""

from vecraft.services.journal_service.partitioning.map import PartitionClass, PartitionMap

__all__ = ["PartitionClass", "PartitionMap"]
