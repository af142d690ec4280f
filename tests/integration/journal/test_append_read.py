"""Append / PullWAL / GetOffset / LookupRequest over gRPC against a real journal process."""

from __future__ import annotations

import asyncio
import os
import uuid
from itertools import pairwise

import grpc
import pytest

from tests.integration.journal.waits import wait_subscribed
from tests.support.procs import ServiceProcess
from vecraft.clients.journal import JournalClient
from vecraft.shared.common.errors import InvalidRequest, NotFound
from vecraft.shared.rpc.v1 import journal_pb2, journal_pb2_grpc

pytestmark = pytest.mark.integration

JOURNAL_ARGS = ["--max-entry-bytes", "100000"]


def rid() -> str:
    return uuid.uuid4().hex


async def test_concurrent_writers_get_gapless_offsets_and_readable_bytes(journal: ServiceProcess) -> None:
    clients = [JournalClient(journal.grpc_address) for _ in range(4)]
    start = {p: (await clients[0].get_offset(p))[0] for p in ("data-1", "system")}
    sent: dict[str, tuple[str, bytes, tuple[int, ...]]] = {}

    async def writer(client: JournalClient, w: int) -> list[journal_pb2.AppendResponse]:
        out = []
        for i in range(12):
            partition = "data-1" if (w + i) % 3 else "system"
            payload = os.urandom(1 + (w * 37 + i * 101) % 3000)
            shards = (w % 4,)
            key = rid()
            sent[key] = (partition, payload, shards)
            out.append(await client.append(partition, payload, request_id=key, shards=shards,
                                           ack=journal_pb2.ACK_JOURNAL))
        return out

    responses = await asyncio.gather(*[writer(clients[w % 4], w) for w in range(32)])
    acked = [r for rs in responses for r in rs]
    for partition in ("data-1", "system"):
        entries = await clients[0].pull(partition, start[partition] + 1)
        mine = [r for r in acked if r.partition == partition]
        first = start[partition] + 1
        assert [e.offset for e in entries] == list(range(first, first + len(mine)))
        assert all(a.hlc < b.hlc for a, b in pairwise(entries))
        by_offset = {r.offset: r for r in mine}
        for e in entries:
            assert by_offset[e.offset].hlc == e.hlc
            assert sent[e.request_id] == (partition, e.payload, tuple(e.shards))
    for c in clients:
        await c.close()


async def test_retry_after_lost_reply_returns_the_original_position(journal: ServiceProcess) -> None:
    client = JournalClient(journal.grpc_address)
    # A replica that never reports makes ack=all wait; the caller gives up first: the reply is lost.
    sub = client.subscribe("data-0", (await client.get_offset("data-0"))[0] + 1, replica_id="mute-replica")
    await wait_subscribed(client, "data-0", "mute-replica")
    key = rid()
    async with grpc.aio.insecure_channel(journal.grpc_address) as channel:
        stub = journal_pb2_grpc.JournalServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Append(journal_pb2.AppendRequest(partition="data-0", request_id=key, payload=b"once",
                                                        ack=journal_pb2.ACK_ALL, ack_timeout_ms=1500),
                              timeout=0.3)
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await sub.close()
    head = await client.get_offset("data-0")
    retry = await client.append("data-0", b"once", request_id=key, ack=journal_pb2.ACK_JOURNAL)
    assert retry.duplicate and (retry.offset, retry.hlc) == head
    assert await client.get_offset("data-0") == head
    found = await client.lookup_request(key)
    assert (found.found, found.partition, found.offset, found.hlc) == (True, "data-0", *head)
    assert [e.request_id for e in await client.pull("data-0", head[0])] == [key]
    assert not (await client.lookup_request("never-sent")).found
    await client.close()


async def test_bad_input_gets_clear_errors_and_leaves_the_journal_unharmed(journal: ServiceProcess) -> None:
    client = JournalClient(journal.grpc_address)
    await client.append("data-0", b"before", request_id=rid(), ack=journal_pb2.ACK_JOURNAL)
    heads = await client.get_offsets()
    with pytest.raises(NotFound, match="known partitions: data-0, data-1, system"):
        await client.append("data-7", b"x", request_id=rid())
    with pytest.raises(NotFound):
        await client.pull("nope", 1)
    with pytest.raises(InvalidRequest, match="empty entry"):
        await client.append("data-0", b"", request_id=rid())
    with pytest.raises(InvalidRequest, match="entry of 100001 bytes exceeds max_entry_bytes 100000"):
        await client.append("data-0", b"x" * 100_001, request_id=rid())
    head = heads["data-0"][0]
    with pytest.raises(InvalidRequest, match="offsets start at 1"):
        await client.pull("data-0", 0)
    with pytest.raises(InvalidRequest, match=rf"valid range is 1..{head + 1}"):
        await client.pull("data-0", head + 2)
    with pytest.raises(InvalidRequest, match="to_offset 1 is below from_offset 2"):
        await client.pull("data-0", 2, 1)
    with pytest.raises(InvalidRequest, match="past the head"):
        await client.report_applied("data-0", "r", head + 5)
    with pytest.raises(InvalidRequest, match="role"):
        async for _ in client.subscribe("data-0", 1, replica_id="x", role="boss"):
            pass
    with pytest.raises(InvalidRequest, match="valid range"):
        async for _ in client.subscribe("data-0", head + 10, replica_id="x"):
            pass
    async with grpc.aio.insecure_channel(journal.grpc_address) as channel:
        stub = journal_pb2_grpc.JournalServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Append(journal_pb2.AppendRequest(partition="data-0", request_id=rid(), payload=b"x",
                                                        ack=9))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Nothing was written, and the journal still serves reads and writes.
    assert await client.get_offsets() == heads
    assert (await client.pull("data-0", head))[0].payload == b"before"
    after = await client.append("data-0", b"after", request_id=rid(), ack=journal_pb2.ACK_JOURNAL)
    assert after.offset == head + 1
    await client.close()


async def test_pull_pages_large_ranges_and_respects_to_offset(journal: ServiceProcess) -> None:
    client = JournalClient(journal.grpc_address)
    base = (await client.get_offset("data-1"))[0]
    payload = b"p" * 60_000
    await asyncio.gather(*[client.append("data-1", payload, request_id=rid(), ack=journal_pb2.ACK_JOURNAL)
                           for _ in range(400)])  # 24 MB: more than one 16 MiB page
    page = await client.pull_page("data-1", base + 1)
    assert 0 < len(page.entries) < 400
    everything = await client.pull("data-1", base + 1)
    assert [e.offset for e in everything] == list(range(base + 1, base + 401))
    middle = await client.pull("data-1", base + 10, base + 20)
    assert [e.offset for e in middle] == list(range(base + 10, base + 21))
    await client.close()


async def test_concurrent_appends_in_one_batch_fail_or_succeed_each_on_their_own(
        journal: ServiceProcess) -> None:
    client = JournalClient(journal.grpc_address)
    head = (await client.get_offset("data-1"))[0]
    cases = [("data-1", b"ok"), ("data-1", b""), ("nowhere", b"x"), ("data-1", b"ok2")] * 10
    results = await asyncio.gather(*[client.append(p, payload, request_id=rid(), ack=journal_pb2.ACK_JOURNAL)
                                     for p, payload in cases], return_exceptions=True)
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["AppendResponse", "InvalidRequest", "NotFound", "AppendResponse"] * 10
    offsets = sorted(r.offset for r in results if isinstance(r, journal_pb2.AppendResponse))
    assert offsets == list(range(head + 1, head + 21))
    await client.close()
