"""A real storage node compacts its record file under an upsert-heavy workload and collects tombstone
rows; every record reads back the same before and after a kill -9 and a restart."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.storage.harness import Writer, http_get, node_stub, search_request
from tests.support.procs import ServiceProcess
from tests.support.waits import until
from tests.unit.storage import rewrites
from vecraft.services.storage_node.record_compaction import record_files
from vecraft.shared.rpc.v1 import journal_pb2, storage_pb2, storage_pb2_grpc

pytestmark = pytest.mark.integration

IDS = 2000


def _metric(node: ServiceProcess, name: str) -> float:
    """The value of ``name`` for shard 0 on ``node`` (0 when absent)."""
    status, text = http_get(node, "/metrics")
    assert status == 200
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and dict(sample.labels) == {"shard": "0"}:
                return float(sample.value)
    return 0.0


async def _check_every_record(stub: storage_pb2_grpc.StorageNodeServiceStub,
                              expected: dict[str, tuple[int, int]]) -> None:
    """Get of every id answers the round and entry offset of its last write; deleted ids are missing."""
    ids = [rewrites.rid(n) for n in range(IDS)]
    got = await stub.Get(storage_pb2.ShardGetRequest(collection="docs", ids=ids, include_vectors=True,
                                                     sync_latest=True))
    assert sorted(got.missing_ids) == sorted(set(ids) - set(expected))
    seen = {}
    for rec in got.records:
        round_ = rewrites.check(rec.id, np.frombuffer(rec.vector, "<f4"), rec.metadata_json, rec.document)
        seen[rec.id] = (round_, rec.offset)
    assert seen == expected


async def test_rewrites_are_compacted_tombstones_collected_and_a_kill_9_loses_nothing(
        start_node: Callable[..., ServiceProcess], writer: Writer, tmp_path: Path) -> None:
    node = start_node("a", "--compact-dead-fraction", "0.5", "--compact-min-dead-bytes", "0",
                      "--snapshot-every-ops", "3000", "--snapshot-every-s", "0")
    stub = node_stub(node)
    s = rewrites.schema()
    await writer.create(s)
    expected: dict[str, tuple[int, int]] = {}

    async def round_(ids: range, number: int) -> int:
        for start in range(ids.start, ids.stop, rewrites.CHUNK):
            chunk = range(start, min(ids.stop, start + rewrites.CHUNK))
            record_ids, vectors, metas, docs = rewrites.round_rows(chunk, number)
            offset = await writer.write(s, record_ids, vectors, metas, docs, ack=journal_pb2.ACK_ALL)
            expected.update({rid: (number, offset) for rid in record_ids})
        return offset

    for number in range(1, 9):
        await round_(range(IDS), number)
    doomed = [rewrites.rid(n) for n in range(200)]
    await writer.delete(s, doomed)
    for rid in doomed:
        del expected[rid]
    # Enough writes after the delete for a snapshot (every 3000 records) to cover it.
    for number in range(9, 12):
        await round_(range(1000, IDS), number)
    await _check_every_record(stub, expected)

    await until(lambda: _metric(node, "vecraft_storage_compactions_total") >= 1
                and _metric(node, "vecraft_storage_tombstones_collected_total") >= 200, timeout=60)
    assert _metric(node, "vecraft_storage_compaction_reclaimed_bytes_total") > 0
    status = await stub.Status(storage_pb2.NodeStatusRequest())
    assert (status.collections[0].live_records, status.collections[0].deleted_records) == (IDS - 200, 0)
    shard_dir = tmp_path / "a" / "shard-0"
    files = record_files(shard_dir)
    assert len(files) == 1 and files[0].name != "records.bin"
    # What is on disk: about the live data (1800 records of ~200 bytes; compacted once half is dead),
    # not 19,000 versions of them.
    assert _metric(node, "vecraft_storage_record_file_bytes") < 4 * (IDS - 200) * 200
    await _check_every_record(stub, expected)
    query = np.ones(rewrites.DIM, dtype=np.float32)
    # A beam wider than the collection: exact answers whatever the graph.
    before = [r.id for r in (await stub.Search(search_request(query, 10, ef_search=4000))).results]

    node.kill()
    node.start()
    stub = node_stub(node)
    await _check_every_record(stub, expected)
    assert [r.id for r in (await stub.Search(search_request(query, 10, ef_search=4000))).results] == before
    await round_(range(0, 100), 12)  # deleted ids written again, after the collection
    await _check_every_record(stub, expected)
