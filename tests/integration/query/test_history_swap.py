"""A journal replaced, while a query processor follows it, by another history that is longer.

The other history starts with the same collection (an old backup restored and
written to since), so its entries apply cleanly on top of the old ones: only a
history check can tell them apart. The processor's push tail lags far behind
(it never applies during the test) and its periodic checks are a minute apart,
so the strong read's pull is what meets the new history first. On main that
pull applied the new history's entries on top of the old ones and the read
returned a mix of both; now the pull re-reads the applied entry, the partition
halts (503) and the cache is rebuilt from the journal alone.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.integration.query.conftest import JOURNAL, PARTITION, QueryClient, metric_value
from tests.support.procs import ServiceProcess
from tests.unit.query.fakes import create_payload, write_payload
from vecraft.clients.journal import JournalClient
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.integration
DIM = 4
WAIT_S = 60.0


async def _write(client: JournalClient, payloads: list[bytes]) -> None:
    for payload in payloads:
        await client.append(PARTITION, payload, request_id=uuid.uuid4().hex, shards=[0],
                            ack=journal_pb2.ACK_JOURNAL)


def _rows(prefix: str, n: int, schema: object) -> list[bytes]:
    eye = np.eye(DIM, dtype=np.float32)
    return [write_payload(schema, [f"{prefix}{i}"], eye[i % DIM:i % DIM + 1]) for i in range(n)]  # type: ignore[arg-type]


async def test_a_strong_read_never_mixes_two_histories(
        start_service: Callable[..., ServiceProcess], start_query: Callable[..., ServiceProcess],
        journal_proc: ServiceProcess, journal: JournalClient,
        connect: Callable[[ServiceProcess], QueryClient], tmp_path: Path) -> None:
    schema, create = create_payload("hs", DIM)
    await _write(journal, [create, *_rows("old", 3, schema)])  # offsets 1..4
    query = start_query("--apply-delay-ms", "600000", "--head-poll-ms", "60000")
    client = connect(query)
    resp = await client.search("hs", np.ones(DIM), k=20, level=L.STRONG)
    assert {r.id for r in resp.results} == {"old0", "old1", "old2"}

    # The other history: the same collection, then writes of its own, past the applied offset.
    other = start_service(JOURNAL, ["--data-dir", str(tmp_path / "other"), "--data-partitions", "1"],
                          name="other-journal", ready_timeout=60.0)
    other_client = JournalClient(other.grpc_address)
    await _write(other_client, [create, *_rows("new", 6, schema)])  # offsets 1..7
    await other_client.close()
    other.stop()
    journal_proc.stop()
    journal_proc.args[journal_proc.args.index("--data-dir") + 1] = str(tmp_path / "other")
    journal_proc.start()

    new = {f"new{i}" for i in range(6)}
    deadline = time.monotonic() + WAIT_S
    refused = 0
    while True:
        assert time.monotonic() < deadline, query.tail(60)
        try:
            resp = await client.search("hs", np.ones(DIM), k=20, level=L.STRONG, timeout_ms=10_000)
        except Unavailable:  # halted (diverged), or the rebuilt cache not ready yet
            refused += 1
            await asyncio.sleep(0.1)
            continue
        ids = {r.id for r in resp.results}
        assert ids <= new, f"a strong read mixed two histories: {sorted(ids)}"
        if ids == new:
            break
    assert refused > 0
    assert metric_value(query.http_address, "vecraft_replica_diverged_total", {"partition": PARTITION}) >= 1
    assert resp.consistency_info.index_version_used == 7
    assert query.alive()
