"""The routing table, kept from the meta manager's node registry and placement map.

:class:`NodeRegistry` follows the meta manager's Watch stream of the
``nodes`` and ``placement`` topics and rebuilds the
:class:`~.query_routing.RoutingTable` on every change (events are rare: a node
registering, leaving, changing the shards it serves, a new placement map), so
a read looks the table up without waiting for anything.

The rules are the schema cache's (:mod:`.schema_cache`):

- **Ready at the first snapshot.** :meth:`NodeRegistry.wait_ready` returns
  once the first stream's end-of-snapshot marker arrived; the gateway reports
  ready only then, so its first search is not refused for want of a table.
- **Disconnected, keep routing.** When the stream breaks, or the meta
  manager stops answering, the last table stays in use
  (``vecraft_gateway_registry_watch_connected_state`` 0) and the stream is
  reopened with a short back-off. Nodes that die meanwhile are still in it:
  the calls that fail on them are retried on other nodes and mark them down
  (:mod:`.query_routing`).
- **Reconnected, replace wholesale.** A reopened stream's snapshot is
  collected aside and replaces the nodes and the map at its marker, so a
  node that left while the gateway was away is gone; later events apply
  one by one. A node ``DELETE`` (lease expired or deregistered) removes it at
  once, except as the *fallback* of shards nothing else serves
  (:mod:`.query_routing`), forgotten by :meth:`NodeRegistry.forget` when a
  call to it fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable

from vecraft.services.api_gateway.downstream import DELETE, PUT, SNAPSHOT_END
from vecraft.services.api_gateway.query_routing import RoutingTable
from vecraft.shared.common.backoff import Backoff
from vecraft.shared.common.metrics import counter, gauge
from vecraft.shared.common.stream_follow import follow_snapshot_stream
from vecraft.shared.rpc.v1 import meta_pb2

log = logging.getLogger(__name__)

_CONNECTED = gauge("gateway", "registry_watch_connected", "state",
                   "1 while the meta manager's node registry Watch stream is connected and its snapshot "
                   "applied; 0 while the last routing table is used as it was")
_DISCONNECTS = counter("gateway", "registry_watch_disconnects",
                       "times the node registry Watch stream broke after it was connected")
_NODES = gauge("gateway", "routable_nodes", "count",
               "live nodes in the routing table (fallbacks not counted), by role", ["role"])
_UNSERVED = gauge("gateway", "unserved_shards", "count",
                  "shards below the shard count that no live query node serves")

#: Reconnect back-off of the Watch stream, seconds.
_BACKOFF_MIN, _BACKOFF_MAX = 0.1, 1.0

Watch = Callable[[], AsyncIterator[meta_pb2.WatchEvent]]


@dataclasses.dataclass
class _Registry:
    """What the stream told: registered nodes by id, and the placement map (None: none yet)."""

    nodes: dict[str, meta_pb2.NodeInfo] = dataclasses.field(default_factory=dict)
    placement: meta_pb2.PlacementMap | None = None


class NodeRegistry:
    """The routing table from a Watch of ``nodes`` and ``placement``; see the module doc.

    ``watch`` opens one stream (snapshot, end marker, changes; it ends or raises
    ``VecraftError`` when the meta manager goes away). ``on_registered(node_id)`` is
    called when a node registers anew (first seen, or a new process or address).
    ``on_table(table)`` after every rebuild.
    """

    def __init__(self, watch: Watch, *, on_registered: Callable[[str], None] | None = None,
                 on_table: Callable[[RoutingTable], None] | None = None) -> None:
        self._watch = watch
        self._on_registered = on_registered
        self._on_table = on_table
        self._state = _Registry()
        #: Nodes that left the registry and may still be a shard's fallback, by id.
        self._departed: dict[str, meta_pb2.NodeInfo] = {}
        #: Nodes no longer used as fallbacks (a call to them failed) until they register again.
        self._forgotten: set[str] = set()
        self._table = RoutingTable()
        self._ready = asyncio.Event()
        self._watching = False
        _CONNECTED.set(0)

    @property
    def table(self) -> RoutingTable:
        """The current table (never blocks; empty until the first snapshot)."""
        return self._table

    @property
    def ready(self) -> bool:
        """True once a first snapshot was applied (stays True through later outages)."""
        return self._ready.is_set()

    @property
    def watching(self) -> bool:
        """True while the stream is connected and its snapshot applied."""
        return self._watching

    async def wait_ready(self) -> None:
        await self._ready.wait()

    def _set_watching(self, watching: bool) -> None:
        self._watching = watching
        _CONNECTED.set(1 if watching else 0)

    def forget(self, node_id: str) -> None:
        """A call to fallback ``node_id`` failed: no longer route to it until it registers again."""
        if node_id not in self._forgotten and node_id in self._table.fallbacks():
            log.info("fallback node failed a call; not routed to until it registers again",
                     extra={"node": node_id})
            self._forgotten.add(node_id)
            self._departed.pop(node_id, None)
            self._rebuild()

    def _rebuild(self) -> None:
        registered = self._state.nodes
        for node_id in registered:
            self._departed.pop(node_id, None)
        self._forgotten &= set(registered)
        self._table = RoutingTable.build(registered.values(), self._state.placement,
                                         departed=self._departed.values(), forgotten=self._forgotten)
        # Keep only the departed nodes the table still uses.
        used = self._table.fallbacks()
        self._departed = {k: v for k, v in self._departed.items() if k in used}
        for role in ("query", "storage"):
            live = {n for nodes in getattr(self._table, role).values() for n in nodes if not n.fallback}
            _NODES.labels(role).set(len(live))
        _UNSERVED.set(sum(1 for s in range(self._table.shard_count) if not self._table.query.get(s)))
        if self._on_table is not None:
            self._on_table(self._table)

    def _apply(self, event: meta_pb2.WatchEvent, state: _Registry) -> None:
        """One event into ``state`` (the live one, or a snapshot being collected)."""
        item = event.WhichOneof("item")
        if item == "placement":
            state.placement = event.placement if event.type == PUT else None
        elif item == "node" and event.type == PUT:
            node = event.node
            known = self._state.nodes.get(node.node_id)
            if self._on_registered is not None and (
                    known is None or (known.pid, known.address) != (node.pid, node.address)):
                self._on_registered(node.node_id)  # a new process: forget its predecessor's failures
            state.nodes[node.node_id] = node
            self._forgotten.discard(node.node_id)
        elif item == "node" and event.type == DELETE:
            gone = state.nodes.pop(event.node.node_id, None)
            if gone is not None and state is self._state:
                log.info("node left the registry", extra={"node": gone.node_id, "role": gone.role})
                self._departed[gone.node_id] = gone

    async def run(self) -> None:
        """Follow the registry until cancelled; reconnect with back-off (never raises)."""
        await follow_snapshot_stream(
            lambda: self._watch(),  # looked up per connection (tests replace it)
            is_end=lambda event: event.WhichOneof("item") is None and event.type == SNAPSHOT_END,
            snapshot=self._take_snapshot, change=self._change, broken=self._broken,
            backoff=Backoff(_BACKOFF_MIN, _BACKOFF_MAX), what="node registry (routing from the last table)")

    def _take_snapshot(self, events: list[meta_pb2.WatchEvent]) -> None:
        snapshot = _Registry()
        for event in events:
            self._apply(event, snapshot)
        for node_id, info in self._state.nodes.items():
            if node_id not in snapshot.nodes:
                self._departed[node_id] = info
        self._state = snapshot
        self._rebuild()
        self._set_watching(True)
        self._ready.set()
        log.info("node registry watch connected", extra={
            "nodes": len(self._state.nodes), "shard_count": self._table.shard_count,
            "placement_version": self._table.placement_version})

    def _change(self, event: meta_pb2.WatchEvent) -> None:
        self._apply(event, self._state)
        self._rebuild()

    def _broken(self) -> None:
        if self._watching:
            _DISCONNECTS.inc()
        self._set_watching(False)

    def describe(self) -> dict[str, object]:
        """For ``/healthz``: whether the watch is connected, and the table."""
        return {"registry_watch": self._watching, "routing_ready": self.ready, **self._table.describe()}
