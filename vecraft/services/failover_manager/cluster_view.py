"""Live nodes and the current placement map, followed from the meta manager's Watch stream.

A node is live while its registration lease is (its ``PUT`` arrived and no
``DELETE`` since). The view remembers since when each node has been missing
(:attr:`ClusterView.down_since_ms`): the planner waits out a grace period
before moving a missing node's shards. That memory is this process's: a
fail-over manager that takes over starts counting when it first sees a node
missing, which only delays a re-placement, never hastens it.

When the stream breaks the view keeps what it knew, marked not current
(:attr:`ClusterView.current` False: the leader does not act on it), and
reconnects with back-off; the new stream's snapshot replaces it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from vecraft.clients.meta import MetaClient, follow_watch
from vecraft.shared.common.backoff import Backoff
from vecraft.shared.rpc.v1 import meta_pb2

log = logging.getLogger(__name__)

_BACKOFF_MIN_S, _BACKOFF_MAX_S = 0.1, 1.0
ROLES = ("storage", "query")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class ClusterView:
    """Live storage/query nodes and the placement map; :attr:`changed` is set on every change."""

    def __init__(self, meta: MetaClient) -> None:
        self._meta = meta
        self.live: dict[str, meta_pb2.NodeInfo] = {}
        self.placement = meta_pb2.PlacementMap()
        self.down_since_ms: dict[str, int] = {}
        self.current = False
        self.changed = asyncio.Event()
        self.first_seen_ms = 0

    def _touch(self) -> None:
        listed = {n for a in self.placement.shards for n in (*a.storage_nodes, *a.query_nodes)}
        now = _now_ms()
        for node_id in listed - set(self.live):
            self.down_since_ms.setdefault(node_id, now)
        for node_id in list(self.down_since_ms):
            if node_id in self.live or node_id not in listed:
                del self.down_since_ms[node_id]
        self.changed.set()

    async def run(self) -> None:
        """Follow the Watch stream until cancelled."""
        await follow_watch(self._meta, ["nodes", "placement"], snapshot=self._take_snapshot,
                           change=self._change, broken=self._broken,
                           backoff=Backoff(_BACKOFF_MIN_S, _BACKOFF_MAX_S),
                           what="meta manager (keeping the last view)")

    def _take_snapshot(self, events: list[meta_pb2.WatchEvent]) -> None:
        """Replace what we knew."""
        live: dict[str, meta_pb2.NodeInfo] = {}
        placement: meta_pb2.PlacementMap | None = None
        for event in events:
            item = event.WhichOneof("item")
            if item == "placement":
                placement = event.placement
            else:
                self._node_event(event, live)
        self.live = live
        self.placement = placement or self.placement
        self.current = True
        self.first_seen_ms = self.first_seen_ms or _now_ms()
        self._touch()

    def _change(self, event: meta_pb2.WatchEvent) -> None:
        if event.WhichOneof("item") == "placement":
            if event.placement.version >= self.placement.version:
                self.placement = event.placement
        else:
            self._node_event(event, self.live)
        self._touch()

    @staticmethod
    def _node_event(event: meta_pb2.WatchEvent, target: dict[str, meta_pb2.NodeInfo]) -> None:
        if event.WhichOneof("item") == "node" and event.node.role in ROLES:
            if event.type == meta_pb2.WatchEvent.DELETE:
                target.pop(event.node.node_id, None)
            else:
                target[event.node.node_id] = event.node

    def _broken(self) -> None:
        self.current = False
