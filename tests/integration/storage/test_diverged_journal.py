"""A storage node whose journal lost or re-used offsets refuses to continue, loudly (issue 11, part 3).

Between two runs of the node the journal's data dir is replaced by another
history: shorter (the head is below what the node applied) or different (the
entry at the node's applied offset has another HLC). On main the node
resubscribed from its applied offset + 1 and silently mixed the two histories.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.integration.storage.harness import (
    JOURNAL,
    JOURNAL_ARGS,
    Writer,
    http_get,
    node_stub,
    search_request,
)
from tests.support.procs import ServiceProcess
from tests.unit.storage import payloads
from vecraft.shared.rpc.v1 import storage_pb2

pytestmark = pytest.mark.integration


async def _other_history(start_service: Callable[..., ServiceProcess], directory: Path, writes: int) -> None:
    """A journal data dir holding CREATE + ``writes`` writes of another collection incarnation."""
    other = start_service(JOURNAL, ["--data-dir", str(directory), *JOURNAL_ARGS], name="other-journal",
                          ready_timeout=60)
    w = Writer(other.grpc_address)
    s = payloads.schema(dim=4)
    await w.create(s)
    for i in range(writes):
        await w.write(s, [f"other{i}"], np.full((1, 4), i + 1.0))
    await w.client.close()
    other.stop()


@pytest.mark.parametrize(("writes", "expected"), [(1, "below offset 5"), (6, "re-used offsets")])
async def test_a_node_refuses_a_journal_whose_history_changed(
        start_service: Callable[..., ServiceProcess], start_node: Callable[..., ServiceProcess],
        journal: ServiceProcess, writer: Writer, tmp_path: Path, writes: int, expected: str) -> None:
    s = payloads.schema(dim=4)
    await writer.create(s)
    for i in range(4):
        await writer.write(s, [f"r{i}"], np.full((1, 4), i + 1.0))
    node = start_node()
    status = await node_stub(node).Status(storage_pb2.NodeStatusRequest())
    assert status.partitions[0].applied_offset == 5
    node.stop()

    await _other_history(start_service, tmp_path / "other", writes)
    journal.stop()
    journal.args[journal.args.index("--data-dir") + 1] = str(tmp_path / "other")
    journal.start()
    node.start(wait_ready=False)

    deadline = time.monotonic() + 30
    while 'vecraft_replica_diverged_total{partition="data-0"} 1.0' not in http_get(node, "/metrics")[1]:
        assert time.monotonic() < deadline, node.tail()
        time.sleep(0.1)
    assert http_get(node, "/readyz")[0] == 503
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await node_stub(node).Search(search_request(np.ones(4), 2))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "diverged" in (err.value.details() or "") and expected in (err.value.details() or "")
    assert "empty its --data-dir" in node.tail(200)  # the operator is told what to do
    time.sleep(0.5)
    status = await node_stub(node).Status(storage_pb2.NodeStatusRequest())
    assert status.partitions[0].applied_offset == 5  # nothing of the other history was applied
