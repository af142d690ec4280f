"""The query processor's membership in the cluster: its registration and the placement map it follows.

Both are optional and never stop the processor from serving: with no meta
manager, or one that does not answer, it serves the shards of its flags (or of
the last map it saw) and keeps retrying in the background.

- the node registry entry: ``MetaClient.keep_registered`` (register, heartbeat
  at a third of the lease TTL, register again at once when ``changed`` is set,
  leave the registry on shutdown).
- :class:`PlacementWatch`: the placement map, followed from the meta manager's
  Watch stream; :meth:`PlacementWatch.assigned` is what this node must serve.
"""

from __future__ import annotations

import asyncio
import logging

from vecraft.clients.meta import MetaClient, assigned_shards, follow_watch
from vecraft.shared.common.backoff import Backoff
from vecraft.shared.rpc.v1 import meta_pb2

log = logging.getLogger(__name__)

#: Back-off of the Watch reconnects: doubles from the first to the last.
WATCH_BACKOFF_S = (0.1, 2.0)


class PlacementWatch:
    """The last placement map seen; ``changed`` is set whenever a newer one arrives.

    The Watch snapshot's map replaces the one held (a reconnect after the meta
    manager restarted); later events only when their version is higher (an event
    that raced the snapshot may repeat an older version). A snapshot with no map
    keeps the one held: maps are never deleted. While the stream is broken the
    last map stays in force and the stream is reopened with back-off.
    """

    def __init__(self, meta: MetaClient, node_id: str) -> None:
        self.meta = meta
        self.node_id = node_id
        self.placement: meta_pb2.PlacementMap | None = None
        #: Set on every new map; the consumer clears it before reading :meth:`assigned`.
        self.changed = asyncio.Event()
        #: Set once the first Watch attempt ended its snapshot or failed: start-up waits on it.
        self.settled = asyncio.Event()
        self.connected = False
        self._backoff = Backoff(*WATCH_BACKOFF_S)

    @property
    def version(self) -> int:
        return self.placement.version if self.placement is not None else 0

    def assigned(self) -> list[int] | None:
        """The shards this node is assigned, or None while there is no map (flags apply)."""
        return None if self.placement is None else assigned_shards(self.placement, self.node_id, "query")

    def offer(self, placement: meta_pb2.PlacementMap, *, snapshot: bool = False) -> bool:
        """Take ``placement`` if it is newer (or, from a snapshot, different); True if taken."""
        if placement.version == 0:
            return False
        if self.placement is not None and not (
                placement.version > self.placement.version
                or (snapshot and placement.version != self.placement.version)):
            return False
        self.placement = placement
        log.info("placement map version %d: this node is assigned shards %s", placement.version,
                 self.assigned(), extra={"version": placement.version, "node_id": self.node_id})
        self.changed.set()
        return True

    async def run(self) -> None:
        """Follow the Watch stream until cancelled."""
        await follow_watch(self.meta, ["placement"], snapshot=self._take_snapshot, change=self._change,
                           broken=self._broken, backoff=self._backoff,
                           what="placement (keeping the last map)")

    def _take_snapshot(self, events: list[meta_pb2.WatchEvent]) -> None:
        self.connected = True
        maps = [e.placement for e in events if e.WhichOneof("item") == "placement"]
        if maps:
            self.offer(maps[-1], snapshot=True)
        self.settled.set()

    def _change(self, event: meta_pb2.WatchEvent) -> None:
        if event.WhichOneof("item") == "placement":
            self.offer(event.placement)

    def _broken(self) -> None:
        self.connected = False
        self.settled.set()
