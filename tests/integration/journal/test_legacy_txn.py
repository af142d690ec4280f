"""A data directory from before transactions moved into the data partitions: a non-empty ``txn``
partition is refused at start with a message saying what it is and what to do.

The directory is made with the WAL's own writer, as the older version laid it
out (``data-0``, ``txn``, ``system``); the journal then runs as a real process.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.procs import ServiceProcess
from vecraft.clients.journal import JournalClient
from vecraft.services.journal_service.wal import LogWrite
from vecraft.services.journal_service.wal.local import LocalJournalBackend
from vecraft.shared.hlc import HybridLogicalClock
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.integration

JOURNAL = "vecraft.services.journal_service"
OLD_PARTITIONS = ["data-0", "txn", "system"]


async def old_data_dir(path: Path, txn_entries: int) -> dict[Path, bytes]:
    """Write a data directory as the older version did; returns every segment file's bytes."""
    backend = LocalJournalBackend(path, OLD_PARTITIONS, clock=HybridLogicalClock())
    await backend.open()
    await backend.partition("data-0").append(LogWrite("w-1", b"write"))
    for i in range(txn_entries):
        await backend.partition("txn").append(LogWrite(f"t-{i}", b"transaction"))
    await backend.close()
    return {p: p.read_bytes() for p in path.rglob("*.wal")}


async def test_a_non_empty_txn_partition_is_refused_and_left_unchanged(tmp_path: Path) -> None:
    data = tmp_path / "data"
    before = await old_data_dir(data, txn_entries=2)
    proc = subprocess.run([sys.executable, "-m", JOURNAL, "--data-dir", str(data), "--grpc-port", "0",
                           "--http-port", "0"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    err = proc.stderr
    assert f"journal data directory {data} holds a non-empty 'txn' partition" in err
    assert "written by an older Vecraft version" in err and "Order across partitions" in err
    assert "Export the data with the version that wrote it" in err
    # Nothing was cut, recovered or created.
    assert {p: p.read_bytes() for p in data.rglob("*.wal")} == before


async def test_an_empty_txn_partition_does_not_stop_the_journal(
        tmp_path: Path, start_service: Callable[..., ServiceProcess]) -> None:
    data = tmp_path / "data"
    await old_data_dir(data, txn_entries=0)
    journal = start_service(JOURNAL, ["--data-dir", str(data)])
    client = JournalClient(journal.grpc_address)
    try:
        assert (await client.pull("data-0", 1))[0].payload == b"write"
        resp = await client.append("data-0", b"next", request_id="w-2", ack=journal_pb2.ACK_JOURNAL)
        assert resp.offset == 2
    finally:
        await client.close()
