"""A real storage node rebuilds a collection's index once deletes pass --optimize-threshold: the rebuild
shows on /metrics, searches stay exact meanwhile and after, and a restart answers the same."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.storage.harness import Writer, http_get, node_stub, search_request
from tests.support.procs import ServiceProcess
from tests.support.ranking import assert_same_ranking
from tests.support.waits import until
from tests.unit.storage import payloads
from vecraft.shared.rpc.v1 import journal_pb2, storage_pb2, storage_pb2_grpc

pytestmark = pytest.mark.integration

DIM = 16
# A beam far wider than the collection: every walk finds the exact top-k, whatever the graph.
EF_SEARCH = 2000
LABELS = {"shard": "0", "collection": "default/docs"}
#: id -> (vector, metadata "group") of the rows the node should hold.
Rows = dict[str, tuple[np.ndarray, int]]


def _metric(node: ServiceProcess, name: str) -> float:
    """The value of ``name`` for shard 0's docs collection on ``node`` (0 when absent)."""
    status, text = http_get(node, "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and dict(sample.labels) == LABELS:
                return float(sample.value)
    return 0.0


async def _search(stub: storage_pb2_grpc.StorageNodeServiceStub, query: np.ndarray,
                  flt: str = "") -> tuple[list[str], list[float]]:
    resp = await stub.Search(search_request(query, 10, filter_json=flt, ef_search=EF_SEARCH))
    return [r.id for r in resp.results], [r.score for r in resp.results]


def _brute(rows: Rows, query: np.ndarray,
           group: int | None = None) -> tuple[list[str], list[float]]:
    scores = {i: float(np.dot(v, query)) for i, (v, g) in rows.items() if group is None or g == group}
    top = sorted(scores, key=lambda i: -scores[i])[:10]
    return top, [scores[i] for i in top]


async def _assert_exact(stub: storage_pb2_grpc.StorageNodeServiceStub, rows: Rows,
                        queries: np.ndarray) -> None:
    for i, query in enumerate(queries):
        group = 2 if i % 2 else None
        got = await _search(stub, query, '{"group": 2}' if group is not None else "")
        want = _brute(rows, query, group)
        assert_same_ranking(got[0], got[1], want[0], want[1])


async def test_deletes_past_the_threshold_rebuild_the_index_and_a_restart_answers_the_same(
        start_node: Callable[..., ServiceProcess], writer: Writer) -> None:
    node = start_node("a", "--optimize-threshold", "0.3", "--snapshot-every-ops", "2000",
                      "--snapshot-every-s", "0")
    stub = node_stub(node)
    s = payloads.schema(dim=DIM, metric="ip")
    await writer.create(s)
    rng = np.random.default_rng(21)
    rows: Rows = {}
    for batch in range(15):
        ids = [f"d{batch}-{i}" for i in range(200)]
        vectors = rng.standard_normal((200, DIM)).astype(np.float32)
        await writer.write(s, ids, vectors, [{"group": i % 4} for i in range(200)], ack=journal_pb2.ACK_ALL)
        rows.update({id_: (v, i % 4) for i, (id_, v) in enumerate(zip(ids, vectors, strict=True))})
    queries = rng.standard_normal((8, DIM)).astype(np.float32)
    await _assert_exact(stub, rows, queries)
    assert _metric(node, "vecraft_storage_index_rebuilds_total") == 0.0

    # Delete 1,716 of 3,000 rows: 57 % of the graph is dead, past 0.3 and past 1000 dead nodes.
    doomed = [id_ for j, id_ in enumerate(rows) if j % 7 < 4]
    for start in range(0, len(doomed), 400):
        last = await writer.delete(s, doomed[start:start + 400])
    for id_ in doomed:
        del rows[id_]
    await stub.Sync(storage_pb2.SyncRequest(partition="data-0", target_offset=last))
    await _assert_exact(stub, rows, queries)  # during or before the rebuild: the same answers

    await until(lambda: _metric(node, "vecraft_storage_index_rebuilds_total") >= 1.0, timeout=60)
    assert _metric(node, "vecraft_storage_index_rebuild_dropped_rows_total") >= 1700
    assert _metric(node, "vecraft_storage_index_dead_ratio") < 0.3
    await _assert_exact(stub, rows, queries)

    # Writes after the rebuild reach the new index; then a kill -9 and a restart (snapshot + replay).
    extra = [f"late-{i}" for i in range(50)]
    vectors = rng.standard_normal((50, DIM)).astype(np.float32)
    await writer.write(s, extra, vectors, [{"group": 2}] * 50)
    rows.update({id_: (v, 2) for id_, v in zip(extra, vectors, strict=True)})
    survivor = next(iter(rows))
    last = await writer.delete(s, [survivor])
    del rows[survivor]
    await stub.Sync(storage_pb2.SyncRequest(partition="data-0", target_offset=last))
    await _assert_exact(stub, rows, queries)
    before = [await _search(stub, q) for q in queries]

    assert "index rebuilt without its tombstones" in node.tail(400)
    node.kill()
    node.start()
    assert '"from_snapshot":true' in node.tail(200).split("--- start")[-1]
    stub = node_stub(node)
    status = await stub.Status(storage_pb2.NodeStatusRequest())
    assert status.partitions[0].applied_offset == last
    await _assert_exact(stub, rows, queries)
    for query, (ids, scores) in zip(queries, before, strict=True):
        got = await _search(stub, query)
        assert_same_ranking(got[0], got[1], ids, scores)
    got = await stub.Get(storage_pb2.ShardGetRequest(collection="docs", ids=list(rows)[:100] + doomed[:100]))
    assert sorted(r.id for r in got.records) == sorted(list(rows)[:100])
