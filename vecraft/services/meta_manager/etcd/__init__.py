"""etcd-specific pieces of the meta manager outside the store: the server launcher."""

from vecraft.services.meta_manager.etcd.launcher import EtcdCluster, EtcdMember, etcd_binary

__all__ = ["EtcdCluster", "EtcdMember", "etcd_binary"]
