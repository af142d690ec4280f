"""The routing table from the registry, and choosing the query nodes of a search: the fewest
calls covering the shards, session affinity, round-robin, nodes marked down, unserved shards."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from vecraft.services.api_gateway.journal_router.sessions import (
    decode_session,
    decode_token,
    encode_session,
)
from vecraft.services.api_gateway.query_routing import (
    AFFINITY,
    FAILOVER,
    ROUND_ROBIN,
    Node,
    Route,
    RoutingTable,
    ShardRouter,
)
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.rpc.v1 import meta_pb2
from vecraft_client import _session_token

pytestmark = pytest.mark.unit


def node(node_id: str, role: str, shards: list[int], *, state: str = "up") -> meta_pb2.NodeInfo:
    return meta_pb2.NodeInfo(node_id=node_id, role=role, address=f"{node_id}:1", shards=shards, state=state)


def table(query: dict[str, list[int]], storage: dict[str, list[int]] | None = None,
          placement: meta_pb2.PlacementMap | None = None) -> RoutingTable:
    infos = [node(n, "query", s) for n, s in query.items()]
    infos += [node(n, "storage", s) for n, s in (storage or {}).items()]
    return RoutingTable.build(infos, placement)


def ids(by_shard: Mapping[int, tuple[Node, ...]]) -> dict[int, list[str]]:
    return {s: [n.node_id for n in nodes] for s, nodes in by_shard.items()}


def calls(routes: list[Route]) -> dict[str, tuple[int, ...]]:
    return {r.node.node_id: r.shards for r in routes}


def test_table_holds_live_serving_nodes_per_shard_and_the_shard_count() -> None:
    # s2 says it is down: only s0 serves shard 0.
    infos = [node("q0", "query", [0, 1]), node("q1", "query", [1, 2]), node("s0", "storage", [0, 2]),
             node("s1", "storage", [1]), node("s2", "storage", [0], state="down"),
             node("j", "journal", []), meta_pb2.NodeInfo(node_id="q9", role="query", shards=[5])]
    t = RoutingTable.build(infos)
    assert ids(t.query) == {0: ["q0"], 1: ["q0", "q1"], 2: ["q1"]}
    assert ids(t.storage) == {0: ["s0"], 1: ["s1"], 2: ["s0"]}
    assert t.shard_count == 3  # no placement map: the highest shard served + 1 (q9 has no address)
    assert t.addresses() == {"q0:1", "q1:1", "s0:1", "s1:1"}
    # The placement map gives the shard count, and its down nodes are not routed to.
    placement = meta_pb2.PlacementMap(version=4, down_nodes=["q1"], shards=[
        meta_pb2.ShardAssignment(shard=s) for s in range(5)])
    t = RoutingTable.build(infos, placement)
    assert t.shard_count == 5 and t.placement_version == 4
    assert [n.node_id for n in t.query[1]] == ["q0"]
    # ... except as the fallback of a shard no other node serves.
    assert [str(n) for n in t.query[2]] == ["q1@q1:1 (fallback)"] and t.fallbacks() == {"q1"}
    assert 2 not in RoutingTable.build(infos, placement, forgotten={"q1"}).query
    health = t.describe()
    assert health["down_nodes"] == ["q1", "s2"]
    assert health["shards"]["0"] == {"query": ["q0@q0:1"], "storage": ["s0@s0:1"]}  # type: ignore[index]
    assert health["shards"]["2"]["query"] == ["q1@q1:1 (fallback)"]  # type: ignore[index]
    assert health["shards"]["4"] == {"query": [], "storage": []}  # type: ignore[index]
    assert RoutingTable.build([]).shard_count == 0


def test_one_call_per_node_covering_the_shards_with_as_few_nodes_as_possible() -> None:
    router = ShardRouter()
    # Two nodes each serving both shards: one call, naming both, alternating between the nodes.
    both = table({"q0": [0, 1], "q1": [0, 1]})
    picks = [router.plan(both, [0, 1]) for _ in range(4)]
    assert all(len(routes) == 1 and routes[0].shards == (0, 1) and not unserved for routes, unserved in picks)
    assert [routes[0].node.node_id for routes, _ in picks] == ["q0", "q1", "q0", "q1"]
    assert {routes[0].reason for routes, _ in picks} == {ROUND_ROBIN}
    # A node serving everything beats a split over smaller nodes.
    routes, _ = router.plan(table({"a": [0], "b": [1], "c": [0, 1, 2]}), range(3))
    assert calls(routes) == {"c": (0, 1, 2)}
    # Replica groups (as vecraft up --query-replicas 2 places them): one node of each group.
    groups = table({"q0": [0, 2], "q1": [1], "q2": [0, 2], "q3": [1]})
    for _ in range(4):
        routes, _ = router.plan(groups, range(3))
        assert sorted(calls(routes).values()) == [(0, 2), (1,)]
    spread = {r.node.node_id for _ in range(4) for r in router.plan(groups, range(3))[0]}
    assert spread == {"q0", "q1", "q2", "q3"}
    # Only the collection's shards are asked.
    assert calls(router.plan(groups, [1])[0]) in ({"q1": (1,)}, {"q3": (1,)})


def test_affinity_is_stable_spreads_sessions_and_fails_over_while_its_node_is_down() -> None:
    router = ShardRouter()
    both = table({"q0": [0, 1], "q1": [0, 1], "q2": [0, 1]})
    plans = [router.plan(both, [0, 1], "s:abc")[0] for _ in range(5)]
    assert all(p == plans[0] for p in plans) and len(plans[0]) == 1 and plans[0][0].reason == AFFINITY
    home = plans[0][0].node.node_id
    # The same choice in another gateway process (no shared state).
    assert ShardRouter().plan(both, [0, 1], "s:abc")[0] == plans[0]
    assert len({router.plan(both, [0, 1], f"s:{i}")[0][0].node.node_id for i in range(60)}) == 3
    router.mark_down(home)
    moved = router.plan(both, [0, 1], "s:abc")[0]
    assert len(moved) == 1 and moved[0].node.node_id != home and moved[0].reason == FAILOVER
    assert router.plan(both, [0, 1], "s:abc")[0] == moved  # stays put while the home is down
    router.mark_up(home)
    assert router.plan(both, [0, 1], "s:abc")[0] == plans[0]
    # A node leaving the table moves only the sessions it had.
    homes = {f"s:{i}": router.plan(both, [0, 1], f"s:{i}")[0][0].node.node_id for i in range(60)}
    without_q2 = table({"q0": [0, 1], "q1": [0, 1]})
    for key, was in homes.items():
        now = router.plan(without_q2, [0, 1], key)[0][0].node.node_id
        assert now == was or was == "q2"


def test_a_node_marked_down_is_skipped_unless_nothing_else_serves_its_shards() -> None:
    now = [0.0]
    router = ShardRouter(cooldown_s=3.0, clock=lambda: now[0])
    t = table({"q0": [0, 1], "q1": [0, 1], "q2": [2]})
    router.mark_down("q0")
    for _ in range(4):
        routes, unserved = router.plan(t, range(3))
        assert calls(routes) == {"q1": (0, 1), "q2": (2,)} and not unserved
    router.mark_down("q2")  # the only node of shard 2: still asked
    assert calls(router.plan(t, range(3))[0]) == {"q1": (0, 1), "q2": (2,)}
    now[0] = 3.5  # the cooldown is over
    assert "q0" in {router.plan(t, range(3))[0][0].node.node_id for _ in range(3)}
    # Nodes excluded by the search itself (they failed it) are never used again in it.
    routes, unserved = router.plan(t, [0, 1, 2], exclude={"q1", "q2"}, retry=True)
    assert calls(routes) == {"q0": (0, 1)} and unserved == [2] and routes[0].reason == FAILOVER


def test_a_shard_no_node_serves_is_reported() -> None:
    routes, unserved = ShardRouter().plan(table({"q0": [0]}), range(3))
    assert calls(routes) == {"q0": (0,)} and unserved == [1, 2]
    assert ShardRouter().plan(RoutingTable(), [0]) == ([], [0])


def test_storage_reads_start_with_the_replica_that_answered_last_and_skip_down_ones() -> None:
    router = ShardRouter()
    t = table({}, {"s0": [0], "s1": [0], "s2": [0, 1]})
    assert [n.node_id for n in router.storage_order(t, 0)] == ["s0", "s1", "s2"]
    router.answered(0, Node("s1", "s1:1"))
    assert [n.node_id for n in router.storage_order(t, 0)] == ["s1", "s2", "s0"]
    router.mark_down("s1")
    assert [n.node_id for n in router.storage_order(t, 0)] == ["s2", "s0", "s1"]
    assert router.storage_order(t, 5) == []


def test_session_identity_in_tokens_old_tokens_and_sdk_merge() -> None:
    token = encode_session({"data-0": 5}, "sid_1")
    assert decode_token(token) == ({"data-0": 5}, "sid_1")
    assert decode_session(token) == {"data-0": 5}
    assert decode_token(encode_session({"data-0": 5})) == ({"data-0": 5}, "")  # tokens without it
    with pytest.raises(InvalidRequest):
        decode_token(_session_token.encode({"data-0": 1}, "bad id!"))
    # The SDK keeps the identity through merges (the current token's first).
    merged = _session_token.merge(token, encode_session({"data-0": 9, "data-1": 2}, "other"))
    assert decode_token(merged) == ({"data-0": 9, "data-1": 2}, "sid_1")
    assert _session_token.decode(merged) == {"data-0": 9, "data-1": 2}
    assert _session_token.session_id(_session_token.merge("", token)) == "sid_1"
