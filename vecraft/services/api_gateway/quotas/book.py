"""The quota records a gateway enforces, followed from the meta manager's Watch stream (topic ``quotas``).

The records live in memory: finding a request's quotas is two dictionary lookups. Until
the first snapshot arrived no quota is enforced (a gateway starting while the meta manager
is down serves without limits rather than not at all; ``loaded`` says which). While the
meta manager is unreachable the last records stay in force; the stream is re-opened with
backoff and its next snapshot replaces them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from vecraft.clients.meta import MetaClient, follow_watch
from vecraft.shared.rpc.v1 import meta_pb2

log = logging.getLogger(__name__)


Subject = tuple[str, str]  # (tenant, key_id); key_id "" = the tenant's quota


class QuotaBook:
    """Quota records by subject, kept current from the meta manager.

    ``on_change(subject)`` is called for every subject whose record was set, replaced or
    removed (the limiter drops that subject's buckets).
    """

    def __init__(self, meta: MetaClient | None = None) -> None:
        self.meta = meta
        self._records: dict[Subject, meta_pb2.Quota] = {}
        self._loaded = asyncio.Event()
        self._listeners: list[Callable[[Subject], None]] = []

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    async def wait_loaded(self) -> None:
        await self._loaded.wait()

    def on_change(self, listener: Callable[[Subject], None]) -> None:
        self._listeners.append(listener)

    def get(self, tenant: str, key_id: str = "") -> meta_pb2.Quota | None:
        return self._records.get((tenant, key_id))

    def records(self) -> list[meta_pb2.Quota]:
        return [self._records[s] for s in sorted(self._records)]

    def put(self, quota: meta_pb2.Quota) -> None:
        """Apply one record (the gateway that set it applies it before the event arrives)."""
        subject = (quota.tenant, quota.key_id)
        if self._records.get(subject) == quota:
            return
        self._records[subject] = quota
        self._changed(subject)

    def remove(self, tenant: str, key_id: str) -> None:
        if self._records.pop((tenant, key_id), None) is not None:
            self._changed((tenant, key_id))

    def replace_all(self, records: dict[Subject, meta_pb2.Quota]) -> None:
        """Replace every record with a new snapshot (subjects that changed are reported)."""
        changed = {s for s in self._records.keys() | records.keys() if self._records.get(s) != records.get(s)}
        self._records = dict(records)
        for subject in changed:
            self._changed(subject)
        self._loaded.set()

    def _changed(self, subject: Subject) -> None:
        for listener in self._listeners:
            listener(subject)

    async def run_watch(self) -> None:
        """Follow the ``quotas`` topic until cancelled (:func:`follow_watch`: reconnects with backoff)."""
        assert self.meta is not None
        await follow_watch(self.meta, ["quotas"], snapshot=self._snapshot, change=self._change, what="quota")

    def _snapshot(self, events: list[meta_pb2.WatchEvent]) -> None:
        self.replace_all({(e.quota.tenant, e.quota.key_id): e.quota for e in events
                          if e.WhichOneof("item") == "quota"})
        log.info("quotas loaded", extra={"quotas": len(self._records)})

    def _change(self, event: meta_pb2.WatchEvent) -> None:
        if event.WhichOneof("item") != "quota":
            return
        if event.type == meta_pb2.WatchEvent.DELETE:
            self.remove(event.quota.tenant, event.quota.key_id)
        else:
            self.put(event.quota)
