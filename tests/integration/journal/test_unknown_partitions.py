"""Partitions holding entries that the journal is not configured with stop it from starting.

Typically ``--data-partitions`` lowered from 4 to 2: ``data-3`` still holds
acknowledged writes the journal would no longer serve (and its tenants would be
routed elsewhere). The journal runs as a real process; the data is written by
the backends' own writers (segment files, or a real nats-server's streams).
Empty partitions outside the configured set are ignored.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.procs import ServiceProcess
from vecraft.clients.journal import JournalClient
from vecraft.local.nats import NatsCluster
from vecraft.services.journal_service.wal import JournalBackend, LogWrite
from vecraft.services.journal_service.wal.local import LocalJournalBackend
from vecraft.shared.hlc import HybridLogicalClock
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.integration

JOURNAL = "vecraft.services.journal_service"
FOUR = ["data-0", "data-1", "data-2", "data-3", "system"]


async def write_four(backend: JournalBackend, *, data_3_entries: int) -> None:
    """Written with --data-partitions 4: entries in data-0 and (maybe) data-3, none in data-2."""
    await backend.open()
    await backend.partition("data-0").append(LogWrite("w-0", b"write"))
    for i in range(data_3_entries):
        await backend.partition("data-3").append(LogWrite(f"w3-{i}", b"acknowledged"))
    await backend.close()


def start_refused(args: list[str]) -> str:
    """Run the journal, which must exit non-zero; returns its stderr."""
    proc = subprocess.run([sys.executable, "-m", JOURNAL, "--grpc-port", "0", "--http-port", "0", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0, proc.stderr
    return proc.stderr


def assert_says_what_to_do(err: str, where: str) -> None:
    assert f"{where} holds entries of journal partitions this journal does not serve: 'data-3' (" in err
    assert "data-2" not in err.split("does not serve:")[1].split(";")[0]  # empty: not named
    assert "it serves data-0, data-1, system" in err
    assert "Lowering --data-partitions is not supported" in err
    assert "Start with the --data-partitions the journal was written with (at least 4)" in err


async def test_a_lowered_data_partitions_is_refused_and_the_directory_left_unchanged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    await write_four(LocalJournalBackend(data, FOUR, clock=HybridLogicalClock()), data_3_entries=2)
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file() and p.name != "LOCK"}
    err = start_refused(["--data-dir", str(data), "--data-partitions", "2"])
    assert_says_what_to_do(err, f"journal data directory {data}")
    assert "2 segment files" not in err and "bytes in 1 segment files" in err
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file() and p.name != "LOCK"} == before


async def test_empty_partitions_outside_the_configured_set_are_ignored(
        tmp_path: Path, start_service: Callable[..., ServiceProcess]) -> None:
    data = tmp_path / "data"
    await write_four(LocalJournalBackend(data, FOUR, clock=HybridLogicalClock()), data_3_entries=0)
    journal = start_service(JOURNAL, ["--data-dir", str(data), "--data-partitions", "2"])
    client = JournalClient(journal.grpc_address)
    try:
        assert (await client.pull("data-0", 1))[0].payload == b"write"
        appended = await client.append("data-0", b"next", request_id="w-1", ack=journal_pb2.ACK_JOURNAL)
        assert appended.offset == 2
    finally:
        await client.close()


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    with NatsCluster(tmp_path_factory.mktemp("nats"), size=1) as cluster:
        yield cluster


def jetstream(nats: NatsCluster, prefix: str, names: list[str]) -> JournalBackend:
    from vecraft.services.journal_service.wal.jetstream import JetStreamJournalBackend

    return JetStreamJournalBackend(nats.urls, names, clock=HybridLogicalClock(), replicas=1,
                                   stream_prefix=prefix)


def jetstream_args(nats: NatsCluster, prefix: str, tmp_path: Path, data_partitions: int) -> list[str]:
    return ["--data-dir", str(tmp_path / "data"), "--backend", "jetstream", "--nats-url", ",".join(nats.urls),
            "--nats-replicas", "1", "--nats-stream-prefix", prefix, "--data-partitions", str(data_partitions)]


@pytest.mark.cluster
async def test_jetstream_streams_of_partitions_it_does_not_serve_are_refused(
        nats_server: NatsCluster, tmp_path: Path, start_service: Callable[..., ServiceProcess]) -> None:
    prefix = f"u{uuid.uuid4().hex[:8]}"
    await write_four(jetstream(nats_server, prefix, FOUR), data_3_entries=2)
    err = start_refused(jetstream_args(nats_server, prefix, tmp_path, 2))
    assert_says_what_to_do(err, f"JetStream (streams {prefix}-*)")
    assert f"stream {prefix}-data-3, 2 entries" in err
    # The streams are unchanged: all four read back as written.
    again = jetstream(nats_server, prefix, FOUR)
    await again.open()
    try:
        assert [again.partition(p).head[0] for p in FOUR] == [1, 0, 0, 2, 0]
    finally:
        await again.close()
    # Served with the --data-partitions they were written with, they start.
    journal = start_service(JOURNAL, jetstream_args(nats_server, prefix, tmp_path, 4))
    client = JournalClient(journal.grpc_address)
    try:
        assert (await client.get_offset("data-3"))[0] == 2
    finally:
        await client.close()


@pytest.mark.cluster
async def test_empty_jetstream_streams_outside_the_configured_set_are_ignored(
        nats_server: NatsCluster, tmp_path: Path, start_service: Callable[..., ServiceProcess]) -> None:
    prefix = f"e{uuid.uuid4().hex[:8]}"
    await write_four(jetstream(nats_server, prefix, FOUR), data_3_entries=0)
    journal = start_service(JOURNAL, jetstream_args(nats_server, prefix, tmp_path, 2))
    client = JournalClient(journal.grpc_address)
    try:
        assert (await client.get_offset("data-0"))[0] == 1
    finally:
        await client.close()
