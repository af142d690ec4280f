"""A real storage node fed by a real journal: visibility, pull-before-read, bad input."""

from __future__ import annotations

import asyncio
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

DIM = 16


async def test_upsert_and_delete_visible_in_search_and_get(start_node: Callable[..., ServiceProcess],
                                                          writer: Writer) -> None:
    node = start_node()
    stub = node_stub(node)
    s = payloads.schema(dim=DIM, metric="l2")
    await writer.create(s)
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((200, DIM)).astype(np.float32)
    ids = [f"r{i}" for i in range(200)]
    # ack=all: answered only once this replica has applied and reported it.
    metadata = [{"i": i, "even": i % 2 == 0} for i in range(200)]
    ack = await writer.append(payloads.write(s, ids, vectors, metadata, [f"doc {i}" for i in range(200)]),
                              ack=journal_pb2.ACK_ALL)
    assert ack.replicas_acked == 1, ack

    hit = await stub.Search(search_request(vectors[5], 3))
    assert hit.results[0].id == "r5" and hit.results[0].score == pytest.approx(0.0, abs=1e-4)
    assert hit.results[0].document == "doc 5" and '"i":5' in hit.results[0].metadata_json
    # Caught up: staleness is the age of the last head read (about one 100 ms poll), never a bare 0.
    assert hit.index_version >= ack.offset and 0 <= hit.staleness_ms < 2000

    filtered = await stub.Search(search_request(vectors[5], 10, filter_json='{"even": false}'))
    assert len(filtered.results) == 10 and all(int(r.id[1:]) % 2 == 1 for r in filtered.results)

    # Upsert moves r5; delete removes r6 and r7 - both visible at the version they were written.
    moved = vectors[5] + 100.0
    up = await writer.write(s, ["r5"], moved[None, :], [{"i": 5, "moved": True}])
    dele = await writer.delete(s, ["r6", "r7"])
    near_old = await stub.Search(search_request(vectors[5], 5, min_offset=dele))
    assert near_old.index_version >= dele >= up
    assert "r5" not in [r.id for r in near_old.results]
    near_new = await stub.Search(search_request(moved, 1))
    assert near_new.results[0].id == "r5" and '"moved":true' in near_new.results[0].metadata_json
    for vector in (vectors[6], vectors[7]):
        found = await stub.Search(search_request(vector, 50))
        assert not {"r6", "r7"} & {r.id for r in found.results}

    got = await stub.Get(storage_pb2.ShardGetRequest(collection="docs", ids=["r5", "r6", "r9", "nope"],
                                                     include_vectors=True))
    assert [r.id for r in got.records] == ["r5", "r9"]
    assert sorted(got.missing_ids) == ["nope", "r6"]
    np.testing.assert_array_equal(np.frombuffer(got.records[0].vector, "<f4"), moved)
    assert got.records[0].offset == up and got.records[1].document == "doc 9"


async def test_sync_latest_beats_the_apply_delay(start_node: Callable[..., ServiceProcess],
                                                 writer: Writer) -> None:
    # Far longer than any step of this test takes on a loaded machine: the push stream cannot
    # deliver a write before the checks below that rely on it lagging.
    delay_ms = 120_000
    s = payloads.schema(dim=DIM)
    await writer.create(s)
    rng = np.random.default_rng(8)
    await writer.write(s, [f"a{i}" for i in range(50)], rng.standard_normal((50, DIM)))
    node = start_node("lagging", "--apply-delay-ms", str(delay_ms))  # ready = caught up by pulling
    stub = node_stub(node)

    newest = rng.standard_normal(DIM).astype(np.float32)
    offset = await writer.write(s, ["newest"], newest[None, :])  # ack=journal: the replica lags
    stale = await stub.Search(search_request(newest, 1))
    assert stale.index_version < offset and stale.results[0].id != "newest"

    began = time.perf_counter()
    synced = await stub.Sync(storage_pb2.SyncRequest(partition="data-0", latest=True))
    elapsed_ms = (time.perf_counter() - began) * 1000
    assert synced.pulled and synced.applied_offset >= offset
    # The push stream would deliver the entry only after delay_ms; the pull is not delayed.
    # (A bound on the wait, not a latency target: the pull may take seconds on a loaded machine.)
    assert elapsed_ms < delay_ms / 2, elapsed_ms
    fresh = await stub.Search(search_request(newest, 1))
    assert fresh.results[0].id == "newest" and fresh.index_version >= offset

    # sync_latest on the search itself, and min_offset on a get, do the same.
    offset2 = await writer.write(s, ["newest2"], (newest + 1)[None, :])
    strong = await stub.Search(search_request(newest + 1, 1, sync_latest=True))
    assert strong.sync_performed and strong.results[0].id == "newest2"
    offset3 = await writer.write(s, ["newest3"], newest[None, :], documents=["third"])
    got = await stub.Get(storage_pb2.ShardGetRequest(collection="docs", ids=["newest3"], min_offset=offset3))
    assert got.records[0].document == "third" and got.index_version >= offset3 > offset2

    # Many concurrent syncs coalesce into pulls and all see the write.
    # (A vector of its own: HNSW need not return every one of several identical vectors.)
    fourth = (newest - 1)[None, :]
    offset4 = await writer.write(s, ["newest4"], fourth)
    answers = await asyncio.gather(*(stub.Search(search_request(fourth[0], 1, min_offset=offset4))
                                     for _ in range(8)))
    assert [a.index_version >= offset4 for a in answers] == [True] * 8, [a.index_version for a in answers]
    assert [a.results[0].id for a in answers] == ["newest4"] * 8


async def test_bad_input_is_refused_and_leaves_the_node_unharmed(start_node: Callable[..., ServiceProcess],
                                                                 writer: Writer) -> None:
    node = start_node()
    stub = node_stub(node)
    s = payloads.schema(dim=DIM)
    await writer.create(s)
    rng = np.random.default_rng(9)
    vectors = rng.standard_normal((30, DIM)).astype(np.float32)
    await writer.write(s, [f"b{i}" for i in range(30)], vectors, ack=journal_pb2.ACK_ALL)
    good = search_request(vectors[0], 3)

    async def refused(request: storage_pb2.ShardSearchRequest, code: grpc.StatusCode, text: str) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Search(request)
        assert info.value.code() == code, info.value.details()
        assert text in info.value.details()

    bad = grpc.StatusCode.INVALID_ARGUMENT
    await refused(search_request(vectors[0][:7], 3), bad, f"dimension 7, collection 'docs' expects {DIM}")
    await refused(storage_pb2.ShardSearchRequest(collection="docs", vector=b"\x00" * 10, k=3), bad, "float32")
    await refused(search_request(vectors[0], 0), bad, "k must be between 1 and 1024, got 0")
    await refused(search_request(vectors[0], 5000), bad, "got 5000")
    await refused(search_request(np.full(DIM, np.nan), 3), bad, "finite")
    await refused(search_request(vectors[0], 3, filter_json="{not json"), bad, "not valid JSON")
    await refused(search_request(vectors[0], 3, filter_json='{"i": {"$near": 1}}'), bad, "$near")
    await refused(search_request(vectors[0], 3, filter_json="[1, 2]"), bad, "JSON object")
    await refused(search_request(vectors[0], 3, ef_search=-4), bad, "ef_search")
    await refused(storage_pb2.ShardSearchRequest(collection="nope", vector=good.vector, k=3),
                  grpc.StatusCode.NOT_FOUND, "nope")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Sync(storage_pb2.SyncRequest(partition="data-9", latest=True))
    assert info.value.code() == bad
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Search(search_request(vectors[0], 3, min_offset=10_000))
    assert info.value.code() == bad and "beyond the head" in info.value.details()

    after = await stub.Search(good)
    assert after.results[0].id == "b0" and len(after.results) == 3
    status = await stub.Status(storage_pb2.NodeStatusRequest())
    assert status.ready and status.collections[0].live_records == 30
    assert node.alive()
