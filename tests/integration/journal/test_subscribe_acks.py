"""Subscribe streams, replica acknowledgements, lag tracking and the storage-lag knob."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.integration.journal.waits import wait_not_live, wait_subscribed, wait_until
from tests.support.procs import ServiceProcess
from vecraft.clients.journal import JournalClient, Subscription
from vecraft.shared.hlc import physical_ms, wall_clock_ms
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.integration

# Replicas here lag on purpose; back-pressure has its own test module.
JOURNAL_ARGS = ["--replica-liveness-ms", "300", "--write-ack-timeout-ms", "3000",
                "--backpressure-lag-ms", "600000", "--backpressure-lag-ops", "1000000"]


def rid() -> str:
    return uuid.uuid4().hex


async def apply_loop(client: JournalClient, sub: Subscription, replica: str, seen: list[int]) -> None:
    """A well-behaved replica: applies every entry and reports it."""
    async for entry in sub:
        seen.append(entry.offset)
        await client.report_applied(entry.partition, replica, entry.offset)


async def test_ack_all_waits_for_live_replicas_and_marks_a_silent_one_lagging(
        journal: ServiceProcess) -> None:
    client = JournalClient(journal.grpc_address)
    start = (await client.get_offset("data-1"))[0] + 1
    good = client.subscribe("data-1", start, replica_id="s0-r0", shards=[0])
    other_shard = client.subscribe("data-1", start, replica_id="s1-r0", shards=[1])
    cache = client.subscribe("data-1", start, replica_id="qp-0", shards=[0], role="cache")
    seen: list[int] = []
    applier = asyncio.create_task(apply_loop(client, good, "s0-r0", seen))
    await wait_subscribed(client, "data-1", "s0-r0", "s1-r0", "qp-0")

    resp = await client.append("data-1", b"w1", request_id=rid(), shards=[0])
    # Durable and applied by the replica of shard 0; the shard-1 replica and the cache are not waited for.
    assert (resp.replicas_expected, resp.replicas_acked, list(resp.lagging_replicas)) == (1, 1, [])
    assert resp.offset in seen

    silent = client.subscribe("data-1", start, replica_id="s0-r1", shards=[0])  # never reports
    await wait_subscribed(client, "data-1", "s0-r1")
    t0 = time.monotonic()
    slow = await client.append("data-1", b"w2", request_id=rid(), shards=[0], ack_timeout_ms=400)
    assert time.monotonic() - t0 >= 0.35
    assert (slow.replicas_expected, slow.replicas_acked, list(slow.lagging_replicas)) == (2, 1, ["s0-r1"])
    # Marked lagging: later writes no longer wait for it, but still name it. Waiting for it would
    # take the whole hour of ack timeout (it never reports); the bound only detects that hang.
    quick = await asyncio.wait_for(client.append("data-1", b"w3", request_id=rid(), shards=[0],
                                                 ack_timeout_ms=3_600_000), 60)
    assert list(quick.lagging_replicas) == ["s0-r1"] and quick.replicas_acked == 1
    stats = {(r.partition, r.replica_id): r for r in (await client.stats()).replicas}
    assert stats[("data-1", "s0-r1")].lagging and stats[("data-1", "s0-r1")].lag_ops >= 3
    assert stats[("data-1", "s0-r0")].lag_ops == 0 and stats[("data-1", "qp-0")].role == "cache"
    # An entry for all shards (DDL) waits for every live replica, of any shard: s1-r0 never reports.
    ddl = await client.append("data-1", b"ddl", request_id=rid(), shards=[], ack_timeout_ms=300)
    assert "s1-r0" in ddl.lagging_replicas and ddl.replicas_expected == 3
    # ack=one for shard 0 is satisfied by the good replica alone.
    one = await client.append("data-1", b"one", request_id=rid(), shards=[0], ack=journal_pb2.ACK_ONE)
    assert one.replicas_acked >= 1
    # A closed stream stops counting after replica_liveness_ms.
    await silent.close()
    await other_shard.close()
    await wait_not_live(client, "data-1", "s0-r1", "s1-r0")
    done = await client.append("data-1", b"w4", request_id=rid(), shards=[0])
    assert (done.replicas_expected, done.replicas_acked) == (1, 1)
    for s in (good, cache):
        await s.close()
    applier.cancel()
    await client.close()


async def test_lookup_reports_applied_and_pending_replicas(journal: ServiceProcess) -> None:
    client = JournalClient(journal.grpc_address)
    key = rid()
    resp = await client.append("system", b"ddl", request_id=key, ack=journal_pb2.ACK_JOURNAL)
    fast = client.subscribe("system", resp.offset, replica_id="sys-fast")
    slow = client.subscribe("system", resp.offset, replica_id="sys-slow")
    await wait_subscribed(client, "system", "sys-fast", "sys-slow")
    await client.report_applied("system", "sys-fast", resp.offset)
    found = await client.lookup_request(key)
    assert list(found.replicas_applied) == ["sys-fast"] and list(found.replicas_pending) == ["sys-slow"]
    await fast.close()
    await slow.close()
    await client.close()


async def test_subscription_resumes_across_a_journal_restart_without_gaps_or_repeats(
        journal: ServiceProcess) -> None:
    client = JournalClient(journal.grpc_address)
    start = (await client.get_offset("data-0"))[0] + 1
    sub = client.subscribe("data-0", start, replica_id="resume-r0", role="cache")
    got: list[int] = []

    async def consume() -> None:
        async for entry in sub:
            got.append(entry.offset)

    consumer = asyncio.create_task(consume())
    for _ in range(30):
        await client.append("data-0", b"a", request_id=rid(), ack=journal_pb2.ACK_JOURNAL)
    await asyncio.to_thread(journal.restart)  # SIGTERM + start on the same ports and data
    for _ in range(30):
        await client.append("data-0", b"b", request_id=rid(), ack=journal_pb2.ACK_JOURNAL)
    head = (await client.get_offset("data-0"))[0]

    async def caught_up() -> bool:
        return bool(got) and got[-1] >= head

    await wait_until(caught_up, 20, what="the subscription caught up")
    assert got == list(range(start, head + 1))
    # A new subscription from the middle (a replica restarting from its applied offset) misses nothing.
    again = client.subscribe("data-0", start + 10, replica_id="resume-r1", role="cache")
    tail = []
    async for entry in again:
        tail.append(entry.offset)
        if entry.offset == head:
            break
    assert tail == list(range(start + 10, head + 1))
    await again.close()
    await sub.close()
    consumer.cancel()
    await client.close()


async def test_delay_holds_entries_back_but_pull_and_skip_to_do_not_wait(journal: ServiceProcess) -> None:
    client = JournalClient(journal.grpc_address)
    start = (await client.get_offset("data-1"))[0] + 1
    sub = client.subscribe("data-1", start, replica_id="lagged", role="cache", delay_ms=800)
    first = await client.append("data-1", b"one", request_id=rid(), ack=journal_pb2.ACK_JOURNAL)
    second = await client.append("data-1", b"two", request_id=rid(), ack=journal_pb2.ACK_JOURNAL)
    pulled = await client.pull("data-1", first.offset)  # never delayed
    assert [e.payload for e in pulled] == [b"one", b"two"]
    # Both entries arrived (the head an event carries is only ever sent with or after its entries)
    # and are held back by the delay, not yielded.
    async def both_held() -> bool:
        return sub.head_offset == second.offset
    await wait_until(both_held, what="both entries received")
    assert sub.oldest_pending_hlc() == first.hlc
    sub.skip_to(first.offset, first.hlc)  # applied by pulling: entry one is never yielded
    assert sub.oldest_pending_hlc() == second.hlc
    entry = await anext(aiter(sub))
    assert entry.offset == second.offset
    assert wall_clock_ms() >= physical_ms(second.hlc) + 800
    assert sub.oldest_pending_hlc() == 0
    await sub.close()
    await client.close()
