"""Two journal services on the same JetStream streams: what one appends, the other's verbs answer.

Instance A and instance B are real ``JournalService`` objects in this process
(real gRPC servers, JetStream backend, one real nats-server). Only A writes;
B's GetOffset, PullWAL (to the head, and an explicit range past B's index),
LookupRequest, ReportApplied and Subscribe must answer from what the stream
holds, over real gRPC. Before the service awaited the backend's refresh, B
answered from its own index: head (0, 0), empty pulls, "not found".
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from vecraft.clients.journal import JournalClient
from vecraft.local.nats import NatsCluster
from vecraft.services.journal_service.main import JournalService
from vecraft.services.journal_service.settings import JournalSettings
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

HANG_S = 30.0  # hang detector only


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path_factory.mktemp("nats"), size=1) as cluster:
        yield cluster


def settings(nats: NatsCluster, prefix: str, data_dir: Path) -> JournalSettings:
    return JournalSettings(grpc_port=0, http_port=0, data_dir=data_dir, data_partitions=2,
                           backend="jetstream", nats_url=",".join(nats.urls), nats_replicas=1,
                           nats_stream_prefix=prefix)


@pytest.fixture
async def clients(nats_server: NatsCluster, tmp_path: Path) -> AsyncIterator[tuple[JournalClient,
                                                                                   JournalClient]]:
    """Clients of A and B, both started (B's index empty) before anything is written."""
    prefix = f"svc{uuid.uuid4().hex[:8]}"
    a = JournalService(settings(nats_server, prefix, tmp_path / "a"))
    b = JournalService(settings(nats_server, prefix, tmp_path / "b"))
    await a.start()
    await b.start()
    ca, cb = JournalClient(a.grpc_address), JournalClient(b.grpc_address)
    try:
        yield ca, cb
    finally:
        await ca.close()
        await cb.close()
        await b.shutdown(grace=1.0)
        await a.shutdown(grace=1.0)


async def test_the_instance_that_does_not_write_answers_from_the_stream(
        clients: tuple[JournalClient, JournalClient]) -> None:
    a, b = clients
    written = [await a.append("data-0", f"p{i}".encode(), request_id=f"r{i}", shards=[1],
                              ack=journal_pb2.ACK_JOURNAL) for i in range(3)]
    head = (written[-1].offset, written[-1].hlc)
    assert head[0] == 3

    # GetOffset: one partition, and every partition.
    assert await b.get_offset("data-0") == head
    assert await b.get_offsets() == {"data-0": head, "data-1": (0, 0), "system": (0, 0)}

    # PullWAL to the head (to = 0) past B's index.
    more = await a.append("data-0", b"p3", request_id="r3", ack=journal_pb2.ACK_JOURNAL)
    entries = await b.pull("data-0", 1)
    assert [(e.offset, e.hlc, e.request_id, e.payload) for e in entries] == [
        (w.offset, w.hlc, f"r{i}", f"p{i}".encode()) for i, w in enumerate([*written, more])]
    # PullWAL of an explicit range past B's index, on another partition; from = head + 1 is valid.
    other = await a.append("data-1", b"x", request_id="x0", ack=journal_pb2.ACK_JOURNAL)
    page = await b.pull_page("data-1", 1, 1)
    assert [(e.offset, e.request_id) for e in page.entries] == [(1, "x0")]
    assert (page.latest_offset, page.latest_hlc) == (other.offset, other.hlc)
    await a.append("data-1", b"y", request_id="x1", ack=journal_pb2.ACK_JOURNAL)
    assert [e.request_id for e in (await b.pull_page("data-1", 2)).entries] == ["x1"]

    # LookupRequest of an id only A has indexed.
    late = await a.append("system", b"ddl", request_id="ddl-1", ack=journal_pb2.ACK_JOURNAL)
    found = await b.lookup_request("ddl-1")
    assert found.found and (found.partition, found.offset, found.hlc) == ("system", late.offset, late.hlc)
    assert not (await b.lookup_request("never-written")).found

    # ReportApplied of an offset B learns only from the stream is accepted, not "past the head".
    last = await a.append("data-0", b"p4", request_id="r4", ack=journal_pb2.ACK_JOURNAL)
    await b.report_applied("data-0", "replica-1", last.offset)
    consumer = [r for r in (await b.stats()).replicas if r.replica_id == "replica-1"]
    assert [c.applied_offset for c in consumer] == [last.offset]

    # Subscribe through B from an offset only A's write makes valid.
    sub = b.subscribe("data-0", last.offset + 1, replica_id="tail", role="cache")
    nxt = await a.append("data-0", b"p5", request_id="r5", ack=journal_pb2.ACK_JOURNAL)
    try:
        got = await asyncio.wait_for(anext(aiter(sub)), HANG_S)
    finally:
        await sub.close()
    assert (got.offset, got.request_id) == (nxt.offset, "r5")
