"""Restart from snapshot + local replay, and a node with an empty disk, give the same answers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from tests.integration.storage.harness import Writer, node_stub, search_request
from tests.support.procs import ServiceProcess
from tests.support.ranking import assert_same_ranking
from tests.unit.storage import payloads
from vecraft.shared.rpc.v1 import journal_pb2, storage_pb2, storage_pb2_grpc

pytestmark = pytest.mark.integration

DIM = 16
# The compared nodes hold different HNSW graphs (a snapshot plus a replay, a rebuild from the
# journal: graph inserts are chunked by time, so builds differ). A beam far wider than k makes
# every walk find the exact top-k, so the answers may differ only in float rounding.
EF_SEARCH = 1000

Answer = list[tuple[str, float, str, str]]


async def _answers(stub: storage_pb2_grpc.StorageNodeServiceStub, queries: np.ndarray) -> list[Answer]:
    out: list[Answer] = []
    for i, q in enumerate(queries):
        flt = '{"group": {"$in": [1, 3]}}' if i % 2 else ""
        resp = await stub.Search(search_request(q, 10, filter_json=flt, ef_search=EF_SEARCH))
        out.append([(r.id, r.score, r.metadata_json, r.document) for r in resp.results])
    return out


def _assert_same_answers(got: list[Answer], want: list[Answer]) -> None:
    """Scores within a float tolerance, ids ranked alike except inside ties, the same records."""
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_same_ranking([r[0] for r in g], [r[1] for r in g], [r[0] for r in w], [r[1] for r in w])
        assert {r[0]: r[2:] for r in g} == {r[0]: r[2:] for r in w}


async def _everything(stub: storage_pb2_grpc.StorageNodeServiceStub, ids: list[str]) -> dict[str, tuple]:
    got = await stub.Get(storage_pb2.ShardGetRequest(collection="docs", ids=ids, include_vectors=True))
    return {r.id: (r.vector, r.metadata_json, r.document, r.offset) for r in got.records}


async def test_restart_and_empty_disk_rebuild_give_the_same_answers(
        start_node: Callable[..., ServiceProcess], writer: Writer) -> None:
    node = start_node("a", "--snapshot-every-ops", "1500", "--snapshot-every-s", "0")
    stub = node_stub(node)
    s = payloads.schema(dim=DIM, metric="ip")
    await writer.create(s)
    rng = np.random.default_rng(11)
    all_ids: list[str] = []
    for batch in range(12):
        ids = [f"x{batch}-{i}" for i in range(200)]
        all_ids += ids
        await writer.write(s, ids, rng.standard_normal((200, DIM)), [{"group": i % 5} for i in range(200)],
                           [f"doc {i}" for i in ids], ack=journal_pb2.ACK_ALL)
    # After the snapshot (taken past 1500 applied records): upserts and deletes the
    # restart must re-apply from the local record file.
    await writer.write(s, all_ids[:150], rng.standard_normal((150, DIM)), [{"group": 1}] * 150)
    last = await writer.delete(s, all_ids[150:300])
    queries = rng.standard_normal((12, DIM)).astype(np.float32)
    await stub.Sync(storage_pb2.SyncRequest(partition="data-0", target_offset=last))
    before = await _answers(stub, queries)
    state_before = await _everything(stub, all_ids)
    assert len(state_before) == len(all_ids) - 150

    node.kill()  # no shutdown snapshot: the restart must replay rows after the periodic one
    node.start()
    log = node.tail(200).split("--- start")[-1]  # this start only
    assert '"from_snapshot":true' in log and '"replayed_rows":0' not in log
    stub = node_stub(node)
    status = await stub.Status(storage_pb2.NodeStatusRequest())
    assert status.partitions[0].applied_offset == last
    _assert_same_answers(await _answers(stub, queries), before)
    assert await _everything(stub, all_ids) == state_before

    fresh = start_node("b")  # empty data dir: rebuilds from the journal
    fresh_stub = node_stub(fresh)
    assert (await fresh_stub.Status(storage_pb2.NodeStatusRequest())).partitions[0].applied_offset == last
    _assert_same_answers(await _answers(fresh_stub, queries), before)
    assert await _everything(fresh_stub, all_ids) == state_before
