"""One storage process hosting several shard replicas (shards 0 and 2 of a 3-shard collection).

Real journal and node processes over gRPC: each request names its shard and gets exactly that
shard's records (checked against ``shard_of``); a shard the node does not host is refused with
503 naming the hosted shards; ``ack=all`` counts each hosted replica; kill -9 and a restart keep
every acknowledged write; one hosted replica halting leaves the other answering; a data dir of
the single-shard version is moved into ``shard-<s>/`` at start.
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
    STORAGE,
    Writer,
    http_get,
    node_stub,
    search_request,
)
from tests.support.procs import ServiceProcess
from tests.unit.storage import payloads
from vecraft.shared.model.routing import shard_of
from vecraft.shared.rpc.v1 import journal_pb2, storage_pb2

pytestmark = pytest.mark.integration

DIM = 4
SHARDS = 3
HOSTED = (0, 2)


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


async def _write(writer: Writer, s: object, ids: list[str], ack: int = journal_pb2.ACK_JOURNAL,
                 seed: int = 0) -> journal_pb2.AppendResponse:
    payload = payloads.write(s, ids, _vectors(len(ids), seed),  # type: ignore[arg-type]
                             [{"i": i} for i in range(len(ids))])
    return await writer.append(payload, ack)


async def _scan_ids(node: ServiceProcess, shard: int | None, **kwargs: object) -> list[str]:
    req = storage_pb2.ShardScanRequest(collection="docs", limit=1000, **kwargs)  # type: ignore[arg-type]
    if shard is not None:
        req.shard = shard
    page = await node_stub(node).Scan(req)
    assert page.exhausted
    return [r.id for r in page.records]


def _of_shard(ids: list[str], shard: int) -> list[str]:
    return sorted(i for i in ids if shard_of(i, SHARDS) == shard)


async def test_each_request_reaches_its_shard_replica_and_acks_count_each_replica(
        start_node: Callable[..., ServiceProcess], writer: Writer) -> None:
    s = payloads.schema(dim=DIM, shards=SHARDS)
    await writer.create(s)
    node = start_node(shards="0,2")
    ids = [f"rec-{i}" for i in range(60)]
    acks = [await _write(writer, s, ids[i:i + 20], journal_pb2.ACK_ALL, seed=i) for i in range(0, 60, 20)]
    # ack=all is answered once both hosted replicas (<node>/shard-0, <node>/shard-2) applied the write.
    assert [(a.replicas_acked, a.replicas_expected) for a in acks] == [(2, 2)] * 3
    stub = node_stub(node)

    for shard in HOSTED:
        expected = _of_shard(ids, shard)
        assert expected and await _scan_ids(node, shard) == expected
        got = await stub.Get(storage_pb2.ShardGetRequest(collection="docs", ids=ids, shard=shard))
        assert sorted(r.id for r in got.records) == expected
        assert sorted(got.missing_ids) == sorted(set(ids) - set(expected))
        found = await stub.Search(search_request(_vectors(1, 99)[0], k=len(ids), shard=shard))
        assert found.shard == shard and sorted(r.id for r in found.results) == expected
        synced = await stub.Sync(storage_pb2.SyncRequest(partition="data-0", latest=True, shard=shard))
        assert synced.applied_offset == acks[-1].offset

    # Shard 1 lives elsewhere: 503 (a caller tries another replica), naming what this node hosts.
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Search(search_request(_vectors(1)[0], k=3, shard=1))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shard 1 is not hosted" in (err.value.details() or "")
    assert "hosts shards 0, 2" in (err.value.details() or "")
    # A request that names no shard is ambiguous on this node.
    for call in (stub.Search(search_request(_vectors(1)[0], k=3)),
                 stub.Get(storage_pb2.ShardGetRequest(collection="docs", ids=["rec-1"])),
                 stub.Scan(storage_pb2.ShardScanRequest(collection="docs", limit=10)),
                 stub.Sync(storage_pb2.SyncRequest(partition="data-0", latest=True))):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await call
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "hosts shards 0, 2; the request must name one" in (err.value.details() or "")

    status = await stub.Status(storage_pb2.NodeStatusRequest())
    assert status.node_id == "storage-node-0-2-r0" and status.ready and status.shard == 0
    assert [(r.shard, r.replica_id, r.ready) for r in status.replicas] == [
        (0, "storage-node-0-2-r0/shard-0", True), (2, "storage-node-0-2-r0/shard-2", True)]
    for r in status.replicas:
        assert r.partitions[0].applied_offset == acks[-1].offset
        assert [(c.collection, c.live_records) for c in r.collections] == [
            ("default/docs", len(_of_shard(ids, r.shard)))]
    assert status.partitions == status.replicas[0].partitions  # the top level: the first replica
    metrics = http_get(node, "/metrics")[1]
    for shard in HOSTED:
        assert (f'vecraft_storage_applied_offset{{partition="data-0",shard="{shard}"}} '
                f'{float(acks[-1].offset)}') in metrics
        assert (f'vecraft_storage_index_records{{collection="default/docs",shard="{shard}"}} '
                f'{float(len(_of_shard(ids, shard)))}') in metrics


async def test_kill_9_and_restart_keeps_every_acknowledged_write_on_each_replica(
        start_node: Callable[..., ServiceProcess], writer: Writer, tmp_path: Path) -> None:
    s = payloads.schema(dim=DIM, shards=SHARDS)
    await writer.create(s)
    node = start_node("n", "--snapshot-every-ops", "25", shards="0,2")
    ids: list[str] = []
    for batch in range(6):
        chunk = [f"k{batch}-{i}" for i in range(15)]
        ack = await _write(writer, s, chunk, journal_pb2.ACK_ALL, seed=batch)
        assert ack.replicas_acked == 2, ack
        ids += chunk
    deleted = ids[:10]
    delete = await writer.append(payloads.delete(s, deleted), journal_pb2.ACK_ALL)
    assert delete.replicas_acked == 2
    node.kill()

    # Each replica keeps its own files, in its own directory.
    assert sorted(p.name for p in (tmp_path / "n").iterdir()) == ["shard-0", "shard-2"]
    node.start()
    live = sorted(set(ids) - set(deleted))
    for shard in HOSTED:
        assert await _scan_ids(node, shard) == _of_shard(live, shard)


async def test_a_halted_replica_answers_503_while_the_other_keeps_answering(
        start_service: Callable[..., ServiceProcess], start_node: Callable[..., ServiceProcess],
        journal: ServiceProcess, writer: Writer, tmp_path: Path) -> None:
    """Shard 2's directory comes from another journal's history: that replica halts (diverged);
    shard 0 rebuilds from this journal and serves."""
    s = payloads.schema(dim=DIM, shards=SHARDS)
    await writer.create(s)
    ids = [f"h{i}" for i in range(30)]
    await _write(writer, s, ids)

    other = start_service(JOURNAL, ["--data-dir", str(tmp_path / "other-journal"), *JOURNAL_ARGS],
                          name="other-journal", ready_timeout=60)
    other_writer = Writer(other.grpc_address)
    await other_writer.create(s)
    for i in range(8):
        await _write(other_writer, s, [f"o{i}"], seed=i)
    await other_writer.client.close()
    prep = start_service(STORAGE, ["--data-dir", str(tmp_path / "prep"), "--journal-address",
                                   other.grpc_address, "--shards", "2"], name="prep", ready_timeout=120)
    prep.stop()
    other.stop()
    (tmp_path / "n").mkdir()
    (tmp_path / "prep" / "shard-2").rename(tmp_path / "n" / "shard-2")

    node = start_node("n", shards="0,2", wait_ready=False)
    deadline = time.monotonic() + 60
    while 'vecraft_replica_diverged_total{partition="data-0"} 1.0' not in http_get(node, "/metrics")[1]:
        assert time.monotonic() < deadline, node.tail()
        time.sleep(0.1)
    assert http_get(node, "/readyz")[0] == 503
    stub = node_stub(node)
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Search(search_request(_vectors(1)[0], k=3, shard=2))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "shard 2:" in (err.value.details() or "") and "diverged" in (err.value.details() or "")

    # Shard 0 answers, at the journal's head, with exactly its records.
    expected = _of_shard(ids, 0)
    assert await _scan_ids(node, 0, sync_latest=True) == expected
    found = await stub.Search(search_request(_vectors(1, 5)[0], k=len(ids), shard=0, sync_latest=True))
    assert sorted(r.id for r in found.results) == expected
    status = await stub.Status(storage_pb2.NodeStatusRequest())
    assert not status.ready
    by_shard = {r.shard: r for r in status.replicas}
    assert not by_shard[2].ready and "data-0" in by_shard[2].halted
    assert not by_shard[0].halted
    assert node.proc.poll() is None  # the process stays up to say why


async def test_a_single_shard_data_dir_is_moved_into_its_shard_directory(
        start_node: Callable[..., ServiceProcess], writer: Writer, tmp_path: Path) -> None:
    """A dir written by the single-shard node (files at its root) keeps serving after the upgrade."""
    s = payloads.schema(dim=DIM, shards=SHARDS)
    await writer.create(s)
    ids = [f"m{i}" for i in range(30)]
    await _write(writer, s, ids)
    legacy = tmp_path / "legacy"
    node = start_node("legacy", shards="2")
    node.stop()
    # Recreate the old layout: the shard's files at the data dir's root.
    for path in list((legacy / "shard-2").iterdir()):
        path.rename(legacy / path.name)
    (legacy / "shard-2").rmdir()
    assert (legacy / "locations.sqlite").exists()

    refused = start_node("legacy", shards="0,2", wait_ready=False)
    assert refused.proc is not None and refused.proc.wait(60) == 2, refused.tail()
    assert "holds shard 2 in the single-shard layout" in refused.tail(50)
    assert "start it once with --shards 2" in refused.tail(50)
    assert not (legacy / "shard-2").exists() and (legacy / "records.bin").exists()

    migrated = start_node("legacy", shards="2")
    assert "moved a single-shard data dir into the per-shard layout" in migrated.tail(200)
    assert sorted(p.name for p in legacy.iterdir()) == ["shard-2"]
    assert await _scan_ids(migrated, None) == _of_shard(ids, 2)
