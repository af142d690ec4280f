"""Meta manager: catalog, placement, node registry, watch streams and HLC coordination.

One ``MetaStore`` interface (``store/``) with an embedded SQLite backend and an
etcd backend; DDL ordered through the journal (``ddl``); clock drift
(``hlc_sync``); API keys and quotas (``api_keys``, ``quotas``). The etcd and
NATS launchers of local clusters live in :mod:`vecraft.local`. See docs/meta-manager.md.
"""
