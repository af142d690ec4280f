"""A consumer that leaves on purpose (Leave) is forgotten by the journal at once.

The journal here keeps a silent replica live for ten minutes after its stream closes, so nothing
below can pass by a replica aging out: only leaving ends the waits.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from tests.integration.journal.test_subscribe_acks import apply_loop
from tests.integration.journal.waits import consumers, wait_subscribed, wait_until
from tests.support.procs import ServiceProcess
from vecraft.clients.journal import JournalClient
from vecraft.shared.common.errors import InvalidRequest, NotFound
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.integration

JOURNAL_ARGS = ["--replica-liveness-ms", "600000", "--backpressure-lag-ms", "600000",
                "--backpressure-lag-ops", "1000000"]
#: An ack timeout no write may reach here (the wait_for bound around it only detects a hang).
NEVER_MS = 3_600_000
HANG_S = 60.0


async def test_a_replica_that_leaves_stops_holding_writes_and_counting_at_once(
        journal: ServiceProcess) -> None:
    client = JournalClient(journal.grpc_address)
    start = (await client.get_offset("data-0"))[0] + 1
    good = client.subscribe("data-0", start, replica_id="s0-a", shards=[0])
    silent = client.subscribe("data-0", start, replica_id="s0-b", shards=[0])  # never reports
    applier = asyncio.create_task(apply_loop(client, good, "s0-a", []))
    try:
        await wait_subscribed(client, "data-0", "s0-a", "s0-b")

        # A write waits for the silent replica (its stream is open: it is live) ...
        rid = uuid.uuid4().hex
        write = asyncio.create_task(client.append("data-0", b"w1", request_id=rid, shards=[0],
                                                  ack=journal_pb2.ACK_ALL, ack_timeout_ms=NEVER_MS))

        async def held_by_silent() -> bool:
            found = await client.lookup_request(rid)
            return found.found and list(found.replicas_pending) == ["s0-b"]

        await wait_until(held_by_silent, HANG_S, "the write waiting for s0-b")
        # ... until it leaves: then it is answered, without it.
        assert await client.leave("data-0", "s0-b")
        resp = await asyncio.wait_for(write, HANG_S)
        assert (resp.replicas_expected, resp.replicas_acked, list(resp.lagging_replicas)) == (1, 1, [])
        assert "s0-b" not in await consumers(client, "data-0")
        # Its stream is still open: it does not count for the next write either.
        nxt = await asyncio.wait_for(client.append("data-0", b"w2", request_id=uuid.uuid4().hex, shards=[0],
                                                   ack_timeout_ms=NEVER_MS), HANG_S)
        assert (nxt.replicas_expected, nxt.replicas_acked) == (1, 1)
        assert not await client.leave("data-0", "s0-b")  # forgotten already

        # A replica whose stream closed would count for the whole liveness window; leaving ends it now.
        applier.cancel()
        await good.close()
        assert (await consumers(client, "data-0")).get("s0-a") is True
        assert await client.leave("data-0", "s0-a")
        done = await asyncio.wait_for(client.append("data-0", b"w3", request_id=uuid.uuid4().hex, shards=[0],
                                                    ack_timeout_ms=NEVER_MS), HANG_S)
        assert (done.replicas_expected, list(done.lagging_replicas)) == (0, [])

        # Subscribing again joins again.
        back = client.subscribe("data-0", done.offset + 1, replica_id="s0-a", shards=[0])
        try:
            await wait_subscribed(client, "data-0", "s0-a")
        finally:
            await back.close()
    finally:
        applier.cancel()
        await silent.close()
        await good.close()
        await client.close()


async def test_leave_names_the_partition_and_the_replica(journal: ServiceProcess) -> None:
    client = JournalClient(journal.grpc_address)
    try:
        assert not await client.leave("data-1", "never-seen")
        with pytest.raises(InvalidRequest, match="replica_id is required"):
            await client.leave("data-1", "")
        with pytest.raises(NotFound, match="no-such-partition"):
            await client.leave("no-such-partition", "r")
    finally:
        await client.close()
