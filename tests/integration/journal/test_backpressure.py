"""A slow storage replica drives the journal into back-pressure, and out again once it catches up."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.integration.journal.waits import wait_subscribed
from tests.support.procs import ServiceProcess
from vecraft.clients.journal import JournalClient
from vecraft.shared.common.errors import RateLimited
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.integration

JOURNAL_ARGS = ["--backpressure-lag-ops", "40", "--backpressure-lag-ms", "600000",
                "--backpressure-lag-bytes", "100000000"]


async def test_slow_replica_into_back_pressure_and_out(journal: ServiceProcess) -> None:
    client = JournalClient(journal.grpc_address)
    start = (await client.get_offset("data-0"))[0] + 1
    sub = client.subscribe("data-0", start, replica_id="slow-r0", shards=[0])
    applied = start - 1
    catching_up = asyncio.Event()

    async def slow_replica() -> None:
        nonlocal applied
        async for entry in sub:
            # Applies an entry per 100 ms until told to catch up.
            await asyncio.sleep(0 if catching_up.is_set() else 0.1)
            applied = entry.offset
            await client.report_applied("data-0", "slow-r0", applied)

    replica = asyncio.create_task(slow_replica())
    await wait_subscribed(client, "data-0", "slow-r0")
    written = []
    refused: RateLimited | None = None
    deadline = time.monotonic() + 30
    while refused is None and time.monotonic() < deadline:
        key = uuid.uuid4().hex
        try:
            resp = await client.append("data-0", b"v" * 100, request_id=key, shards=[0],
                                       ack=journal_pb2.ACK_JOURNAL)
            written.append((key, resp.offset))
        except RateLimited as err:
            refused = err
    assert refused is not None, "back-pressure never engaged"
    assert refused.retry_after_ms and refused.retry_after_ms > 0
    assert "slow-r0" in refused.message and "entries behind" in refused.message
    stats = await client.stats()
    assert stats.back_pressure and "slow-r0" in stats.back_pressure_reason
    # Reads keep working, and a retry of an entry already written still gets its position.
    head = (await client.get_offset("data-0"))[0]
    assert len(await client.pull("data-0", start)) == head - start + 1
    key, offset = written[-1]
    again = await client.append("data-0", b"v" * 100, request_id=key, shards=[0], ack=journal_pb2.ACK_JOURNAL)
    assert again.duplicate and again.offset == offset
    # Nothing acknowledged is lost while refusing.
    assert head == written[-1][1]

    catching_up.set()
    deadline = time.monotonic() + 30
    while True:
        try:
            resp = await client.append("data-0", b"after", request_id=uuid.uuid4().hex, shards=[0],
                                       ack=journal_pb2.ACK_JOURNAL)
            break
        except RateLimited:
            assert time.monotonic() < deadline, "back-pressure never released"
            await asyncio.sleep(0.1)
    assert resp.offset == head + 1
    assert applied >= head - 20  # released only after the replica caught up (below half of 40)
    assert not (await client.stats()).back_pressure
    await sub.close()
    replica.cancel()
    await client.close()


async def test_a_disconnected_replica_does_not_hold_writes_back(journal: ServiceProcess) -> None:
    """A replica whose stream closed (crashed node) is still "live" for its liveness window, but
    it is a failure, not a slow consumer: its growing lag must not refuse the partition's writes."""
    client = JournalClient(journal.grpc_address)
    start = (await client.get_offset("data-1"))[0] + 1
    sub = client.subscribe("data-1", start, replica_id="gone-r0", shards=[0])
    first = await client.append("data-1", b"x", request_id=uuid.uuid4().hex, shards=[0],
                                ack=journal_pb2.ACK_JOURNAL)
    async for entry in sub:
        await client.report_applied("data-1", "gone-r0", entry.offset)
        if entry.offset >= first.offset:
            break
    await sub.close()  # the node is gone; its last report is fresh, so it stays live for a while
    for _ in range(120):  # three times the 40-entry threshold of this module's journal
        await client.append("data-1", b"v" * 100, request_id=uuid.uuid4().hex, shards=[0],
                            ack=journal_pb2.ACK_JOURNAL)
    stats = await client.stats()
    assert not stats.back_pressure, stats.back_pressure_reason
    gone = [r for r in stats.replicas if r.replica_id == "gone-r0"]
    assert gone and gone[0].lag_ops >= 120  # the lag is real; it just does not block writers
    await client.close()
