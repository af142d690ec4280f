"""``CopyShard`` from a real storage node: the streamed checkpoint, written and checked by the seeding
side, opens as another node's replica with every record; the serving node's staging directory is gone
after the stream, also after a stream cancelled half-way; a shard not served is refused (UNAVAILABLE)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.integration.storage.harness import Writer, node_stub
from tests.support.procs import ServiceProcess
from tests.support.waits import until
from tests.unit.storage import payloads
from vecraft.services.storage_node.peer_seeding import write_copy
from vecraft.shared.rpc.v1 import storage_pb2

pytestmark = pytest.mark.integration

DIM = 16


def _checkpoints(shard_dir: Path) -> list[Path]:
    return list(shard_dir.glob(".checkpoint-*"))


async def test_a_copied_shard_opens_on_another_node_and_the_server_keeps_no_staging(
        start_node: Callable[..., ServiceProcess], writer: Writer, tmp_path: Path) -> None:
    node = start_node("a")
    stub = node_stub(node)
    s = payloads.schema(dim=DIM, metric="l2")
    await writer.create(s)
    rng = np.random.default_rng(5)
    ids = [f"x{i}" for i in range(3000)]
    vectors = rng.standard_normal((len(ids), DIM)).astype(np.float32)
    for i in range(0, len(ids), 500):
        last = await writer.write(s, ids[i:i + 500], vectors[i:i + 500], documents=["d" * 300] * 500)
    await stub.Sync(storage_pb2.SyncRequest(partition="data-0", target_offset=last))
    served = tmp_path / "a" / "shard-0"

    # Cancelled after the header and one chunk: the serving node deletes its checkpoint anyway.
    call = stub.CopyShard(storage_pb2.CopyShardRequest(shard=0))
    stream = call.__aiter__()
    header = await stream.__anext__()
    assert header.files and not header.data
    assert (await stream.__anext__()).data
    assert _checkpoints(served)
    call.cancel()
    await until(lambda: not _checkpoints(served), 10)

    seeded = tmp_path / "b" / "shard-0"
    copy = await write_copy(stub.CopyShard(storage_pb2.CopyShardRequest(shard=0)), seeded)
    assert copy.applied["data-0"][0] >= last
    assert copy.bytes > 1 << 20  # the record file came in more than one chunk
    assert {"records.bin", "locations.sqlite"} <= {p.name for p in seeded.iterdir()}
    assert not _checkpoints(served)

    other = node_stub(start_node("b"))
    got = await other.Get(storage_pb2.ShardGetRequest(collection="docs", ids=ids, include_vectors=True))
    assert len(got.records) == len(ids)
    by_id = {r.id: np.frombuffer(r.vector, "<f4") for r in got.records}
    np.testing.assert_array_equal(np.stack([by_id[i] for i in ids]), vectors)

    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async for _chunk in stub.CopyShard(storage_pb2.CopyShardRequest(shard=3)):
            pass
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
