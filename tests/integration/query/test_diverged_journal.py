"""A query processor whose journal lost offsets stops serving that partition and rebuilds its cache.

The journal is restarted on the same address with its data dir replaced by a
shorter, different history. On main the processor kept answering from the old
history (and would have mixed the two once the new one grew past it).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.query.conftest import JOURNAL, PARTITION, QueryClient, Writer, metric_value
from tests.support.procs import ServiceProcess
from tests.unit.query.fakes import create_payload, write_payload
from vecraft.clients.journal import JournalClient
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.integration
DIM = 4


async def _other_history(start_service: Callable[..., ServiceProcess], directory: Path) -> None:
    other = start_service(JOURNAL, ["--data-dir", str(directory), "--data-partitions", "1"],
                          name="other-journal", ready_timeout=60.0)
    client = JournalClient(other.grpc_address)
    schema, ddl = create_payload("dv", DIM)
    await client.append(PARTITION, ddl, request_id=uuid.uuid4().hex, ack=journal_pb2.ACK_JOURNAL)
    await client.append(PARTITION, write_payload(schema, ["new"], np.eye(DIM, dtype=np.float32)[:1]),
                        request_id=uuid.uuid4().hex, shards=[0], ack=journal_pb2.ACK_JOURNAL)
    await client.close()
    other.stop()


def _ready(proc: ServiceProcess) -> bool:
    try:
        return httpx.get(f"http://{proc.http_address}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


async def test_a_journal_that_lost_offsets_halts_the_partition_and_the_cache_is_rebuilt(
        start_service: Callable[..., ServiceProcess], start_query: Callable[..., ServiceProcess],
        journal_proc: ServiceProcess, writer: Writer, connect: Callable[[ServiceProcess], QueryClient],
        tmp_path: Path) -> None:
    coll = await writer.create("dv", DIM)
    for i in range(5):
        await writer.write(coll, [f"old{i}"], np.eye(DIM, dtype=np.float32)[i % DIM:i % DIM + 1])
    query = start_query("--head-poll-ms", "50")
    client = connect(query)
    resp = await client.search("dv", np.eye(DIM)[0], k=10, level=L.STRONG)
    assert {r.id for r in resp.results} == {f"old{i}" for i in range(5)}

    await _other_history(start_service, tmp_path / "other")
    journal_proc.stop()
    journal_proc.args[journal_proc.args.index("--data-dir") + 1] = str(tmp_path / "other")
    journal_proc.start()

    deadline = time.monotonic() + 30
    while metric_value(query.http_address, "vecraft_replica_diverged_total", {"partition": PARTITION}) < 1:
        assert time.monotonic() < deadline, query.tail(60)
        await asyncio.sleep(0.1)
    assert metric_value(query.http_address, "vecraft_query_cache_rebuilds_total") >= 1
    # Rebuilt from scratch: ready again, and only the journal's history is served.
    while not _ready(query):
        assert time.monotonic() < deadline, query.tail(60)
        await asyncio.sleep(0.1)
    resp = await client.search("dv", np.eye(DIM)[0], k=10, level=L.STRONG)
    assert [r.id for r in resp.results] == ["new"]
    assert resp.consistency_info.index_version_used == 2
    assert query.proc is not None and query.proc.poll() is None
