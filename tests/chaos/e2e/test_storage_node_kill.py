"""kill -9 of one storage node of a real ``vecraft up`` cluster (3 shards x 1 replica on 2 storage
nodes: storage-0 hosts shards 0 and 2, storage-1 shard 1), end to end.

Searches are served by the query processors, so they keep answering in full; reads by id go to
the storage node hosting the id's shard, so while it is down those of its shards fail with a clear
503 and the other shards' keep working. To hold the node down for as long as the checks take, the
supervisor (``vecraft up``) is paused with SIGSTOP around the kill; SIGCONT lets it notice the
exit and restart the node, which must then catch up: every write made while it was down is
readable from it, and its record count, record checksum, applied offset and search answers
match the journal and the query processors.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import httpx
import numpy as np
import orjson
import pytest

from tests.support.cluster import LocalCluster
from tests.support.e2e import checked_info, vec
from tests.support.ranking import assert_same_ranking
from vecraft.shared.model.routing import shard_of
from vecraft.shared.rpc.v1 import storage_pb2, storage_pb2_grpc

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(600)]
log = logging.getLogger(__name__)

SHARDS = 3
STORAGE_NODES = 2
#: The victim is the node hosting this shard (storage-1, which hosts only it).
VICTIM_SHARD = 1
COLL = "chaos"
DIM = 8
GROUPS = 10
#: The gateway's deadline of reads by id (its default) and the client's, a little above it:
#: a read that hangs past the deadline fails the test instead of answering late.
GATEWAY_DEADLINE_S = 10.0
HTTP_TIMEOUT_S = GATEWAY_DEADLINE_S + 5.0


class Model:
    """What the test wrote, per record id: the latest vector and metadata, and deleted ids."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[list[float], dict[str, Any]]] = {}
        self.deleted: set[str] = set()
        self._seeds = iter(range(1, 1_000_000))

    def new(self, record_id: str, version: int) -> tuple[list[float], dict[str, Any]]:
        """A fresh vector and metadata for ``record_id``, remembered as its latest version."""
        n = int(record_id.rsplit("-", 1)[1])
        meta = {"grp": n % GROUPS, "shard": shard_of(record_id, SHARDS), "v": version}
        self.records[record_id] = (vec(next(self._seeds), DIM), meta)
        self.deleted.discard(record_id)
        return self.records[record_id]

    def delete(self, record_id: str) -> None:
        del self.records[record_id]
        self.deleted.add(record_id)

    def on_shard(self, shard: int) -> list[str]:
        return sorted(i for i in self.records if shard_of(i, SHARDS) == shard)

    def in_group(self, grp: int, shard: int | None = None) -> set[str]:
        return {i for i, (_, m) in self.records.items()
                if m["grp"] == grp and (shard is None or m["shard"] == shard)}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request drowns failures
    data_dir = tmp_path_factory.mktemp("e2e-kill") / "data"
    running = LocalCluster(data_dir, shards=SHARDS,
                           extra_args=["--storage-nodes", str(STORAGE_NODES)]).start()
    try:
        yield running
    finally:
        assert running.proc is not None
        os.kill(running.proc.pid, signal.SIGCONT)  # never leave the supervisor paused
        assert running.stop() == 0, running.tail()


@contextlib.contextmanager
def supervisor_paused(cluster: LocalCluster) -> Iterator[None]:
    """SIGSTOP ``vecraft up`` for the block, so a service killed inside it stays down."""
    assert cluster.proc is not None
    os.kill(cluster.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(cluster.proc.pid, signal.SIGCONT)


@contextlib.asynccontextmanager
async def storage_stub(address: str) -> AsyncIterator[storage_pb2_grpc.StorageNodeServiceStub]:
    """A gRPC stub of one storage node itself (not through the gateway)."""
    async with grpc.aio.insecure_channel(address) as channel:
        yield storage_pb2_grpc.StorageNodeServiceStub(channel)


async def put(client: httpx.AsyncClient, model: Model, record_id: str,
              version: int) -> tuple[dict[str, Any], int]:
    """Upsert ``record_id`` with a new version (default ack); the write answer and how many 429s
    it was refused with first.

    Retries 429s after their Retry-After, as the SDK does: for ``replica_liveness_ms`` (5 s) after
    a storage node dies the journal still counts its growing lag and applies back-pressure.
    """
    vector, meta = model.new(record_id, version)
    deadline = time.monotonic() + 60
    refused = 0
    while True:
        r = await client.put(f"/v1/vectors/{record_id}",
                             json={"collection": COLL, "vector": vector, "metadata": meta})
        if r.status_code != 429 or time.monotonic() > deadline:
            break
        refused += 1
        await asyncio.sleep(r.json()["error"]["details"]["retry_after_ms"] / 1000)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    return answer, refused


async def get(client: httpx.AsyncClient, record_id: str, level: str) -> httpx.Response:
    return await client.get(f"/v1/vectors/{record_id}",
                            params={"collection": COLL, "consistency_level": level})


def assert_record(r: httpx.Response, model: Model, record_id: str) -> None:
    """``r`` is a 200 read of ``record_id`` holding exactly its latest written version."""
    assert r.status_code == 200, (record_id, r.text)
    body = r.json()
    vector, meta = model.records[record_id]
    assert (body["id"], body["metadata"]) == (record_id, meta)
    # The gateway prints float32 values in their shortest form: compare as float32.
    assert np.array_equal(np.asarray(body["vector"], np.float32), np.asarray(vector, np.float32)), record_id


async def search_group(client: httpx.AsyncClient, grp: int, *, shard: int | None = None,
                       **extra: Any) -> httpx.Response:
    flt: dict[str, Any] = {"grp": grp} if shard is None else {"grp": grp, "shard": shard}
    return await client.post("/v1/vectors/search", json={
        "collection": COLL, "vector": vec(10_000 + grp, DIM), "k": 1024, "filters": flt, **extra})


async def journal_state(client: httpx.AsyncClient) -> tuple[int, dict[str, int]]:
    """The journal's head of ``data-0`` and, replayed from its entries, the offset of the latest
    write of every live record id of the collection."""
    live: dict[str, int] = {}
    offset, head = 1, 0
    while True:
        r = await client.get("/v1/journal/data-0", params={"from_offset": offset, "limit": 1000})
        assert r.status_code == 200, r.text
        page = r.json()
        head = page["latest_offset"]
        for entry in page["entries"]:
            for m in entry["summary"]["mutations"]:
                if m["collection"] != COLL or m["kind"] not in ("insert", "upsert", "delete"):
                    continue
                assert m["count"] == len(m["ids"]), "batches of this test list all their ids"
                for record_id in m["ids"]:
                    if m["kind"] == "delete":
                        live.pop(record_id, None)
                    else:
                        live[record_id] = entry["offset"]
        if not page["entries"] or page["next_offset"] > head:
            return head, live
        offset = page["next_offset"]


def digest(rows: list[tuple[str, int, bytes, str]]) -> str:
    """Checksum of (id, offset, float32 vector bytes, canonical metadata JSON) rows, in id order."""
    h = hashlib.sha256()
    for row in sorted(rows):
        h.update(orjson.dumps([row[0], row[1], row[2].hex(), row[3]]))
    return h.hexdigest()


def canonical(metadata_json: str) -> str:
    return orjson.dumps(orjson.loads(metadata_json), option=orjson.OPT_SORT_KEYS).decode()


def victim_node(cluster: LocalCluster) -> tuple[str, set[int]]:
    """Name of the storage node hosting VICTIM_SHARD, and every shard it hosts."""
    (row,) = [r for r in cluster.processes("storage") if VICTIM_SHARD in r["shards"]]
    return row["name"], set(row["shards"])


async def test_storage_node_killed_then_restarted_catches_up(cluster: LocalCluster) -> None:
    """kill -9 of the storage node hosting shard 1: while it is down, reads by id of its shards
    fail with a 503 naming the shard (within the deadline), other shards' reads, writes and all
    searches (with and without allow_partial) keep answering in full; after ``vecraft up``
    restarts it, the node serves every write made while it was down (eventual and strong reads),
    and its live record count, record checksum, applied offset and filtered search answers for
    shard 1 equal the journal's and the query processors'."""
    model = Model()
    victim, hosted = await asyncio.to_thread(victim_node, cluster)
    assert hosted == {VICTIM_SHARD}, "the default placement puts shard 1 alone on storage-1"
    async with httpx.AsyncClient(base_url=cluster.endpoint, timeout=HTTP_TIMEOUT_S) as client:
        r = await client.post("/v1/collections", json={"name": COLL, "dim": DIM, "metric": "l2"})
        assert r.status_code == 201, r.text

        # --- before: 200 records in two batches, then upserts and deletes on the victim's shard.
        for start in (0, 100):
            ids = [f"seed-{i}" for i in range(start, start + 100)]
            rows = [model.new(i, 0) for i in ids]
            r = await client.post("/v1/vectors/batch", json={"collection": COLL, "ids": ids, "vectors": [
                v for v, _ in rows], "metadatas": [m for _, m in rows]})
            assert r.status_code == 201, r.text
        victim_seeds = model.on_shard(VICTIM_SHARD)
        await asyncio.gather(*(put(client, model, i, 1) for i in victim_seeds[:10]))
        for i in victim_seeds[10:15]:
            model.delete(i)
        r = await client.post("/v1/vectors/delete", json={"collection": COLL, "ids": victim_seeds[10:15]})
        assert r.status_code == 200 and r.json()["deleted_ids"] == victim_seeds[10:15], r.text
        # LocalCluster's status calls run their own event loop: call them from a thread.
        before = await asyncio.to_thread(cluster.process, victim)

        # --- down: the supervisor is paused, so the killed node stays down.
        with supervisor_paused(cluster):
            old_pid = await asyncio.to_thread(cluster.kill, victim)
            down_ids = [f"down-{i}" for i in range(60)]
            answers = await asyncio.gather(*(put(client, model, i, 2) for i in down_ids),
                                           *(put(client, model, i, 2) for i in victim_seeds[15:25]))
            assert all(a["offset"] > 0 for a, _ in answers)
            victim_ids = [i for i in [*down_ids, *victim_seeds] if shard_of(i, SHARDS) in hosted]
            other_ids = [i for i in [*down_ids, *model.records] if shard_of(i, SHARDS) not in hosted]
            assert victim_ids and other_ids

            for level in ("eventual", "strong"):
                # A read that hung past the deadline fails here with the client's ReadTimeout.
                reads = await asyncio.gather(*(get(client, i, level) for i in victim_ids[:20]))
                for record_id, read in zip(victim_ids[:20], reads, strict=True):
                    assert read.status_code == 503, read.text
                    error = read.json()["error"]
                    assert error["code"] == "unavailable", error
                    assert f"shard {shard_of(record_id, SHARDS)}" in error["message"], error
                reads = await asyncio.gather(*(get(client, i, level) for i in other_ids))
                for record_id, read in zip(other_ids, reads, strict=True):
                    assert_record(read, model, record_id)

            for grp in range(GROUPS):
                for extra in ({"consistency_level": "strong"}, {"consistency_level": "eventual"},
                              {"consistency_level": "strong", "allow_partial": True}):
                    resp = await search_group(client, grp, **extra)
                    info = checked_info(resp)
                    body = resp.json()
                    assert body["missing_shards"] == [], body
                    if extra["consistency_level"] == "strong":
                        assert {h["id"] for h in body["results"]} == model.in_group(grp), (grp, info)

        # --- back: vecraft up restarts the node, which catches up from the journal.
        resumed = time.monotonic()
        row = await asyncio.to_thread(cluster.wait_restarted, victim, old_pid)
        assert row["restarts"] > before["restarts"]
        deadline = time.monotonic() + 30
        while (r := await get(client, victim_ids[0], "eventual")).status_code == 503:
            # The gateway reconnects to the restarted node within its reconnect backoff (~1 s).
            assert time.monotonic() < deadline, r.text
            await asyncio.sleep(0.1)
        log.info("%d writes while down (%d refused first with 429); node serving again %.1f s after "
                 "the supervisor resumed", len(answers), sum(n for _, n in answers),
                 time.monotonic() - resumed)

        head, journal_live = await journal_state(client)
        assert set(journal_live) == set(model.records)
        expected = model.on_shard(VICTIM_SHARD)
        for level in ("eventual", "strong"):
            reads = await asyncio.gather(*(get(client, i, level) for i in expected))
            for record_id, read in zip(expected, reads, strict=True):
                assert_record(read, model, record_id)
                assert read.json()["offset"] == journal_live[record_id]
            for record_id in sorted(model.deleted):
                r = await get(client, record_id, level)
                assert r.status_code == 404, r.text

        async with storage_stub(row["grpc_address"]) as node:
            status = await node.Status(storage_pb2.NodeStatusRequest(), timeout=GATEWAY_DEADLINE_S)
            (replica,) = [r for r in status.replicas if r.shard == VICTIM_SHARD]
            applied = {p.partition: p.applied_offset for p in replica.partitions}
            assert applied["data-0"] == head, (applied, head)
            counts = {c.collection: c.live_records for c in replica.collections}
            assert counts[f"default/{COLL}"] == len(expected), counts

            got = await node.Get(storage_pb2.ShardGetRequest(
                collection=COLL, ids=expected, include_vectors=True, shard=VICTIM_SHARD),
                timeout=GATEWAY_DEADLINE_S)
            assert list(got.missing_ids) == []
            stored = digest([(rec.id, rec.offset, rec.vector, canonical(rec.metadata_json))
                             for rec in got.records])
            wanted = digest([(i, journal_live[i], np.asarray(model.records[i][0], "<f4").tobytes(),
                              canonical(orjson.dumps(model.records[i][1]).decode())) for i in expected])
            assert stored == wanted

            for grp in range(GROUPS):
                resp = await search_group(client, grp, shard=VICTIM_SHARD, consistency_level="strong")
                checked_info(resp)
                via_query = [(h["id"], h["score"]) for h in resp.json()["results"]]
                on_node = await node.Search(storage_pb2.ShardSearchRequest(
                    collection=COLL, vector=np.asarray(vec(10_000 + grp, DIM), "<f4").tobytes(), k=1024,
                    filter_json=orjson.dumps({"grp": grp, "shard": VICTIM_SHARD}).decode(), sync_latest=True,
                    shard=VICTIM_SHARD), timeout=GATEWAY_DEADLINE_S)
                # Two index builds in two processes: scores agree within float rounding, and
                # results whose scores tie within it may come in either order.
                assert_same_ranking([h.id for h in on_node.results], [h.score for h in on_node.results],
                                    [i for i, _ in via_query], [s for _, s in via_query])
                assert {i for i, _ in via_query} == model.in_group(grp, VICTIM_SHARD)
