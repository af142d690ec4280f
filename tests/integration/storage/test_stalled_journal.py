"""A storage node whose journal stops answering (SIGSTOP: connections stay open, nothing replies).

Reads that must sync first (``sync_latest``, a ``min_offset`` ahead, or a collection the node
does not know yet) end within their budget, ``timeout_ms`` or the caller's gRPC deadline,
with DEADLINE_EXCEEDED, never waiting for the journal client's own per-verb deadlines;
a read that needs no sync answers from the index meanwhile, and once the journal answers
again so do the syncing reads.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import grpc
import numpy as np
import pytest

from tests.integration.storage.harness import Writer, node_stub, search_request
from tests.support.procs import ServiceProcess
from tests.unit.storage import payloads
from vecraft.shared.rpc.v1 import journal_pb2, storage_pb2

pytestmark = pytest.mark.integration
DIM = 8
#: A hang detector only (the budgets below are half a second); a busy machine stays far inside it.
BOUND_S = 30.0


async def _deadline_exceeded(call: object) -> float:
    began = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED, err.value
    return time.monotonic() - began


async def test_syncing_reads_end_within_their_budget(start_node: Callable[..., ServiceProcess],
                                                     journal: ServiceProcess, writer: Writer) -> None:
    node = start_node()
    stub = node_stub(node)
    s = payloads.schema(dim=DIM, metric="l2")
    await writer.create(s)
    vectors = np.random.default_rng(3).standard_normal((20, DIM)).astype(np.float32)
    ack = await writer.append(payloads.write(s, [f"r{i}" for i in range(20)], vectors),
                              ack=journal_pb2.ACK_ALL)
    assert ack.replicas_acked == 1

    os.kill(journal.pid, signal.SIGSTOP)
    try:
        # Search and Scan carry timeout_ms and no gRPC deadline: the node's budget must end them.
        elapsed = await _deadline_exceeded(stub.Search(search_request(vectors[0], 3, sync_latest=True,
                                                                      timeout_ms=500)))
        assert elapsed < BOUND_S
        elapsed = await _deadline_exceeded(stub.Scan(storage_pb2.ShardScanRequest(
            collection="docs", limit=10, min_offset=ack.offset + 5, timeout_ms=500)))
        assert elapsed < BOUND_S
        # A collection the node does not know makes it sync every partition first: within budget too.
        elapsed = await _deadline_exceeded(stub.Search(storage_pb2.ShardSearchRequest(
            collection="later", vector=vectors[0].tobytes(), k=3, sync_latest=True, timeout_ms=500)))
        assert elapsed < BOUND_S
        # Get has no timeout_ms: the caller's gRPC deadline is its budget.
        elapsed = await _deadline_exceeded(stub.Get(storage_pb2.ShardGetRequest(
            collection="docs", ids=["r1"], sync_latest=True), timeout=0.5))
        assert elapsed < BOUND_S
        # No sync needed: the index answers while the journal is stopped.
        hit = await stub.Search(search_request(vectors[4], 1), timeout=BOUND_S)
        assert hit.results[0].id == "r4" and hit.index_version >= ack.offset
    finally:
        os.kill(journal.pid, signal.SIGCONT)

    # The failed reads left nothing behind: syncing reads answer as soon as the journal does.
    strong = await stub.Search(search_request(vectors[7], 1, sync_latest=True, timeout_ms=20_000),
                               timeout=BOUND_S)
    assert strong.results[0].id == "r7" and strong.index_version >= ack.offset
    got = await stub.Get(storage_pb2.ShardGetRequest(collection="docs", ids=["r2"], sync_latest=True),
                         timeout=BOUND_S)
    assert [r.id for r in got.records] == ["r2"]
