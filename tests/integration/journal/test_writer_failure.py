"""A partition whose writer fails refuses its appends visibly, over real gRPC and HTTP probes.

The journal runs in this process (so the failure can be injected) on real
files, a real gRPC server and its /readyz, /healthz and /metrics. Local
backend, two causes: the HLC high-water mark (``hlc.json``) cannot be
written, and an fsync of the segment fails; both with ENOSPC. JetStream
backend (a real nats-server): an error its writer does not retry, raised in
its publish path. ``asyncio.wait_for`` bounds are hang detectors only: before
the fix an append after the clock failure (or the JetStream publish failure)
never returned.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from vecraft.clients.journal import JournalClient
from vecraft.local.nats import NatsCluster
from vecraft.services.journal_service.main import JournalService
from vecraft.services.journal_service.settings import JournalSettings
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.hlc import clock as hlc_clock
from vecraft.shared.hlc import pack, wall_clock_ms
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.integration

HANG_S = 30.0  # hang detector only


class DiskFull:
    """Makes the patched call raise ENOSPC once armed (``disarm`` frees the space again)."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real = real
        self.armed = False
        self.raised = 0

    def __call__(self, *args: Any) -> Any:
        if self.armed:
            self.raised += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real(*args)


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[JournalService]:
    svc = JournalService(JournalSettings(grpc_port=0, http_port=0, data_dir=tmp_path / "data",
                                         data_partitions=2, max_clock_offset_ms=60_000))
    await svc.start()
    try:
        yield svc
    finally:
        await svc.shutdown(grace=1.0)


async def probe(svc: JournalService, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as http:
        return await http.get(f"http://{svc.http_address}{path}")


async def failures_counted(svc: JournalService, partition: str) -> float:
    text = (await probe(svc, "/metrics")).text
    found = re.search(rf'^vecraft_journal_partition_failures_total{{partition="{partition}"}} (\S+)$',
                      text, re.M)
    return float(found.group(1)) if found else 0.0


def rid() -> str:
    return uuid.uuid4().hex


@pytest.mark.parametrize("cause", ["hlc-persist", "fsync"])
async def test_a_failed_writer_fails_its_partition_visibly(
        cause: str, journal: JournalService, monkeypatch: pytest.MonkeyPatch) -> None:
    if cause == "hlc-persist":
        disk = DiskFull(hlc_clock._store_bound)
        monkeypatch.setattr(hlc_clock, "_store_bound", disk)
    else:
        disk = DiskFull(os.fdatasync)
        monkeypatch.setattr(os, "fdatasync", disk)
    client = JournalClient(journal.grpc_address)
    try:
        first_key = rid()
        first = await client.append("data-0", b"before", request_id=first_key, ack=journal_pb2.ACK_JOURNAL)
        assert (await probe(journal, "/readyz")).status_code == 200
        counted = await failures_counted(journal, "data-0")

        disk.armed = True
        # A writer 30 s ahead moves the clock's persisted high-water mark (it must be rewritten
        # before that HLC is issued); for the fsync case any append reaches the disk.
        ahead = pack(wall_clock_ms() + 30_000, 0)
        pending = [client.append("data-0", f"w{i}".encode(), request_id=rid(), client_hlc=ahead,
                                 ack=journal_pb2.ACK_JOURNAL) for i in range(8)]
        results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), HANG_S)
        assert disk.raised >= 1
        assert all(isinstance(r, Unavailable) for r in results), results
        message = results[0].message  # type: ignore[union-attr]
        assert "journal partition data-0 failed" in message and "No space left on device" in message

        # Later appends fail at once with the same cause; the partition never half-writes.
        disk.armed = False
        with pytest.raises(Unavailable, match=r"partition data-0 failed .*No space left on device"):
            await asyncio.wait_for(client.append("data-0", b"later", request_id=rid(),
                                                 ack=journal_pb2.ACK_JOURNAL), HANG_S)
        assert await client.get_offset("data-0") == (first.offset, first.hlc)
        # What was committed stays readable and a retry of it is still answered.
        again = await client.append("data-0", b"before", request_id=first_key, ack=journal_pb2.ACK_JOURNAL)
        assert again.duplicate and again.offset == first.offset
        assert [e.payload for e in await client.pull("data-0", 1)] == [b"before"]
        # The other partition has its own writer and keeps working.
        other = await asyncio.wait_for(client.append("data-1", b"fine", request_id=rid(),
                                                     ack=journal_pb2.ACK_JOURNAL), HANG_S)
        assert other.offset == 1

        # Visible to probes and metrics.
        ready = await probe(journal, "/readyz")
        assert ready.status_code == 503 and ready.json()["ready"] is False
        assert not journal.ready
        health = (await probe(journal, "/healthz")).json()
        assert "No space left on device" in health["failed_partitions"]["data-0"]
        assert "data-1" not in health["failed_partitions"]
        assert await failures_counted(journal, "data-0") == counted + 1
        assert await failures_counted(journal, "data-1") == 0
    finally:
        await client.close()


@pytest.fixture
async def jetstream_journal(tmp_path: Path) -> AsyncIterator[JournalService]:
    with NatsCluster(tmp_path / "nats", size=1) as nats:
        svc = JournalService(JournalSettings(grpc_port=0, http_port=0, data_dir=tmp_path / "data",
                                             data_partitions=2, backend="jetstream",
                                             nats_url=",".join(nats.urls), nats_replicas=1))
        await svc.start()
        try:
            yield svc
        finally:
            await svc.shutdown(grace=1.0)


class BrokenPublish(Exception):
    """An error the JetStream writer does not retry (not JetStream being unreachable): a bug, say."""


@pytest.mark.cluster
async def test_a_failed_jetstream_writer_fails_its_partition_visibly(jetstream_journal: JournalService,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    svc = jetstream_journal
    io = svc.backend._io  # type: ignore[attr-defined]
    publish = io.publish_batch
    broken = {"armed": False, "raised": 0}

    async def publish_batch(stream: str, *args: Any, **kwargs: Any) -> int:
        if broken["armed"] and stream.endswith("-data-0"):
            broken["raised"] += 1
            raise BrokenPublish("encoding the batch failed")
        return int(await publish(stream, *args, **kwargs))

    monkeypatch.setattr(io, "publish_batch", publish_batch)
    client = JournalClient(svc.grpc_address)
    try:
        first_key = rid()
        first = await client.append("data-0", b"before", request_id=first_key, ack=journal_pb2.ACK_JOURNAL)
        assert (await probe(svc, "/readyz")).status_code == 200
        counted = await failures_counted(svc, "data-0")

        broken["armed"] = True
        pending = [client.append("data-0", f"w{i}".encode(), request_id=rid(), ack=journal_pb2.ACK_JOURNAL)
                   for i in range(8)]
        results = await asyncio.wait_for(asyncio.gather(*pending, return_exceptions=True), HANG_S)
        assert broken["raised"] == 1
        assert all(isinstance(r, Unavailable) for r in results), results
        message = results[0].message  # type: ignore[union-attr]
        assert "journal partition data-0 failed" in message and "BrokenPublish: encoding the batch" in message

        broken["armed"] = False
        with pytest.raises(Unavailable, match=r"partition data-0 failed .*BrokenPublish"):
            await asyncio.wait_for(client.append("data-0", b"later", request_id=rid(),
                                                 ack=journal_pb2.ACK_JOURNAL), HANG_S)
        assert await client.get_offset("data-0") == (first.offset, first.hlc)
        again = await client.append("data-0", b"before", request_id=first_key, ack=journal_pb2.ACK_JOURNAL)
        assert again.duplicate and again.offset == first.offset
        assert [e.payload for e in await client.pull("data-0", 1)] == [b"before"]
        other = await asyncio.wait_for(client.append("data-1", b"fine", request_id=rid(),
                                                     ack=journal_pb2.ACK_JOURNAL), HANG_S)
        assert other.offset == 1

        ready = await probe(svc, "/readyz")
        assert ready.status_code == 503 and not svc.ready
        health = (await probe(svc, "/healthz")).json()
        assert "BrokenPublish" in health["failed_partitions"]["data-0"]
        assert "data-1" not in health["failed_partitions"]
        assert await failures_counted(svc, "data-0") == counted + 1
    finally:
        await client.close()
