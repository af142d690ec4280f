"""The meta manager's persistent state behind one interface, with a backend per deployment.

``open_store("sqlite", ...)`` is the embedded default; ``open_store("etcd", ...)``
is cluster mode. The backend is a ``Literal`` setting checked at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from vecraft.services.meta_manager.store.base import DdlRecord, EventType, MetaStore, StoreEvent
from vecraft.services.meta_manager.store.events import EventHub, Subscription, SubscriptionOverflow
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.common.tls import TlsFiles

Backend = Literal["sqlite", "etcd"]

__all__ = [
    "Backend",
    "DdlRecord",
    "EventHub",
    "EventType",
    "MetaStore",
    "StoreEvent",
    "Subscription",
    "SubscriptionOverflow",
    "open_store",
]


def open_store(backend: Backend, *, data_dir: Path, etcd_endpoints: list[str],
               etcd_prefix: str, etcd_tls: TlsFiles | None = None) -> MetaStore:
    """Build (not start) the store of ``backend``; ``etcd_tls``: the files of a TLS channel to etcd.

    Raises:
        InvalidRequest: etcd without endpoints, or an unknown backend.
    """
    if backend == "sqlite":
        from vecraft.services.meta_manager.store.sqlite import SqliteMetaStore

        return SqliteMetaStore(data_dir)
    if backend == "etcd":
        if not etcd_endpoints:
            raise InvalidRequest("--backend etcd needs --etcd-endpoints host:port[,host:port...]")
        # Imported here: the embedded default must not need the cluster extra (aetcd).
        from vecraft.services.meta_manager.store.etcd import EtcdMetaStore

        return EtcdMetaStore(etcd_endpoints, etcd_prefix, tls_files=etcd_tls)
    raise InvalidRequest(f"unknown meta backend {backend!r} (sqlite | etcd)")
