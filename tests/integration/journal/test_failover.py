"""Journal fail-over with real processes: two journal instances, a meta manager (SQLite), one nats-server.

Each partition is owned by one instance through a meta-manager lease and fenced
into its stream by an epoch marker; clients given both addresses follow the owner.

- kill -9 of the owner: appends resume on the other instance (the time to the
  first acknowledged append after the kill is printed); every acknowledged
  append is in the stream exactly once, in order, HLCs strictly increasing
  across the change, epochs never decreasing;
- a request id retried after the change gets its original position;
- a deposed owner (SIGSTOP past its lease, the other takes over and writes,
  SIGCONT) refuses the appends sent to it, and none of them lands;
- an owner stopped on purpose hands its partitions over at once (it releases
  its leases after its last write).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest

from tests.support.procs import ServiceProcess
from tests.support.waits import until
from vecraft.clients.journal import JournalClient
from vecraft.local.etcd import EtcdCluster
from vecraft.local.nats import NatsCluster
from vecraft.services.journal_service.wal.jetstream_io import Stored, StreamIO, connect
from vecraft.shared.common.errors import NotOwner, error_class
from vecraft.shared.common.grpc_errors import from_rpc_error
from vecraft.shared.rpc.v1 import journal_pb2, journal_pb2_grpc

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

JOURNAL = "vecraft.services.journal_service"
META = "vecraft.services.meta_manager"
PARTITIONS = ["data-0", "system"]
LEASE_TTL_MS = 1500
HANG_S = 30.0  # hang detector only


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path_factory.mktemp("nats"), size=1) as cluster:
        yield cluster


@dataclass
class Cluster:
    meta: ServiceProcess
    a: ServiceProcess
    b: ServiceProcess
    prefix: str
    nats: NatsCluster

    def client(self, *procs: ServiceProcess) -> JournalClient:
        return JournalClient(",".join(p.grpc_address for p in procs or (self.a, self.b)))


async def owned(proc: ServiceProcess) -> list[str]:
    """Partitions ``proc`` owns, from its /healthz ([] when it does not answer)."""
    try:
        async with httpx.AsyncClient(timeout=1.0) as http:
            body = (await http.get(f"http://{proc.http_address}/healthz")).json()
    except httpx.HTTPError:
        return []
    return sorted(body.get("owned_partitions", []))


async def wait_owner(proc: ServiceProcess, timeout: float = HANG_S) -> None:
    """Until ``proc`` owns every partition."""
    deadline = time.monotonic() + timeout
    while await owned(proc) != sorted(PARTITIONS):
        assert time.monotonic() < deadline, f"{proc.name} did not take every partition over"
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), size=1).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def cluster(nats_server: NatsCluster, start_service: Callable[..., ServiceProcess],
                  tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Cluster]:
    """A meta manager (SQLite; ``etcd`` when the test's ``cluster`` parameter says so) and journal
    instances A and B on fresh streams; A owns every partition."""
    prefix = f"fo{uuid.uuid4().hex[:8]}"
    store = ["--backend", "sqlite"]
    if getattr(request, "param", "sqlite") == "etcd":
        etcd: EtcdCluster = request.getfixturevalue("etcd")
        store = ["--backend", "etcd", "--etcd-endpoints", ",".join(etcd.endpoints),
                 "--etcd-prefix", f"/{prefix}"]
    meta = start_service(META, [*store, "--data-dir", str(tmp_path / "meta")])

    def journal(name: str) -> ServiceProcess:
        return start_service(JOURNAL, [
            "--backend", "jetstream", "--nats-url", ",".join(nats_server.urls), "--nats-replicas", "1",
            "--nats-stream-prefix", prefix, "--data-partitions", "1", "--data-dir", str(tmp_path / name),
            "--meta-address", meta.grpc_address, "--node-id", name,
            "--partition-lease-ttl-ms", str(LEASE_TTL_MS)], name=name)

    a = journal("journal-a")
    await wait_owner(a)
    b = journal("journal-b")
    yield Cluster(meta, a, b, prefix, nats_server)


async def stream_entries(cluster: Cluster, partition: str) -> list[Stored]:
    """Every message of ``partition``'s stream, read from NATS directly (epochs and markers included)."""
    nc = await connect(cluster.nats.urls, name="test-reader", timeout=5.0)
    io = StreamIO(nc, timeout=5.0)
    await io.start()
    try:
        stream = f"{cluster.prefix}-{partition}"
        _, last = await io.last_seq(stream)
        out: list[Stored] = []
        while len(out) < last:
            out.extend(await io.fetch(stream, len(out) + 1, last - len(out)))
        return out
    finally:
        await io.close()
        await nc.close()


def check_stream(entries: list[Stored], acked: dict[str, journal_pb2.AppendResponse]) -> list[Stored]:
    """The stream holds every acknowledged append exactly once, at its answered offset and HLC, and
    nothing else but epoch markers; HLCs strictly increase; epochs never decrease. Returns the markers."""
    markers = [e for e in entries if e.owner]
    writes = [e for e in entries if not e.owner]
    assert all(not e.payload and not e.request_id for e in markers)
    assert sorted(e.request_id for e in writes) == sorted(acked), "the stream holds other writes than acked"
    for e in writes:
        resp = acked[e.request_id]
        assert (resp.offset, resp.hlc) == (e.seq, e.hlc), f"{e.request_id} answered at another position"
    hlcs = [e.hlc for e in entries]
    assert all(x < y for x, y in itertools.pairwise(hlcs)), "HLCs not strictly increasing"
    epochs = [e.epoch for e in entries]
    assert all(x <= y for x, y in itertools.pairwise(epochs)), f"epochs went back: {epochs}"
    assert entries[0].owner, "the first entry of a fenced stream is its first owner's marker"
    return markers


@pytest.mark.parametrize("cluster", ["sqlite", "etcd"], indirect=True)
async def test_appends_resume_after_kill_9_of_the_owner(cluster: Cluster) -> None:
    client = cluster.client()
    acked: dict[str, journal_pb2.AppendResponse] = {}
    ack_times: dict[str, float] = {}
    killed_at: list[float] = []
    stop = asyncio.Event()

    async def writer(w: int) -> None:
        n = 0
        while not stop.is_set():
            rid = f"w{w}-{n}"
            n += 1
            partition = PARTITIONS[n % 2]
            resp = await client.append(partition, rid.encode(), request_id=rid, ack=journal_pb2.ACK_JOURNAL,
                                       timeout_s=10.0)
            acked[rid] = resp
            ack_times[rid] = time.monotonic()

    writers = [asyncio.create_task(writer(w)) for w in range(4)]
    try:
        await until(lambda: len(acked) >= 100, HANG_S)
        killed_at.append(time.monotonic())
        cluster.a.kill()  # kill -9
        await until(lambda: sum(t > killed_at[0] for t in ack_times.values()) >= 100, HANG_S)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writers), HANG_S)
    finally:
        for task in writers:
            task.cancel()
        await asyncio.gather(*writers, return_exceptions=True)
        await client.close()
    assert await owned(cluster.b) == sorted(PARTITIONS)
    resumed = []
    for partition in PARTITIONS:
        mine = {rid: r for rid, r in acked.items() if r.partition == partition}
        markers = check_stream(await stream_entries(cluster, partition), mine)
        assert [m.owner.split("/")[0] for m in markers] == ["journal-a", "journal-b"]
        assert markers[0].epoch < markers[1].epoch
        # Resumed = the first append the new owner wrote (after its marker) was acknowledged.
        resumed.append(min(ack_times[rid] for rid, r in mine.items() if r.offset > markers[1].seq))
    resumed_s = min(resumed) - killed_at[0]
    print(f"\nfirst append written by the new owner acknowledged {resumed_s * 1000:.0f} ms after kill -9 "
          f"of the owner (lease TTL {LEASE_TTL_MS} ms); {len(acked)} appends acknowledged")


async def test_a_request_id_retried_after_the_change_gets_its_original_position(cluster: Cluster) -> None:
    client = cluster.client()
    try:
        first = await client.append("data-0", b"original", request_id="retried", ack=journal_pb2.ACK_JOURNAL)
        cluster.a.kill()
        # Sent at once: the client rides out the take-over and asks the new owner.
        again = await client.append("data-0", b"retry", request_id="retried", ack=journal_pb2.ACK_JOURNAL,
                                    timeout_s=10.0)
        assert again.duplicate and (again.offset, again.hlc) == (first.offset, first.hlc)
        after = await client.append("data-0", b"new", request_id="after", ack=journal_pb2.ACK_JOURNAL)
        assert not after.duplicate and after.offset > first.offset and after.hlc > first.hlc
        found = await client.lookup_request("retried")
        assert (found.partition, found.offset) == ("data-0", first.offset)
    finally:
        await client.close()
    entries = await stream_entries(cluster, "data-0")
    assert [e.request_id for e in entries if e.request_id] == ["retried", "after"]


async def raw_append(address: str, rid: str) -> str:
    """Append through a bare gRPC stub (no redirects, no retries): "" when acknowledged, else the
    error's wire name."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = journal_pb2_grpc.JournalServiceStub(channel)
        try:
            await stub.Append(journal_pb2.AppendRequest(partition="data-0", payload=rid.encode(),
                                                        request_id=rid, ack=journal_pb2.ACK_JOURNAL),
                              timeout=HANG_S)
        except grpc.RpcError as exc:
            return from_rpc_error(exc).wire_name
    return ""


async def test_a_deposed_owner_cannot_append(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    before = await raw_append(a.grpc_address, "a-before")
    assert before == ""
    os.kill(a.pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        await wait_owner(b)  # A's lease ran out while it was stopped
        # A paused owner still accepts connections: B did not break its lease, it waited it out
        # (renewed at most a third of the TTL before the pause).
        assert time.monotonic() - stopped_at >= LEASE_TTL_MS / 1000 / 2
        via_b = cluster.client(b)
        try:
            written = [await via_b.append("data-0", f"b{i}".encode(), request_id=f"b{i}",
                                          ack=journal_pb2.ACK_JOURNAL) for i in range(3)]
        finally:
            await via_b.close()
    finally:
        os.kill(a.pid, signal.SIGCONT)
    # A runs again, its renewal overdue and its appends arriving together: whichever it handles
    # first, it wrote its last entry under a lease that ran out long ago.
    answers = await asyncio.wait_for(
        asyncio.gather(*(raw_append(a.grpc_address, f"a-stale-{i}") for i in range(5))), HANG_S)
    assert answers == ["not_owner"] * 5
    assert error_class("not_owner") is NotOwner
    assert await owned(a) == []
    # A knows the owner now: a client given only A's address is sent to B.
    via_a = cluster.client(a)
    try:
        redirected = await via_a.append("data-0", b"later", request_id="later", ack=journal_pb2.ACK_JOURNAL,
                                        timeout_s=10.0)
    finally:
        await via_a.close()
    assert redirected.offset == written[-1].offset + 1
    entries = await stream_entries(cluster, "data-0")
    assert [e.request_id for e in entries if e.request_id] == ["a-before", "b0", "b1", "b2", "later"]
    markers = [e for e in entries if e.owner]
    assert [m.owner.split("/")[0] for m in markers] == ["journal-a", "journal-b"]
    with contextlib.suppress(ProcessLookupError):
        assert a.alive()


async def test_an_owner_stopped_on_purpose_hands_over_at_once(cluster: Cluster) -> None:
    client = cluster.client()
    try:
        first = await client.append("data-0", b"1", request_id="one", ack=journal_pb2.ACK_JOURNAL)
        stopped = time.monotonic()
        cluster.a.stop()  # SIGTERM: drain, release the leases, deregister
        second = await client.append("data-0", b"2", request_id="two", ack=journal_pb2.ACK_JOURNAL,
                                     timeout_s=10.0)
        resumed_s = time.monotonic() - stopped
    finally:
        await client.close()
    print(f"\nfirst append {resumed_s * 1000:.0f} ms after SIGTERM of the owner (its shutdown included)")
    assert second.offset == first.offset + 2  # after B's marker
    assert await owned(cluster.b) == sorted(PARTITIONS)
