"""Calls over the routing table: one QuerySearch per node naming its shards, the shards of an
unavailable node retried on another node within the same deadline, storage replicas in turn."""

from __future__ import annotations

import time

import pytest
from prometheus_client import REGISTRY

from vecraft.services.api_gateway.downstream import SearchPart
from vecraft.services.api_gateway.query_routing import Node, Route, RoutingTable, ShardRouter
from vecraft.services.api_gateway.shard_calls import ShardCalls
from vecraft.shared.common.errors import DeadlineExceeded, InvalidRequest, Unavailable, VecraftError
from vecraft.shared.rpc.v1 import meta_pb2, query_pb2, storage_pb2

pytestmark = pytest.mark.unit


def build(query: dict[str, list[int]], storage: dict[str, list[int]] | None = None) -> RoutingTable:
    infos = [meta_pb2.NodeInfo(node_id=n, role="query", address=f"{n}:1", shards=s) for n, s in query.items()]
    infos += [meta_pb2.NodeInfo(node_id=n, role="storage", address=f"{n}:1", shards=s)
              for n, s in (storage or {}).items()]
    return RoutingTable.build(infos)


class Nodes:
    """Scripted query nodes: each answers with the shards it was asked, or raises its error."""

    def __init__(self, errors: dict[str, VecraftError] | None = None) -> None:
        self.errors = errors or {}
        self.asked: list[tuple[str, tuple[int, ...], int]] = []

    async def __call__(self, route: Route, request: query_pb2.QuerySearchRequest,
                       timeout_s: float) -> query_pb2.QuerySearchResponse:
        self.asked.append((route.node.node_id, tuple(request.shards), request.timeout_ms))
        error = self.errors.get(route.node.node_id)
        if error is not None:
            raise error
        return query_pb2.QuerySearchResponse(shards=request.shards, partition=route.node.node_id)


def outcome(parts: list[SearchPart]) -> dict[tuple[int, ...], str]:
    return {p.shards: p.answer.partition if p.answer is not None else repr(p.error) for p in parts}


def routes_metric(node: str, reason: str) -> float:
    return REGISTRY.get_sample_value("vecraft_gateway_query_routes_total",
                                     {"node": node, "processor": f"{node}:1", "reason": reason}) or 0.0


async def test_one_call_per_node_names_all_its_shards() -> None:
    t = build({"qa": [0, 1, 2], "qb": [0, 1, 2]})
    calls, nodes = ShardCalls(lambda: t, ShardRouter()), Nodes()
    before = routes_metric("qa", "round_robin") + routes_metric("qb", "round_robin")
    deadline = time.monotonic() + 5
    parts = await calls.search([0, 1, 2], query_pb2.QuerySearchRequest(k=3), deadline, None, nodes)
    assert len(nodes.asked) == 1 and nodes.asked[0][1] == (0, 1, 2) and 4000 < nodes.asked[0][2] < 5000
    assert [p.shards for p in parts] == [(0, 1, 2)] and parts[0].answer is not None
    assert routes_metric("qa", "round_robin") + routes_metric("qb", "round_robin") == before + 1


async def test_an_unavailable_nodes_shards_are_retried_on_other_nodes_within_the_deadline() -> None:
    router = ShardRouter()
    t = build({"qa": [0, 1], "qb": [0], "qc": [1]})
    nodes = Nodes({"qa": Unavailable("qa is unavailable: connection refused")})
    parts = await ShardCalls(lambda: t, router).search([0, 1], query_pb2.QuerySearchRequest(),
                                                       time.monotonic() + 5, "s:1", nodes)
    asked = [(n, s) for n, s, _ in nodes.asked]
    assert asked[0] == ("qa", (0, 1)) and sorted(asked[1:]) == [("qb", (0,)), ("qc", (1,))]
    assert outcome(parts) == {(0,): "qb", (1,): "qc"}
    assert router.is_down("qa")
    # The next search avoids the node marked down: two calls, no failure.
    nodes.asked.clear()
    parts = await ShardCalls(lambda: t, router).search([0, 1], query_pb2.QuerySearchRequest(),
                                                       time.monotonic() + 5, "s:1", nodes)
    assert sorted(n for n, _, _ in nodes.asked) == ["qb", "qc"] and len(parts) == 2


async def test_shards_only_the_failed_node_serves_keep_its_error_and_unserved_ones_are_named() -> None:
    t = build({"qa": [0, 1], "qb": [0]})
    down = Unavailable("query node qa at qa:1 (shards 0, 1) is unavailable: connection refused")
    parts = await ShardCalls(lambda: t, ShardRouter()).search(
        [0, 1, 2], query_pb2.QuerySearchRequest(), time.monotonic() + 5, None, Nodes({"qa": down}))
    by_shards = {p.shards: p for p in parts}
    assert set(by_shards) == {(0,), (1,), (2,)}
    assert by_shards[(1,)].error is down
    unserved = by_shards[(2,)].error
    assert isinstance(unserved, Unavailable) and "no live query node serves shard 2" in unserved.message
    assert unserved.details == {"shards": [2]}
    # qa answered first (the cover's best node), so shard 0 went to qb on the retry.
    assert by_shards[(0,)].answer is not None and by_shards[(0,)].answer.partition == "qb"


async def test_other_errors_are_not_retried() -> None:
    t = build({"qa": [0], "qb": [0]})
    for error in (InvalidRequest("bad filter"), DeadlineExceeded("too slow")):
        router = ShardRouter()
        nodes = Nodes({"qa": error, "qb": error})
        parts = await ShardCalls(lambda: t, router).search([0], query_pb2.QuerySearchRequest(),
                                                           time.monotonic() + 5, None, nodes)
        assert len(nodes.asked) == 1 and parts == [SearchPart((0,), error=error)]
        assert not router.is_down(nodes.asked[0][0])
    # No time left: nothing is asked, the shard fails with DeadlineExceeded.
    parts = await ShardCalls(lambda: t, ShardRouter()).search([0], query_pb2.QuerySearchRequest(),
                                                              time.monotonic() - 1, None, Nodes())
    assert isinstance(parts[0].error, DeadlineExceeded)


async def test_storage_reads_try_the_next_replica_while_one_is_unavailable() -> None:
    router = ShardRouter()
    t = build({}, {"s0": [0], "s1": [0]})
    calls = ShardCalls(lambda: t, router)
    tried: list[str] = []

    async def get(node: Node, timeout_s: float) -> storage_pb2.ShardGetResponse:
        tried.append(node.node_id)
        if node.node_id == "s0":
            raise Unavailable("s0 is unavailable: connection refused")
        return storage_pb2.ShardGetResponse(missing_ids=[node.node_id])

    assert (await calls.storage(0, 5.0, get)).missing_ids == ["s1"]
    assert tried == ["s0", "s1"] and router.is_down("s0")
    tried.clear()
    assert (await calls.storage(0, 5.0, get)).missing_ids == ["s1"] and tried == ["s1"]
    with pytest.raises(Unavailable, match="no live storage node serves shard 3"):
        await calls.storage(3, 5.0, get)

    async def refuse(node: Node, timeout_s: float) -> storage_pb2.ShardGetResponse:
        raise InvalidRequest("bad id")

    with pytest.raises(InvalidRequest):
        await calls.storage(0, 5.0, refuse)


async def test_a_fallback_node_that_fails_a_call_is_forgotten() -> None:
    gone = meta_pb2.NodeInfo(node_id="qa", role="query", address="qa:1", shards=[0])
    gone_storage = meta_pb2.NodeInfo(node_id="sa", role="storage", address="sa:1", shards=[0])
    t = RoutingTable.build([], departed=[gone, gone_storage])
    assert [str(n) for n in t.query[0]] == ["qa@qa:1 (fallback)"]
    forgotten: list[str] = []
    calls = ShardCalls(lambda: t, ShardRouter(), forget=forgotten.append)
    nodes = Nodes({"qa": DeadlineExceeded("qa timed out")})
    parts = await calls.search([0], query_pb2.QuerySearchRequest(), time.monotonic() + 5, None, nodes)
    assert isinstance(parts[0].error, DeadlineExceeded) and forgotten == ["qa"]

    async def refused(node: Node, timeout_s: float) -> storage_pb2.ShardGetResponse:
        raise Unavailable("connection refused")

    with pytest.raises(Unavailable):
        await calls.storage(0, 5.0, refused)
    assert forgotten == ["qa", "sa"]
