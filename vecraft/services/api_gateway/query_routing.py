"""Which nodes serve a read: the routing table and the choices made over it.

The gateway routes from the meta manager's node registry (:mod:`.registry`
keeps it): :class:`RoutingTable` is one immutable view of it, for every shard
the live query nodes and storage nodes whose ``NodeInfo.shards`` (the shards
they serve now) contain it. A node whose lease expired, that deregistered, or
that the placement map lists in ``down_nodes`` is not in the table.

:class:`ShardRouter` makes the choices:

* **A search covers its shards with as few query nodes as possible**
  (:meth:`ShardRouter.plan`): a greedy cover that repeatedly takes the node
  serving the most shards not covered yet, so a node serving several of the
  collection's shards gets one call naming them all. Among equally good
  nodes, a search with an affinity key (a READ_YOUR_WRITES session) takes the
  one the key ranks highest (rendezvous hashing: the same in every gateway
  process, and a node leaving moves only the sessions it had), so every read
  of the session goes to the same nodes, which then sync once per write; other
  searches go round-robin over them.
* **A node that failed with UNAVAILABLE is marked down** for ``cooldown_s``
  seconds: plans use it only for shards no other node serves. A node seen
  re-registering (restarted) is marked up at once.
* **Nodes that left the registry or that the placement map marks down are
  not routed to**, except as a shard's *fallback* (``Node.fallback``): when no
  other node of the role serves a shard, the last nodes that did are still
  tried for it, and each is forgotten as soon as a call to it fails (it
  comes back by registering again). A meta manager back from a pause or a
  restart longer than the node leases expires every lease at once (and the
  fail-over manager may mark every node down) while the nodes are alive and
  register again within a heartbeat: without fallbacks, every search and
  read of that second would fail. A truly dead node costs one failed call.
* **Storage reads** (:meth:`ShardRouter.storage_order`) try the live replicas
  of the shard starting with the one that answered last, replicas marked down
  last.

Every QuerySearch call is counted in ``vecraft_gateway_query_routes_total{node,
processor, reason}`` (``processor`` is the node's address) with reason
``round_robin``, ``affinity`` or ``failover`` (a retry on another node, or a
session served away from its own node because that one is down).
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from vecraft.shared.common.metrics import counter
from vecraft.shared.rpc.v1 import meta_pb2

ROUTES = counter("gateway", "query_routes",
                 "QuerySearch calls by query node (id and address) and reason; one call per node per search",
                 ["node", "processor", "reason"])

ROUND_ROBIN, AFFINITY, FAILOVER = "round_robin", "affinity", "failover"

#: Seconds a node that answered UNAVAILABLE is avoided.
DEFAULT_COOLDOWN_S = 3.0
#: Round-robin counters kept at most (one per set of equally good nodes).
_MAX_COUNTERS = 1024


@dataclass(frozen=True, slots=True, order=True)
class Node:
    """A routable node: its registry id and gRPC address."""

    node_id: str
    address: str
    #: Left the registry or marked down, tried only because no other node serves the shard.
    fallback: bool = False

    def __str__(self) -> str:
        return f"{self.node_id}@{self.address}{' (fallback)' if self.fallback else ''}"


@dataclass(frozen=True, slots=True)
class Route:
    """One call of a search: ``node`` searches ``shards``."""

    node: Node
    shards: tuple[int, ...]
    reason: str


@dataclass(frozen=True)
class RoutingTable:
    """Shard -> live nodes, per role; built from the registry and the placement map."""

    #: shard -> query nodes serving it, by node id.
    query: Mapping[int, tuple[Node, ...]] = field(default_factory=dict)
    #: shard -> storage nodes serving it, by node id.
    storage: Mapping[int, tuple[Node, ...]] = field(default_factory=dict)
    #: Shards of the placement map when one exists, else the highest shard served + 1.
    shard_count: int = 0
    #: Version of the placement map (0: none yet).
    placement_version: int = 0
    #: Registered nodes the placement map lists as down (routed to only as fallbacks).
    down_nodes: tuple[str, ...] = ()

    @classmethod
    def build(cls, nodes: Iterable[meta_pb2.NodeInfo], placement: meta_pb2.PlacementMap | None = None, *,
              departed: Iterable[meta_pb2.NodeInfo] = (), forgotten: Collection[str] = ()) -> RoutingTable:
        """The table of the registered ``nodes`` under ``placement`` (None or version 0: no map).

        ``departed``: nodes that left the registry. They, and registered nodes the map marks
        down, are the fallbacks of the shards they served that no other node of their role
        serves, unless ``forgotten`` (a call to them failed).
        """
        down = set(placement.down_nodes) if placement is not None else set()
        by_role: dict[str, dict[int, list[Node]]] = {"query": {}, "storage": {}}
        marked: set[str] = set()
        spare: list[meta_pb2.NodeInfo] = list(departed)
        for info in nodes:
            shards = by_role.get(info.role)
            if shards is None or not info.address:
                continue
            if info.node_id in down or info.state == "down":
                marked.add(info.node_id)
                spare.append(info)
                continue
            node = Node(info.node_id, info.address)
            for shard in set(info.shards):
                shards.setdefault(shard, []).append(node)
        for info in spare:
            shards = by_role.get(info.role)
            if shards is None or not info.address or info.node_id in forgotten:
                continue
            node = Node(info.node_id, info.address, fallback=True)
            for shard in set(info.shards):
                if all(n.fallback for n in shards.get(shard, ())):
                    shards.setdefault(shard, []).append(node)
        query = {s: tuple(sorted(n)) for s, n in sorted(by_role["query"].items())}
        storage = {s: tuple(sorted(n)) for s, n in sorted(by_role["storage"].items())}
        if placement is not None and placement.version and placement.shards:
            count = max(a.shard for a in placement.shards) + 1
        else:
            count = max([*query, *storage], default=-1) + 1
        return cls(query=query, storage=storage, shard_count=count,
                   placement_version=placement.version if placement is not None else 0,
                   down_nodes=tuple(sorted(marked)))

    def fallbacks(self) -> set[str]:
        """Ids of the nodes the table holds as fallbacks."""
        return {n.node_id for table in (self.query, self.storage) for nodes in table.values()
                for n in nodes if n.fallback}

    def addresses(self) -> set[str]:
        """Every routable node's address."""
        return {n.address for table in (self.query, self.storage) for nodes in table.values() for n in nodes}

    def describe(self) -> dict[str, object]:
        """The table for ``/healthz``: per shard its query and storage nodes (``id@address``, a
        fallback marked ``(fallback)``)."""
        shards = sorted({*self.query, *self.storage, *range(self.shard_count)})
        return {
            "shard_count": self.shard_count,
            "placement_version": self.placement_version,
            "down_nodes": list(self.down_nodes),
            "shards": {str(s): {"query": [str(n) for n in self.query.get(s, ())],
                                "storage": [str(n) for n in self.storage.get(s, ())]}
                       for s in shards},
        }


def affinity_rank(key: str, node_id: str) -> int:
    """Rendezvous weight of ``node_id`` for ``key``: the highest-ranked serving node is the
    key's own (stable across gateway processes and restarts)."""
    return int.from_bytes(hashlib.blake2b(f"{key}\0{node_id}".encode(), digest_size=8).digest(), "big")


class ShardRouter:
    """Cover choice, round-robin, affinity and the down marks (see the module doc)."""

    def __init__(self, *, cooldown_s: float = DEFAULT_COOLDOWN_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._cooldown_s = cooldown_s
        self._clock = clock
        self._counters: dict[tuple[str, ...], itertools.count[int]] = {}
        self._down_until: dict[str, float] = {}
        #: shard -> the storage node that answered its last read.
        self._preferred: dict[int, str] = {}

    # --- down marks --------------------------------------------------------------------------------
    def is_down(self, node_id: str) -> bool:
        until = self._down_until.get(node_id)
        if until is None:
            return False
        if self._clock() >= until:
            del self._down_until[node_id]
            return False
        return True

    def mark_down(self, node_id: str) -> None:
        self._down_until[node_id] = self._clock() + self._cooldown_s

    def mark_up(self, node_id: str) -> None:
        self._down_until.pop(node_id, None)

    # --- searches ----------------------------------------------------------------------------------
    def plan(self, table: RoutingTable, shards: Iterable[int], affinity: str | None = None, *,
             exclude: Iterable[str] = (), retry: bool = False) -> tuple[list[Route], list[int]]:
        """Calls covering ``shards``, and the shards no usable query node serves.

        ``exclude``: node ids not to use at all (they failed earlier in this search);
        ``retry``: these calls retry shards whose first node failed (reason ``failover``).
        Nodes marked down are used only for shards no other node serves.
        """
        excluded = set(exclude)
        wanted = sorted(set(shards))
        usable = {s: [n for n in table.query.get(s, ()) if n.node_id not in excluded] for s in wanted}
        healthy = {s: [n for n in nodes if not self.is_down(n.node_id)] for s, nodes in usable.items()}
        picks = self._cover({s: n for s, n in healthy.items() if n}, affinity)
        covered = {s for _, got in picks for s in got}
        picks += self._cover({s: n for s, n in usable.items() if n and s not in covered}, affinity)
        covered = {s for _, got in picks for s in got}
        unserved = [s for s in wanted if s not in covered]
        if retry:
            return [Route(node, got, FAILOVER) for node, got in picks], unserved
        if not affinity:
            return [Route(node, got, ROUND_ROBIN) for node, got in picks], unserved
        # The session's own nodes: the cover with every serving node up.
        own = {node for node, _ in self._cover({s: list(table.query.get(s, ())) for s in wanted}, affinity)}
        return [Route(node, got, AFFINITY if node in own else FAILOVER) for node, got in picks], unserved

    def _cover(self, candidates: Mapping[int, Sequence[Node]],
               affinity: str | None) -> list[tuple[Node, tuple[int, ...]]]:
        """Greedy set cover of ``candidates`` (shard -> nodes serving it, each non-empty)."""
        serves: dict[Node, set[int]] = {}
        for shard, nodes in candidates.items():
            for node in nodes:
                serves.setdefault(node, set()).add(shard)
        uncovered = set(candidates)
        out: list[tuple[Node, tuple[int, ...]]] = []
        while uncovered:
            gain = {node: len(got & uncovered) for node, got in serves.items()}
            best = max(gain.values())
            ties = sorted(node for node, g in gain.items() if g == best)
            if affinity:
                pick = max(ties, key=lambda n: affinity_rank(affinity, n.node_id))
            else:
                pick = ties[self._next(tuple(n.node_id for n in ties)) % len(ties)]
            got = serves.pop(pick) & uncovered
            out.append((pick, tuple(sorted(got))))
            uncovered -= got
        return out

    def _next(self, key: tuple[str, ...]) -> int:
        if len(key) == 1:
            return 0
        counter_ = self._counters.get(key)
        if counter_ is None:
            if len(self._counters) >= _MAX_COUNTERS:
                self._counters.clear()
            counter_ = self._counters[key] = itertools.count()
        return next(counter_)

    # --- storage reads -----------------------------------------------------------------------------
    def storage_order(self, table: RoutingTable, shard: int) -> list[Node]:
        """The live storage nodes of ``shard`` in the order to try them: the one that answered
        last first, the others by node id, nodes marked down last."""
        nodes = list(table.storage.get(shard, ()))
        preferred = self._preferred.get(shard)
        start = next((i for i, n in enumerate(nodes) if n.node_id == preferred), 0)
        ring = nodes[start:] + nodes[:start]
        return sorted(ring, key=lambda n: self.is_down(n.node_id))

    def answered(self, shard: int, node: Node) -> None:
        """``node`` answered a read of ``shard``: try it first next time, and it is up."""
        self._preferred[shard] = node.node_id
        self.mark_up(node.node_id)
