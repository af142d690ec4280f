"""A storage node follows the meta manager's placement map (real journal, meta manager and node).

Started with ``--shards 0``, the node loads shard 1 when a map gives it shards 0 and 1 (the records
written to shard 1 before are readable from it), registers ``shards`` [0, 1] once caught up, drops
shard 0 when a map takes it away (503 ShardNotHosted, files kept) and serves its old records again
when it comes back. While the meta manager is down it keeps serving what it hosts; it follows the
map again once the meta manager is back, and a restart hosts the map's shards, not the flag's.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.integration.storage.harness import Placer, Writer, http_get, node_stub, registered, search_request
from tests.support.procs import ServiceProcess
from tests.support.waits import until
from tests.unit.storage import payloads
from vecraft.clients.meta import MetaClient
from vecraft.shared.model.routing import shard_of
from vecraft.shared.rpc.v1 import journal_pb2, meta_pb2, storage_pb2

pytestmark = pytest.mark.integration

DIM = 4
SHARDS = 2
NODE = "node-a"
#: A hang detector only: every wait below ends on the condition it checks.
WAIT_S = 60.0


@pytest.fixture
def start_placed_node(start_node: Callable[..., ServiceProcess],
                      meta: ServiceProcess) -> Callable[..., ServiceProcess]:
    def _start(*extra: str) -> ServiceProcess:
        return start_node(NODE, "--meta-address", meta.grpc_address, "--node-id", NODE, *extra, shards="0")
    return _start


async def _registered(meta: MetaClient, shards: list[int]) -> meta_pb2.NodeInfo:
    """The node's registry entry once it serves exactly ``shards`` and loads nothing."""
    return await registered(meta, NODE, shards, WAIT_S)


def _health(node: ServiceProcess) -> dict:
    status, body = http_get(node, "/healthz")
    assert status == 200, body
    return json.loads(body)


async def _scan(node: ServiceProcess, shard: int, **kwargs: object) -> list[str]:
    page = await node_stub(node).Scan(storage_pb2.ShardScanRequest(collection="docs", limit=1000, shard=shard,
                                                                   **kwargs))  # type: ignore[arg-type]
    assert page.exhausted
    return [r.id for r in page.records]


def _of_shard(ids: list[str], shard: int) -> list[str]:
    return sorted(i for i in ids if shard_of(i, SHARDS) == shard)


async def _write(writer: Writer, ids: list[str],
                 ack: int = journal_pb2.ACK_JOURNAL) -> journal_pb2.AppendResponse:
    s = payloads.schema(dim=DIM, shards=SHARDS)
    vectors = np.random.default_rng(len(ids)).standard_normal((len(ids), DIM)).astype(np.float32)
    return await writer.append(payloads.write(s, ids, vectors), ack)


async def test_a_node_loads_and_drops_the_shards_the_map_gives_it(
        start_placed_node: Callable[..., ServiceProcess], meta_client: MetaClient, writer: Writer,
        tmp_path: Path) -> None:
    await writer.create(payloads.schema(dim=DIM, shards=SHARDS))
    before = [f"b{i}" for i in range(40)]
    await _write(writer, before)
    node = start_placed_node()
    await _registered(meta_client, [0])  # no map yet: the flag's shards
    assert await _scan(node, 0) == _of_shard(before, 0)
    placer = Placer(meta_client)

    # (a) A map gives the node shards 0 and 1: it loads shard 1, with what was written to it before.
    await placer.place({0: [NODE], 1: [NODE]})
    info = await _registered(meta_client, [0, 1])
    assert list(info.local_shards) == [0, 1]
    assert await _scan(node, 1) == _of_shard(before, 1)
    got = await node_stub(node).Get(storage_pb2.ShardGetRequest(collection="docs", ids=before, shard=1))
    assert sorted(r.id for r in got.records) == _of_shard(before, 1)
    # The loaded replica acknowledges writes under its own journal replica id.
    after = ["c0", "c1", "c2", "c3"]
    ack = await _write(writer, after, journal_pb2.ACK_ALL)
    assert (ack.replicas_acked, ack.replicas_expected) == (2, 2)
    health = _health(node)
    assert health["placement_version"] == 1 and health["shards"] == [0, 1]
    assert [(r["shard"], r["replica_id"], r["state"]) for r in health["replicas"]] == [
        (0, f"{NODE}/shard-0", "serving"), (1, f"{NODE}/shard-1", "serving")]
    assert all(r["lag_ops"] == 0 for r in health["replicas"])

    # (b) A map takes shard 0 away: 503 for it, the registry shows [1], its files stay.
    await placer.place({0: ["node-elsewhere"], 1: [NODE]})
    info = await _registered(meta_client, [1])
    assert list(info.local_shards) == [0, 1]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await node_stub(node).Search(search_request(np.ones(DIM), 3, shard=0))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shard 0 is not hosted" in (err.value.details() or "")
    # The registry changes when the replica stops serving; its snapshot and close follow.
    await until(lambda: _health(node)["hosting"]["changing"] is None, WAIT_S)
    assert (tmp_path / NODE / "shard-0" / "locations.sqlite").exists()
    assert (tmp_path / NODE / "shard-0" / "snapshot" / "manifest.json").exists()  # the drop's snapshot
    health = _health(node)
    assert health["local_shards"] == [0, 1] and [r["shard"] for r in health["replicas"]] == [1]
    while_away = [f"w{i}" for i in range(20)]
    await _write(writer, while_away)

    # Shard 0 comes back: its old records from its files, what it missed from the journal.
    await placer.place({0: [NODE], 1: [NODE]})
    await _registered(meta_client, [0, 1])
    assert await _scan(node, 0) == _of_shard([*before, *after, *while_away], 0)
    assert http_get(node, "/readyz")[0] == 200


async def test_the_node_keeps_serving_without_the_meta_manager_and_follows_it_again(
        start_placed_node: Callable[..., ServiceProcess], meta: ServiceProcess, meta_client: MetaClient,
        writer: Writer) -> None:
    await writer.create(payloads.schema(dim=DIM, shards=SHARDS))
    ids = [f"r{i}" for i in range(30)]
    await _write(writer, ids)
    node = start_placed_node()
    placer = Placer(meta_client)
    await placer.place({0: [NODE], 1: [NODE]})
    await _registered(meta_client, [0, 1])

    # (c) The meta manager stops: the node keeps serving both shards, writes included.
    meta.stop()
    more = [f"m{i}" for i in range(10)]
    ack = await _write(writer, more, journal_pb2.ACK_ALL)
    assert ack.replicas_acked == 2
    for shard in (0, 1):
        assert await _scan(node, shard, sync_latest=True) == _of_shard([*ids, *more], shard)
    assert http_get(node, "/readyz")[0] == 200

    # Back: the node registers again and follows the next map (its watch reconnected).
    meta.start()
    await _registered(meta_client, [0, 1])
    await placer.place({1: [NODE]})
    await _registered(meta_client, [1])

    # A restart hosts the map's shards from the start, not the flag's (--shards 0).
    node.stop()
    node.start()
    assert [r["shard"] for r in _health(node)["replicas"]] == [1]
    assert await _scan(node, 1) == _of_shard([*ids, *more], 1)
    await _registered(meta_client, [1])
