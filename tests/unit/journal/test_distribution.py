"""Which replicas a write waits for, and back-pressure entering and leaving."""

from __future__ import annotations

import asyncio

import pytest

from vecraft.services.journal_service.distribution import (
    AckTracker,
    BackPressure,
    Lag,
    ReplicaRegistry,
    ReplicaState,
    Thresholds,
    ack_groups,
)
from vecraft.shared.common.errors import RateLimited
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.unit


def replica(rid: str, shards: tuple[int, ...], lagging: bool = False) -> ReplicaState:
    return ReplicaState(rid, "data-0", "replica", frozenset(shards), lagging=lagging)


def test_ack_groups_per_mode() -> None:
    serving = [replica("a0", (0,)), replica("b0", (0,)), replica("a1", (1,)), replica("slow", (1,), True)]
    assert ack_groups(journal_pb2.ACK_JOURNAL, (0,), serving) == []
    assert sorted(map(sorted, ack_groups(journal_pb2.ACK_ALL, (0, 1), serving))) == [["a0"], ["a1"], ["b0"]]
    assert sorted(map(sorted, ack_groups(journal_pb2.ACK_ONE, (0, 1), serving))) == [["a0", "b0"], ["a1"]]
    # An entry for every shard with ack=one needs one replica of each shard some replica serves.
    assert sorted(map(sorted, ack_groups(journal_pb2.ACK_ONE, (), serving))) == [["a0", "b0"], ["a1"]]
    assert ack_groups(journal_pb2.ACK_ALL, (1,), [replica("slow", (1,), True)]) == []


async def test_waiter_released_by_reports_and_timeout_marks_lagging() -> None:
    reg = ReplicaRegistry(liveness_ms=10_000)
    acks = AckTracker(reg)
    for rid, shard in (("a", 0), ("b", 0), ("c", 1)):
        reg.subscribed("data-0", rid, shards=[shard], role="replica", from_offset=1)
    reg.subscribed("data-0", "cache", shards=[0], role="cache", from_offset=1)
    wait = asyncio.create_task(acks.wait("data-0", 1, journal_pb2.ACK_ALL, (0,), timeout=5))
    await asyncio.sleep(0.01)
    for rid in ("a", "b"):
        reg.report("data-0", rid, 1, head=1)
        acks.applied("data-0", rid, 1)
    out = await asyncio.wait_for(wait, 1)
    assert (out.expected, out.acked, out.lagging, out.timed_out) == (["a", "b"], ["a", "b"], [], False)
    slow = await acks.wait("data-0", 2, journal_pb2.ACK_ALL, (0,), timeout=0.05)
    assert slow.timed_out and slow.lagging == ["a", "b"]
    assert reg.get("data-0", "a").lagging
    # Lagging replicas no longer hold writes up, and are listed as lagging.
    quick = await acks.wait("data-0", 3, journal_pb2.ACK_ALL, (0,), timeout=5)
    assert not quick.timed_out and quick.lagging == ["a", "b"]
    reg.report("data-0", "a", 3, head=3)
    assert not reg.get("data-0", "a").lagging


def test_back_pressure_enters_past_a_threshold_and_leaves_below_half() -> None:
    bp = BackPressure(Thresholds(lag_ms=1000, lag_ops=100, lag_bytes=1 << 20))
    r = replica("r", (0,))
    r.lag = Lag(ops=101)
    assert bp.evaluate("data-0", [r])
    with pytest.raises(RateLimited) as info:
        bp.check("data-0")
    assert info.value.retry_after_ms and "101 entries behind" in info.value.message
    bp.check("txn")  # other partitions are unaffected
    r.lag = Lag(ops=60)
    assert bp.evaluate("data-0", [r])  # still above half of the limit
    r.lag = Lag(ops=40)
    assert not bp.evaluate("data-0", [r])
    bp.check("data-0")
    r.lag = Lag(ms=1500)
    assert bp.evaluate("data-0", [r]) and "ms behind" in bp.active()["data-0"]


async def test_a_replica_that_leaves_is_forgotten_at_once_and_releases_the_writes_it_held() -> None:
    # Liveness long enough that only leaving (not aging out) can end the wait within the test.
    reg = ReplicaRegistry(liveness_ms=600_000)
    acks = AckTracker(reg)
    for rid, shard in (("a", 0), ("b", 0), ("c", 1)):
        reg.subscribed("data-0", rid, shards=[shard], role="replica", from_offset=1)
    # An ack=all write of shard 0 waits for a and b; a applies it, b never will.
    wait_all = asyncio.create_task(acks.wait("data-0", 1, journal_pb2.ACK_ALL, (0,), timeout=600))
    # An ack=one write of shard 1 waits for c, the only replica serving it.
    wait_one = asyncio.create_task(acks.wait("data-0", 1, journal_pb2.ACK_ONE, (1,), timeout=600))
    await asyncio.sleep(0)  # both waiters registered
    reg.report("data-0", "a", 1, head=1)
    acks.applied("data-0", "a", 1)
    assert not wait_all.done()

    # b leaves (its stream still open): the write stops waiting for it and no longer expects it.
    assert reg.leave("data-0", "b")
    acks.left("data-0", "b")
    out = await asyncio.wait_for(wait_all, 1)
    assert (out.expected, out.acked, out.lagging, out.timed_out) == (["a"], ["a"], [], False)
    # c leaves: no replica serves shard 1 any more, so its ack=one write is answered as durable only.
    assert reg.leave("data-0", "c")
    acks.left("data-0", "c")
    one = await asyncio.wait_for(wait_one, 1)
    assert (one.expected, one.acked, one.lagging, one.timed_out) == ([], [], [], False)

    # Forgotten: not serving, not a consumer, not expected by the next write.
    assert [s.replica_id for s in reg.serving("data-0", (0, 1))] == ["a"]
    assert sorted(s.replica_id for s in reg.consumers("data-0")) == ["a"]
    nxt = await asyncio.wait_for(acks.wait("data-0", 1, journal_pb2.ACK_ALL, (0,), timeout=600), 1)
    assert nxt.expected == ["a"] and not nxt.timed_out
    # A report sent before it left (arriving late) does not bring it back; leaving twice is harmless.
    assert reg.report("data-0", "b", 1, head=1) is None
    assert reg.get("data-0", "b") is None
    assert not reg.leave("data-0", "b")
    # Subscribing again does, at once, with the shards it names now.
    reg.subscribed("data-0", "b", shards=[0], role="replica", from_offset=2)
    assert sorted(s.replica_id for s in reg.serving("data-0", (0,))) == ["a", "b"]
    assert reg.report("data-0", "b", 1, head=1) is not None


async def test_a_replica_that_left_after_applying_is_neither_expected_nor_lagging() -> None:
    reg = ReplicaRegistry(liveness_ms=600_000)
    acks = AckTracker(reg)
    for rid in ("a", "b"):
        reg.subscribed("data-0", rid, shards=[0], role="replica", from_offset=1)
    wait = asyncio.create_task(acks.wait("data-0", 1, journal_pb2.ACK_ALL, (0,), timeout=600))
    await asyncio.sleep(0)
    for rid in ("a", "b"):
        reg.report("data-0", rid, 1, head=1)
        acks.applied("data-0", rid, 1)
    # Released, but b leaves before the write's answer is built: it must not be named lagging.
    assert reg.leave("data-0", "b")
    acks.left("data-0", "b")
    out = await asyncio.wait_for(wait, 1)
    assert (out.expected, out.acked, out.lagging) == (["a"], ["a"], [])

