"""What the fail-over manager knows of the cluster: live nodes and the placement map, from one Watch."""

from vecraft.services.failover_manager.monitoring.cluster_view import ClusterView

__all__ = ["ClusterView"]
