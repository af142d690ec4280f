"""gRPC accepts what HTTP accepts: one limit (limits.MAX_REQUEST_BYTES) plus a small envelope.

A real server started by the Service shell refuses a request just over
GRPC_MAX_MESSAGE_BYTES with RESOURCE_EXHAUSTED and takes one just under it;
the largest legitimate internal messages (an Append of a max-size entry, a
PullWAL page around one) fit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from vecraft.services.journal_service.journal import JournalLimits
from vecraft.shared.common.config import ServiceSettings
from vecraft.shared.common.errors import PayloadTooLarge
from vecraft.shared.common.grpc_errors import from_rpc_error
from vecraft.shared.common.service import GRPC_OPTIONS, GRPC_SERVER_OPTIONS, Service
from vecraft.shared.model.limits import GRPC_ENVELOPE_BYTES, GRPC_MAX_MESSAGE_BYTES, MAX_REQUEST_BYTES
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.unit

METHOD = "/vecraft.test.Sink/Take"


async def _take(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return str(len(request)).encode()


class Sink(Service):
    """A service whose only method answers the size of the request it received."""

    role = "sink"

    def register(self, server: grpc.aio.Server) -> None:
        handler = grpc.unary_unary_rpc_method_handler(_take)  # raw bytes in and out
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "vecraft.test.Sink", {"Take": handler}),))


@pytest.fixture
async def sink() -> AsyncIterator[grpc.aio.Channel]:
    svc = Sink(ServiceSettings(host="127.0.0.1", grpc_port=0, http_port=0))
    await svc.start()
    # A client that would send anything: the server's limit is what is under test.
    unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    channel = grpc.aio.insecure_channel(svc.grpc_address, options=unlimited)
    try:
        yield channel
    finally:
        await channel.close()
        await svc.shutdown(grace=1.0)


def test_one_source_for_http_grpc_and_journal_limits() -> None:
    assert MAX_REQUEST_BYTES == 64 << 20
    assert GRPC_MAX_MESSAGE_BYTES == MAX_REQUEST_BYTES + GRPC_ENVELOPE_BYTES
    assert ("grpc.max_receive_message_length", GRPC_MAX_MESSAGE_BYTES) in GRPC_SERVER_OPTIONS
    assert ("grpc.max_send_message_length", GRPC_MAX_MESSAGE_BYTES) in GRPC_OPTIONS
    limits = JournalLimits()
    assert limits.max_entry_bytes <= MAX_REQUEST_BYTES and limits.pull_max_bytes <= MAX_REQUEST_BYTES


def test_the_largest_internal_messages_fit_the_envelope() -> None:
    entry = journal_pb2.JournalEntry(partition="data-" + "9" * 100, offset=2**63, hlc=2**63,
                                     request_id="r" * 256, payload=b"\0" * JournalLimits().max_entry_bytes,
                                     shards=list(range(0xFFFF - 1000, 0xFFFF)))
    append = journal_pb2.AppendRequest(partition=entry.partition, request_id=entry.request_id,
                                       payload=entry.payload, shards=entry.shards, client_hlc=2**63,
                                       ack_timeout_ms=2**31)
    page = journal_pb2.PullWALResponse(entries=[entry], latest_offset=2**63, latest_hlc=2**63)
    event = journal_pb2.SubscribeEvent(entries=[entry], head_offset=2**63, head_hlc=2**63)
    for message in (append, page, event):
        assert message.ByteSize() <= GRPC_MAX_MESSAGE_BYTES


async def test_a_request_over_the_limit_is_refused_and_one_under_it_passes(sink: grpc.aio.Channel) -> None:
    take = sink.unary_unary(METHOD)
    under = GRPC_MAX_MESSAGE_BYTES - 1024
    assert await take(b"\0" * under, timeout=120) == str(under).encode()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await take(b"\0" * (GRPC_MAX_MESSAGE_BYTES + 1), timeout=120)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # The old limit (256 MiB) let a request 4 x the HTTP body limit in; the public API no longer does.
    with pytest.raises(grpc.aio.AioRpcError):
        await take(b"\0" * (2 * MAX_REQUEST_BYTES), timeout=120)
    # Translated for callers: a request too big (413), never "rate limited" (retried as a 429).
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await take(b"\0" * (GRPC_MAX_MESSAGE_BYTES + 1), timeout=120)
    err = from_rpc_error(again.value)
    assert isinstance(err, PayloadTooLarge) and err.http_status == 413, err
