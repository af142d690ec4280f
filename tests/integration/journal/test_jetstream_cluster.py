"""The JetStream backend beyond the shared contract: two writers on one stream, and losing a server."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from pathlib import Path

import nats
import pytest

from vecraft.local.nats import NatsCluster
from vecraft.services.journal_service.wal import JournalBackend, LogWrite, Position
from vecraft.services.journal_service.wal.jetstream import JetStreamJournalBackend
from vecraft.shared.hlc import HybridLogicalClock
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def backend(cluster: NatsCluster, prefix: str, replicas: int) -> JetStreamJournalBackend:
    return JetStreamJournalBackend(cluster.urls, ["data-0"], clock=HybridLogicalClock(),
                                   replicas=replicas, stream_prefix=prefix)


async def read_all(b: JournalBackend) -> list[journal_pb2.JournalEntry]:
    plog = b.partition("data-0")
    out: list[journal_pb2.JournalEntry] = []
    while len(out) < plog.head[0]:
        out += await plog.read(len(out) + 1, plog.head[0], max_entries=500, max_bytes=1 << 20)
    return out


def assert_log_holds(entries: list[journal_pb2.JournalEntry], acked: dict[str, Position]) -> None:
    """Gapless from 1, HLC strictly increasing, every acknowledged write once at its position."""
    assert [e.offset for e in entries] == list(range(1, len(entries) + 1))
    assert all(a.hlc < b.hlc for a, b in itertools.pairwise(entries))
    by_rid = {e.request_id: e for e in entries}
    assert len(by_rid) == len(entries), "a request id was appended twice"
    for rid, pos in acked.items():
        e = by_rid[rid]
        assert (e.offset, e.hlc, e.payload) == (pos.offset, pos.hlc, rid.encode())


async def test_two_journal_processes_on_one_stream_never_interleave(tmp_path: Path) -> None:
    with NatsCluster(tmp_path / "nats", size=1) as cluster:
        prefix = f"two{uuid.uuid4().hex[:8]}"
        one, two = backend(cluster, prefix, 1), backend(cluster, prefix, 1)
        await one.open()
        await two.open()
        acked: dict[str, Position] = {}

        async def write(b: JournalBackend, name: str) -> None:
            for i in range(0, 120, 6):
                got = await asyncio.gather(*(b.partition("data-0").append(LogWrite(f"{name}{i + k}",
                                                                                   f"{name}{i + k}".encode()))
                                             for k in range(6)))
                for k, a in enumerate(got):
                    assert not a.duplicate
                    acked[f"{name}{i + k}"] = a.position

        await asyncio.gather(write(one, "a"), write(two, "b"))
        # A retry through the other process is still answered with the original position.
        again = await two.partition("data-0").append(LogWrite("a7", b"a7"))
        assert again.duplicate and again.position == acked["a7"]
        await one.close()
        await two.close()
        fresh = backend(cluster, prefix, 1)
        await fresh.open()
        entries = await read_all(fresh)
        assert len(entries) == 240
        assert_log_holds(entries, acked)
        await fresh.close()


async def test_losing_the_stream_leader_loses_no_acknowledged_write(tmp_path: Path) -> None:
    with NatsCluster(tmp_path / "nats", size=3) as cluster:
        assert all(n.varz()["jetstream"]["config"]["sync_always"] for n in cluster.nodes)
        b = backend(cluster, "r3", 3)
        await b.open()
        plog = b.partition("data-0")
        acked: dict[str, Position] = {}
        killed = asyncio.Event()

        async def writer(w: int) -> None:
            for i in range(40):
                rid = f"w{w}-{i}"
                acked[rid] = (await plog.append(LogWrite(rid, rid.encode()))).position
                if w == 0 and i == 10:
                    killed.set()

        async def kill_leader() -> str:
            await killed.wait()
            nc = await nats.connect(cluster.urls)
            info = await nc.jetstream().stream_info("r3-data-0")
            await nc.close()
            assert info.cluster is not None and info.cluster.leader
            node = next(n for n in cluster.nodes if n.name == info.cluster.leader)
            node.kill()
            return node.name

        results = await asyncio.gather(*(writer(w) for w in range(4)), kill_leader())
        assert len(acked) == 160
        assert_log_holds(await read_all(b), acked)
        await b.close()
        # A journal started afterwards, on the two survivors, finds everything.
        survivors = [n.url for n in cluster.nodes if n.name != results[-1]]
        fresh = JetStreamJournalBackend(survivors, ["data-0"], clock=HybridLogicalClock(), replicas=3,
                                        stream_prefix="r3")
        await fresh.open()
        entries = await read_all(fresh)
        assert len(entries) == 160
        assert_log_holds(entries, acked)
        nxt = await fresh.partition("data-0").append(LogWrite("after", b"after"))
        assert nxt.position.offset == 161 and nxt.position.hlc > entries[-1].hlc
        await fresh.close()
