"""The journal client against a real gRPC server that never answers: deadlines, not hangs.

Each unary verb ends with DeadlineExceeded (504) within its deadline, the
per-verb default or the caller's ``timeout_s``; a Subscribe stream that goes
silent (no entries, no heartbeat) is dropped and re-subscribed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from vecraft.clients.journal import JournalClient, JournalTimeouts, Subscription
from vecraft.shared.common.errors import DeadlineExceeded, VecraftError
from vecraft.shared.rpc.v1 import journal_pb2, journal_pb2_grpc

pytestmark = pytest.mark.unit

#: Far above every deadline used here: reaching it means the client hung.
HANG = 30.0


class Silent(journal_pb2_grpc.JournalServiceServicer):
    """Accepts every call and never answers; Subscribe sends one heartbeat, then nothing."""

    def __init__(self) -> None:
        self.subscribes = 0

    async def _never(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await asyncio.sleep(3600)

    Append = AppendBatch = GetOffset = PullWAL = ReportApplied = LookupRequest = Stats = _never

    async def Subscribe(self, request: journal_pb2.SubscribeRequest,  # noqa: N802 - gRPC method name
                        context: grpc.aio.ServicerContext) -> AsyncIterator[journal_pb2.SubscribeEvent]:
        self.subscribes += 1
        yield journal_pb2.SubscribeEvent(head_offset=0, head_hlc=0)
        await asyncio.sleep(3600)


@pytest.fixture
async def silent() -> AsyncIterator[tuple[Silent, str]]:
    servicer = Silent()
    server = grpc.aio.server()
    journal_pb2_grpc.add_JournalServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield servicer, f"127.0.0.1:{port}"
    await server.stop(0)


SHORT = JournalTimeouts(append_margin_s=0.3, default_ack_timeout_s=0.0, get_offset_s=0.3, pull_s=0.3,
                        report_applied_s=0.3, lookup_s=0.3, stats_s=0.3, stream_silence_s=0.5)

VERBS: dict[str, Callable[[JournalClient], Awaitable[Any]]] = {
    "append (batched)": lambda c: c.append("data-0", b"x", request_id="r1"),
    "append (large)": lambda c: c.append("data-0", b"x" * (128 << 10), request_id="r2"),
    "get_offset": lambda c: c.get_offset("data-0"),
    "pull_page": lambda c: c.pull_page("data-0", 1),
    "pull": lambda c: c.pull("data-0", 1),
    "report_applied": lambda c: c.report_applied("data-0", "replica-1", 1),
    "lookup_request": lambda c: c.lookup_request("r1"),
    "stats": lambda c: c.stats(),
}


@pytest.mark.parametrize("verb", sorted(VERBS))
async def test_every_verb_has_a_default_deadline(silent: tuple[Silent, str], verb: str) -> None:
    client = JournalClient(silent[1], timeouts=SHORT)
    try:
        with pytest.raises(DeadlineExceeded) as info:
            await asyncio.wait_for(VERBS[verb](client), HANG)
        assert info.value.http_status == 504
        assert silent[1] in info.value.message
    finally:
        await client.close()


async def test_the_callers_budget_wins_over_the_default(silent: tuple[Silent, str]) -> None:
    client = JournalClient(silent[1])  # defaults: seconds, far longer than the budget
    loop = asyncio.get_running_loop()
    try:
        for call in (lambda: client.get_offset("data-0", timeout_s=0.2),
                     lambda: client.pull("data-0", 1, timeout_s=0.2),
                     lambda: client.append("data-0", b"x", request_id="r3", timeout_s=0.2)):
            began = loop.time()
            with pytest.raises(DeadlineExceeded):
                await asyncio.wait_for(call(), HANG)
            # Loose: the default deadline (2 s and more) was not what ended the call.
            assert loop.time() - began < 1.9
    finally:
        await client.close()


async def test_the_default_deadlines_are_bounded() -> None:
    t = JournalTimeouts()
    assert 0 < t.get_offset_s <= 5 and 0 < t.pull_s <= 30
    # An append waits for the acks (2 s by default, or the request's ack timeout) and then some.
    assert t.append_s() > t.default_ack_timeout_s and t.append_s(5000) > 5


async def test_a_silent_subscription_reconnects(silent: tuple[Silent, str]) -> None:
    servicer, address = silent
    client = JournalClient(address, timeouts=SHORT)
    sub = client.subscribe("data-0", 1, replica_id="replica-1")
    try:
        async def resubscribed() -> None:
            while servicer.subscribes < 2:
                await asyncio.sleep(0.05)

        await asyncio.wait_for(resubscribed(), HANG)
    finally:
        await sub.close()
        await client.close()


async def test_a_reader_that_dies_fails_the_iteration_instead_of_hanging(
        silent: tuple[Silent, str], monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: Subscription, event: journal_pb2.SubscribeEvent) -> None:
        raise KeyError("a bug in the reader")

    monkeypatch.setattr(Subscription, "_accept", broken)
    client = JournalClient(silent[1], timeouts=SHORT)
    sub = client.subscribe("data-0", 1, replica_id="replica-1")

    async def consume() -> None:
        async for _ in sub:
            pass

    try:
        with pytest.raises(VecraftError, match="a bug in the reader"):
            await asyncio.wait_for(consume(), HANG)
    finally:
        await sub.close()
        await client.close()
