"""Meta manager: catalog, placement, node registry, watch streams and HLC coordination.

One ``MetaStore`` interface (``store/``) with an embedded SQLite backend and an
etcd backend; DDL ordered through the journal (``schema/``); clock drift
(``hlc_sync/``); the etcd server launcher for tests and local clusters
(``etcd/``). See docs/meta-manager.md.
"""
