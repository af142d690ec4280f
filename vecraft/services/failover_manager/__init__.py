"""The fail-over manager: keeps every shard replicated on live nodes by writing the placement map.

``python -m vecraft.services.failover_manager --meta-address H:P``. See
:mod:`.main` for the process, :mod:`.planner` for the placement rules,
:mod:`.leadership` for the one-active-instance lease and :mod:`.monitoring`
for how it sees the cluster.
"""
