"""Calls to the nodes serving a shard: a search's query nodes, a read's storage replica.

:class:`ShardCalls` turns the routing choices of :mod:`.query_routing` into
calls, under one deadline, through two transport functions (one QuerySearch to
a node; one storage RPC to a node), so that it is tested without gRPC.

A search (:meth:`ShardCalls.search`) asks the planned query nodes in parallel,
each naming all of its shards in one call. The shards of a node that fails
with ``Unavailable`` (connection refused, or the node no longer serves one of
them) are planned again without that node and asked of other nodes serving
them, round after round, while the deadline leaves time; the node is marked
down for the cooldown (a fallback node is forgotten). Shards that no other
live node serves keep the node's error. A read by id or a scan (:meth:`ShardCalls.storage`) tries the storage
replicas of its shard in turn while they are unavailable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar

from vecraft.services.api_gateway.downstream import SearchPart
from vecraft.services.api_gateway.query_routing import ROUTES, Node, Route, RoutingTable, ShardRouter
from vecraft.shared.common.errors import DeadlineExceeded, Unavailable, VecraftError
from vecraft.shared.common.metrics import counter
from vecraft.shared.rpc.v1 import query_pb2

T = TypeVar("T")

QueryCall = Callable[[Route, query_pb2.QuerySearchRequest, float], Awaitable[query_pb2.QuerySearchResponse]]

_STORAGE_CALLS = counter("gateway", "storage_calls", "storage node reads (get by id, scan) by node and "
                                                     "outcome (ok, unavailable, error)", ["node", "outcome"])

#: Time kept back from each query node's deadline for the gateway to merge and answer: the node
#: gets slightly less time than the transport, so it can answer "cannot reach the level in time".
DEADLINE_MARGIN_S = 0.05


def shard_list(shards: Iterable[int]) -> str:
    """``shard 3`` or ``shards 0, 2``: for messages."""
    items = sorted(shards)
    return f"shard{'s' if len(items) > 1 else ''} {', '.join(map(str, items))}"


class ShardCalls:
    """Search and storage calls over the current routing table (see the module doc)."""

    def __init__(self, table: Callable[[], RoutingTable], router: ShardRouter, *,
                 forget: Callable[[str], None] = lambda node_id: None) -> None:
        self._table = table
        self.router = router
        self._forget = forget

    def _failed(self, node: Node, exc: BaseException) -> None:
        """``node``'s call failed with ``exc``: mark it down (unavailable), forget it (a fallback)."""
        if isinstance(exc, Unavailable):
            self.router.mark_down(node.node_id)
        if node.fallback and isinstance(exc, Unavailable | DeadlineExceeded):
            self._forget(node.node_id)

    async def search(self, shards: Sequence[int], base: query_pb2.QuerySearchRequest, deadline: float,
                     affinity: str | None, call: QueryCall) -> list[SearchPart]:
        """Every shard of ``shards`` answered or failed, with as few calls as the table allows."""
        parts: list[SearchPart] = []
        pending = sorted(set(shards))
        failed_with: dict[int, BaseException] = {}
        exclude: set[str] = set()
        retry = False
        while pending:
            routes, unserved = self.router.plan(self._table(), pending, affinity, exclude=exclude,
                                                retry=retry)
            parts.extend(self._unserved(unserved, failed_with))
            if not routes:
                break
            answers = await asyncio.gather(*(self._ask(route, base, deadline, call) for route in routes),
                                           return_exceptions=True)
            pending = []
            for route, answer in zip(routes, answers, strict=True):
                if not isinstance(answer, BaseException):
                    parts.append(SearchPart(route.shards, answer=answer))
                elif isinstance(answer, Unavailable) and deadline - time.monotonic() > DEADLINE_MARGIN_S:
                    # Another node serving these shards may answer within the same deadline.
                    exclude.add(route.node.node_id)
                    pending.extend(route.shards)
                    failed_with.update(dict.fromkeys(route.shards, answer))
                else:
                    parts.append(SearchPart(route.shards, error=answer))
            retry = True
        return parts

    def _unserved(self, shards: Sequence[int], failed_with: dict[int, BaseException]) -> list[SearchPart]:
        """Parts for shards no usable node serves: the error of the node that failed them, else
        an Unavailable naming them."""
        if not shards:
            return []
        by_error: dict[int, tuple[BaseException, list[int]]] = {}
        fresh: list[int] = []
        for shard in shards:
            error = failed_with.get(shard)
            if error is None:
                fresh.append(shard)
            else:
                by_error.setdefault(id(error), (error, []))[1].append(shard)
        parts = [SearchPart(tuple(got), error=error) for error, got in by_error.values()]
        if fresh:
            served = sorted(s for s, nodes in self._table().query.items() if nodes)
            known = (shard_list(served) if 0 < len(served) <= 16
                     else f"{len(served)} shards" if served else "no shard")
            parts.append(SearchPart(tuple(fresh), error=Unavailable(
                f"no live query node serves {shard_list(fresh)} (live query nodes serve {known})",
                details={"shards": fresh})))
        return parts

    async def _ask(self, route: Route, base: query_pb2.QuerySearchRequest, deadline: float,
                   call: QueryCall) -> query_pb2.QuerySearchResponse:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise DeadlineExceeded("search deadline expired before all shards were asked")
        request = query_pb2.QuerySearchRequest()
        request.CopyFrom(base)
        del request.shards[:]
        request.shards.extend(route.shards)
        request.timeout_ms = max(1, int((remaining - DEADLINE_MARGIN_S) * 1000))
        ROUTES.labels(route.node.node_id, route.node.address, route.reason).inc()
        try:
            answer = await call(route, request, remaining)
        except VecraftError as exc:
            self._failed(route.node, exc)
            raise
        self.router.mark_up(route.node.node_id)
        return answer

    async def storage(self, shard: int, timeout_s: float, call: Callable[[Node, float], Awaitable[T]]) -> T:
        """``call(node, timeout)`` on a live storage replica of ``shard``; the next one while
        they are unavailable, all within ``timeout_s``."""
        nodes = self.router.storage_order(self._table(), shard)
        if not nodes:
            raise Unavailable(f"no live storage node serves shard {shard}", details={"shard": shard})
        deadline = time.monotonic() + timeout_s
        last_error: VecraftError | None = None
        for node in nodes:
            remaining = deadline - time.monotonic()
            if last_error is not None and remaining <= DEADLINE_MARGIN_S:
                break
            try:
                answer = await call(node, remaining)
            except Unavailable as exc:
                _STORAGE_CALLS.labels(node.node_id, "unavailable").inc()
                self._failed(node, exc)
                last_error = exc
                continue
            except VecraftError as exc:
                _STORAGE_CALLS.labels(node.node_id, "error").inc()
                self._failed(node, exc)
                raise
            _STORAGE_CALLS.labels(node.node_id, "ok").inc()
            self.router.answered(shard, node)
            return answer
        assert last_error is not None
        raise last_error
