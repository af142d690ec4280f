"""The fail-over manager's placement rules (vecraft/services/failover_manager/planner.py)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from vecraft.services.failover_manager.planner import bootstrap, reconcile
from vecraft.shared.rpc.v1 import meta_pb2

GRACE = 10_000


def node(node_id: str, role: str, shards: tuple[int, ...] = (),
         local: tuple[int, ...] = ()) -> meta_pb2.NodeInfo:
    return meta_pb2.NodeInfo(node_id=node_id, role=role, shards=shards, local_shards=local)


def live_of(*nodes: meta_pb2.NodeInfo) -> dict[str, meta_pb2.NodeInfo]:
    return {n.node_id: n for n in nodes}


def storage_of(m: meta_pb2.PlacementMap) -> dict[int, list[str]]:
    return {a.shard: list(a.storage_nodes) for a in m.shards}


def query_of(m: meta_pb2.PlacementMap) -> dict[int, list[str]]:
    return {a.shard: list(a.query_nodes) for a in m.shards}


def started() -> tuple[meta_pb2.PlacementMap, dict[str, meta_pb2.NodeInfo]]:
    """3 shards x 2 storage replicas over 3 storage nodes, one query node: as `vecraft up` starts it."""
    live = live_of(node("s0", "storage", (0, 1)), node("s1", "storage", (1, 2)),
                   node("s2", "storage", (0, 2)), node("q0", "query", (0, 1, 2)))
    plan = bootstrap(live, now_ms=1)
    assert plan.placement is not None
    plan.placement.version = 1
    return plan.placement, live


def test_bootstrap_adopts_what_the_nodes_declare() -> None:
    placement, _ = started()
    assert storage_of(placement) == {0: ["s0", "s2"], 1: ["s0", "s1"], 2: ["s1", "s2"]}
    assert query_of(placement) == {0: ["q0"], 1: ["q0"], 2: ["q0"]}
    assert (placement.storage_replicas, placement.query_replicas) == (2, 1)
    assert [a.action for a in placement.history] == ["bootstrap"]
    # Replica counts can be set instead of inferred.
    explicit = bootstrap(live_of(node("s0", "storage", (0,))), storage_replicas=3, query_replicas=2, now_ms=1)
    assert explicit.placement is not None
    assert (explicit.placement.storage_replicas, explicit.placement.query_replicas) == (3, 2)


def test_a_healthy_cluster_needs_nothing() -> None:
    placement, live = started()
    assert reconcile(placement, live, {}, grace_ms=GRACE, now_ms=2).placement is None


def test_a_down_node_is_marked_at_once_and_replaced_only_after_the_grace_period() -> None:
    placement, live = started()
    del live["s2"]
    marked = reconcile(placement, live, {"s2": 1000}, grace_ms=GRACE, now_ms=2000)
    assert marked.placement is not None
    assert list(marked.placement.down_nodes) == ["s2"]
    assert [a.action for a in marked.actions] == ["mark-down"]
    assert storage_of(marked.placement) == storage_of(placement)  # nothing moves yet

    marked.placement.version = 2
    # Within the grace period: nothing more to do.
    assert reconcile(marked.placement, live, {"s2": 1000}, grace_ms=GRACE, now_ms=10_999).placement is None
    moved = reconcile(marked.placement, live, {"s2": 1000}, grace_ms=GRACE, now_ms=11_000)
    assert moved.placement is not None
    # Shard 0 (s0, s2) gets s1, shard 2 (s1, s2) gets s0: replicas stay on different nodes.
    assert storage_of(moved.placement) == {0: ["s0", "s1"], 1: ["s0", "s1"], 2: ["s1", "s0"]}
    kinds = sorted((a.action, a.node_id, tuple(a.shards)) for a in moved.actions)
    assert kinds == [("re-place", "s0", (2,)), ("re-place", "s1", (0,)),
                     ("remove", "s2", (0,)), ("remove", "s2", (2,))]


def test_a_node_back_within_the_grace_period_keeps_its_shards() -> None:
    placement, live = started()
    gone = dict(live)
    del gone["s2"]
    marked = reconcile(placement, gone, {"s2": 0}, grace_ms=GRACE, now_ms=1)
    assert marked.placement is not None
    back = reconcile(marked.placement, live, {}, grace_ms=GRACE, now_ms=5000)
    assert back.placement is not None
    assert [a.action for a in back.actions] == ["mark-up"]
    assert list(back.placement.down_nodes) == []
    assert storage_of(back.placement) == storage_of(placement)


def test_without_a_spare_node_the_down_node_stays_listed_and_a_joining_node_restores_the_count() -> None:
    live = live_of(node("s0", "storage", (0,)), node("s1", "storage", (0,)), node("q0", "query", (0,)))
    first = bootstrap(live, now_ms=0).placement
    assert first is not None
    del live["s1"]
    step = reconcile(first, live, {"s1": 0}, grace_ms=GRACE, now_ms=GRACE + 1)
    assert step.placement is not None and storage_of(step.placement) == {0: ["s0", "s1"]}
    # A new node joins (declaring nothing): it takes the down node's place; s1 prefers its local data.
    live["s9"] = node("s9", "storage")
    joined = reconcile(step.placement, live, {"s1": 0}, grace_ms=GRACE, now_ms=GRACE + 2)
    assert joined.placement is not None and storage_of(joined.placement) == {0: ["s0", "s9"]}


def test_a_candidate_with_the_shard_on_disk_is_preferred_then_the_least_loaded() -> None:
    live = live_of(node("s0", "storage", (0,)), node("s1", "storage", (1,)), node("q0", "query", (0, 1)))
    first = bootstrap(live, storage_replicas=2, now_ms=0).placement
    assert first is not None
    # Shard 0 needs a second replica: s1 has none of its files, s8 is empty, s7 has shard 0 on disk.
    live["s7"] = node("s7", "storage", local=(0,))
    live["s8"] = node("s8", "storage")
    plan = reconcile(first, live, {}, grace_ms=GRACE, now_ms=1)
    assert plan.placement is not None
    got = storage_of(plan.placement)
    assert got[0] == ["s0", "s7"]
    assert got[1] == ["s1", "s8"]  # s7 already took one: s8 is less loaded
    assert {a.action for a in plan.actions} == {"restore"}


def test_query_shards_of_a_dead_query_node_move_to_a_live_one() -> None:
    live = live_of(node("s0", "storage", (0, 1)), node("q0", "query", (0,)), node("q1", "query", (1,)))
    first = bootstrap(live, now_ms=0).placement
    assert first is not None
    del live["q1"]
    plan = reconcile(first, live, {"q1": 0}, grace_ms=GRACE, now_ms=GRACE)
    assert plan.placement is not None
    assert query_of(plan.placement) == {0: ["q0"], 1: ["q0"]}


@settings(max_examples=150, deadline=None)
@given(nodes=st.integers(1, 5), shards=st.integers(1, 6), replicas=st.integers(1, 3),
       alive=st.lists(st.booleans(), min_size=5, max_size=5))
def test_repeated_steps_reach_a_placement_with_distinct_live_replicas(nodes: int, shards: int, replicas: int,
                                                                      alive: list[bool]) -> None:
    everyone = {f"s{i}": node(f"s{i}", "storage",
                              tuple(s for s in range(shards) if (s + i) % nodes < replicas))
                for i in range(nodes)}
    everyone["q0"] = node("q0", "query", tuple(range(shards)))
    first = bootstrap(everyone, storage_replicas=replicas, now_ms=0).placement
    assert first is not None
    live = {k: v for k, v in everyone.items() if k == "q0" or alive[int(k[1:])]}
    current, now = first, GRACE
    for _ in range(10):
        plan = reconcile(current, live, {n: 0 for n in everyone if n not in live}, grace_ms=GRACE, now_ms=now)
        if plan.placement is None:
            break
        current = plan.placement
    else:
        raise AssertionError("no fixpoint after 10 steps")
    storage_live = sum(1 for k in live if k.startswith("s"))
    for assignment in current.shards:
        held = list(assignment.storage_nodes)
        assert len(held) == len(set(held)), "a node holds two replicas of one shard"
        assert all(everyone[n].role == "storage" for n in held)
        assert sum(n in live for n in held) >= min(replicas, storage_live)
    listed = {n for a in current.shards for n in (*a.storage_nodes, *a.query_nodes)}
    assert sorted(current.down_nodes) == sorted(listed - set(live))
