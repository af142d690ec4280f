"""A storage node that cannot apply an entry stops loudly: not ready, a metric, 503 with the reason.

On main the follower caught the exception and resubscribed forever behind a
READY probe, and reads went on answering from the state before the entry.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

import grpc
import numpy as np
import pytest

from tests.integration.storage.harness import Writer, node_stub, search_request
from tests.support.procs import ServiceProcess
from tests.unit.storage import payloads

pytestmark = pytest.mark.integration


def _http(node: ServiceProcess, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://{node.http_address}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


async def test_an_entry_for_a_collection_never_created_halts_the_node(
        start_node: Callable[..., ServiceProcess], writer: Writer) -> None:
    s = payloads.schema(dim=4)
    await writer.create(s)
    await writer.write(s, ["a"], np.ones((1, 4)))
    node = start_node()
    assert _http(node, "/readyz")[0] == 200
    ghost = payloads.schema("ghost", dim=4)
    orphan = await writer.write(ghost, ["g"], np.ones((1, 4)))
    await writer.write(s, ["b"], np.ones((1, 4)))

    deadline = time.monotonic() + 20
    while _http(node, "/readyz")[0] == 200:
        assert time.monotonic() < deadline, "the node stayed ready"
        time.sleep(0.1)
    _status, metrics = _http(node, "/metrics")
    assert 'vecraft_replica_halts_total{cause="apply_failed",partition="data-0"} 1.0' in metrics
    assert "vecraft_replica_halted_state" in metrics
    stub = node_stub(node)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Search(search_request(np.ones(4), 2))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "halted" in (err.value.details() or "") and "never saw created" in (err.value.details() or "")
    health = _http(node, "/healthz")[1]
    assert f"data-0:{orphan}" in health  # /healthz names the entry it stopped at
    assert node.proc.poll() is None  # the process stays up to say why
