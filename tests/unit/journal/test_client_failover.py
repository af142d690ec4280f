"""The journal client against several journal instances (in-process gRPC fakes): it finds the owner.

Each fake owns some partitions and refuses the others the way the journal does
(``not_owner``, naming the owner in ``vecraft-journal-owner`` trailing metadata
when it knows it, via the journal servicer's own helpers). The client must land
appends (batched and unary), ReportApplied, Leave and Subscribe on the owner, skip an
instance that is down, wait out a take-over within the call's deadline, and
send reads anywhere.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from vecraft.clients.journal import JournalClient
from vecraft.local.process import free_port
from vecraft.services.journal_service.servicer import abort_not_owner, owner_metadata
from vecraft.shared.common.errors import DeadlineExceeded, NotOwner, Unavailable
from vecraft.shared.rpc.v1 import journal_pb2, journal_pb2_grpc

pytestmark = pytest.mark.unit

HANG = 30.0
BIG = b"x" * (128 << 10)  # above the client's batching size: sent as a unary Append


class Fake(journal_pb2_grpc.JournalServiceServicer):
    """A journal instance owning ``owns``; for the others it names ``owners[partition]`` (if any)."""

    def __init__(self) -> None:
        self.address = ""
        self.owns: set[str] = set()
        self.owners: dict[str, str] = {}
        self.appended: list[str] = []  # request ids written here
        self.refused = 0
        self.reports: list[tuple[str, int]] = []
        self.left: list[str] = []
        self.reads = 0

    def _refusal(self, partition: str) -> NotOwner:
        self.refused += 1
        return NotOwner(f"not the owner of {partition}", retry_after_ms=100,
                        details={"partition": partition, "owner_address": self.owners.get(partition, "")})

    def _write(self, req: journal_pb2.AppendRequest) -> journal_pb2.AppendResponse:
        self.appended.append(req.request_id)
        return journal_pb2.AppendResponse(partition=req.partition, offset=len(self.appended), hlc=1)

    async def Append(self, request: journal_pb2.AppendRequest,  # noqa: N802 - gRPC method name
                     context: grpc.aio.ServicerContext) -> journal_pb2.AppendResponse:
        if request.partition not in self.owns:
            await abort_not_owner(context, self._refusal(request.partition))
        return self._write(request)

    async def AppendBatch(self, request: journal_pb2.AppendBatchRequest,  # noqa: N802
                          context: grpc.aio.ServicerContext) -> journal_pb2.AppendBatchResponse:
        results, refused = [], []
        for req in request.requests:
            if req.partition in self.owns:
                results.append(journal_pb2.AppendResult(response=self._write(req)))
            else:
                err = self._refusal(req.partition)
                refused.append(err)
                results.append(journal_pb2.AppendResult(error=err.wire_name, message=err.message))
        if refused:
            context.set_trailing_metadata(owner_metadata(refused))
        return journal_pb2.AppendBatchResponse(results=results)

    async def ReportApplied(self, request: journal_pb2.ReportAppliedRequest,  # noqa: N802
                            context: grpc.aio.ServicerContext) -> journal_pb2.ReportAppliedResponse:
        if request.partition not in self.owns:
            await abort_not_owner(context, self._refusal(request.partition))
        self.reports.append((request.replica_id, request.applied_offset))
        return journal_pb2.ReportAppliedResponse()

    async def Leave(self, request: journal_pb2.LeaveRequest,  # noqa: N802
                    context: grpc.aio.ServicerContext) -> journal_pb2.LeaveResponse:
        if request.partition not in self.owns:
            await abort_not_owner(context, self._refusal(request.partition))
        self.left.append(request.replica_id)
        return journal_pb2.LeaveResponse(known=True)

    async def GetOffset(self, request: journal_pb2.GetOffsetRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> journal_pb2.GetOffsetResponse:
        self.reads += 1
        out = journal_pb2.GetOffsetResponse()
        out.offsets.add(partition="data-0", offset=7, hlc=9)
        return out

    async def Subscribe(self, request: journal_pb2.SubscribeRequest,  # noqa: N802
                        context: grpc.aio.ServicerContext) -> AsyncIterator[journal_pb2.SubscribeEvent]:
        if request.partition not in self.owns:
            await abort_not_owner(context, self._refusal(request.partition))
        entry = journal_pb2.JournalEntry(partition=request.partition, offset=request.from_offset, hlc=5,
                                         request_id=self.address, payload=b"p")
        yield journal_pb2.SubscribeEvent(entries=[entry], head_offset=request.from_offset, head_hlc=5)
        await asyncio.sleep(3600)


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[Fake, Fake]]:
    servers, out = [], []
    for _ in range(2):
        fake = Fake()
        server = grpc.aio.server()
        journal_pb2_grpc.add_JournalServiceServicer_to_server(fake, server)
        fake.address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
        await server.start()
        servers.append(server)
        out.append(fake)
    yield out[0], out[1]
    for server in servers:
        await server.stop(0)


def client_of(*addresses: str) -> JournalClient:
    return JournalClient(",".join(addresses))


async def append(client: JournalClient, rid: str, partition: str = "data-0", payload: bytes = b"p",
                 **kwargs: Any) -> journal_pb2.AppendResponse:
    return await asyncio.wait_for(client.append(partition, payload, request_id=rid,
                                                ack=journal_pb2.ACK_JOURNAL, **kwargs), HANG)


async def test_appends_go_to_the_owner_a_refusal_names(fakes: tuple[Fake, Fake]) -> None:
    a, b = fakes
    b.owns = {"data-0"}
    a.owners = {"data-0": b.address}
    client = client_of(a.address, b.address)
    try:
        await append(client, "small-1")
        await append(client, "big-1", payload=BIG)
        assert b.appended == ["small-1", "big-1"] and a.refused == 1  # learned once, then direct
        await asyncio.gather(*(append(client, f"c{i}") for i in range(20)))
        assert a.refused == 1 and len(b.appended) == 22
    finally:
        await client.close()


async def test_each_partition_goes_to_its_own_owner_in_one_batch_round(fakes: tuple[Fake, Fake]) -> None:
    a, b = fakes
    a.owns, b.owns = {"data-0"}, {"system"}
    a.owners, b.owners = {"system": b.address}, {"data-0": a.address}
    client = client_of(a.address, b.address)
    try:
        await asyncio.gather(*(append(client, f"d{i}", "data-0") for i in range(10)),
                             *(append(client, f"s{i}", "system") for i in range(10)))
        assert sorted(a.appended) == sorted(f"d{i}" for i in range(10))
        assert sorted(b.appended) == sorted(f"s{i}" for i in range(10))
    finally:
        await client.close()


async def test_an_instance_that_is_down_is_skipped(fakes: tuple[Fake, Fake]) -> None:
    _, b = fakes
    b.owns = {"data-0"}
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    client = client_of(dead, b.address)
    try:
        await append(client, "small-1")
        await append(client, "big-1", payload=BIG)
        assert await client.get_offset("data-0") == (7, 9)  # reads: any instance
        assert b.appended == ["small-1", "big-1"] and b.reads == 1
    finally:
        await client.close()


async def test_an_append_without_a_request_id_is_not_resent_after_a_transport_failure(
        fakes: tuple[Fake, Fake]) -> None:
    _, b = fakes
    b.owns = {"data-0"}
    client = client_of(f"127.0.0.1:{free_port()}", b.address)
    try:
        # The outcome of a failed transport is unknown: without a request id it is not retried
        # (a not-owner refusal wrote nothing, so that one is: see the take-over test).
        with pytest.raises(Unavailable):
            await append(client, "", payload=BIG)
        assert b.appended == []
    finally:
        await client.close()


async def test_a_take_over_is_waited_out_within_the_deadline(fakes: tuple[Fake, Fake]) -> None:
    a, b = fakes  # nobody owns data-0 yet, nobody knows an owner
    client = client_of(a.address, b.address)
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, b.owns.add, "data-0")
    try:
        began = time.monotonic()
        small, big = await asyncio.gather(append(client, "small-1", timeout_s=5.0),
                                          append(client, "", payload=BIG, timeout_s=5.0))
        assert sorted(b.appended) == ["", "small-1"] and small.offset and big.offset
        assert time.monotonic() - began < 2.0  # polled, not backed off for seconds
    finally:
        await client.close()


async def test_no_owner_within_the_deadline_is_an_error_not_a_hang(fakes: tuple[Fake, Fake]) -> None:
    a, b = fakes
    client = client_of(a.address, b.address)
    try:
        for payload in (b"p", BIG):
            began = time.monotonic()
            with pytest.raises((NotOwner, DeadlineExceeded)):
                await append(client, "never", payload=payload, timeout_s=0.5)
            assert time.monotonic() - began < 2.0
        assert a.appended == b.appended == []
    finally:
        await client.close()


async def test_report_applied_leave_and_subscribe_go_to_the_owner(fakes: tuple[Fake, Fake]) -> None:
    a, b = fakes
    b.owns = {"data-0"}
    a.owners = {"data-0": b.address}
    client = client_of(a.address, b.address)
    try:
        await client.report_applied("data-0", "replica-1", 4)
        assert b.reports == [("replica-1", 4)]
        client.router.not_owner("data-0", b.address, None)  # forget the owner again
        assert await client.leave("data-0", "replica-1", timeout_s=HANG)
        assert (a.left, b.left) == ([], ["replica-1"])
        client.router.not_owner("data-0", b.address, None)  # forget the owner again
        sub = client.subscribe("data-0", 5, replica_id="replica-1")
        try:
            entry = await asyncio.wait_for(anext(aiter(sub)), HANG)
        finally:
            await sub.close()
        assert (entry.offset, entry.request_id) == (5, b.address)  # served by the owner
    finally:
        await client.close()


async def test_a_subscription_moves_when_its_instance_dies(fakes: tuple[Fake, Fake]) -> None:
    a, b = fakes
    a.owns = b.owns = {"data-0"}
    dead = f"127.0.0.1:{free_port()}"
    client = client_of(dead, a.address)
    sub = client.subscribe("data-0", 1, replica_id="replica-1")
    try:
        entry = await asyncio.wait_for(anext(aiter(sub)), HANG)
    finally:
        await sub.close()
        await client.close()
    assert entry.request_id == a.address
