"""The meta manager is not on the data path (docs/consistency.md, "When the meta manager is down").

A real ``vecraft up`` cluster (2 shards); its meta manager process is

- stopped with SIGSTOP (it keeps its connections open and answers nothing), and
- killed with kill -9 while the supervisor is held (SIGSTOP) so it cannot restart it yet, then
  restarted by the supervisor once that is resumed, and
- killed with kill -9 under a running supervisor, with reads and writes going on meanwhile.

During each outage, writes (ack=all), deletes, searches at eventual, bounded, read_your_writes
and strong, reads by id and record listings all succeed from the gateway's cached schema, with
the answers a healthy cluster gives; DDL fails with 503 naming the meta manager (nothing
changed) and works again once the meta manager is back. Every stopped process is resumed in a
``finally``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.cluster import LocalCluster
from tests.support.e2e import vec
from vecraft.clients.journal import JournalClient
from vecraft.services.api_gateway.journal_router import payloads
from vecraft.shared.model.records import RecordBatch
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DIM = 8
#: Far longer than any answer takes on a loaded machine; a hung call fails the test, it never
#: decides what the test checks.
HTTP_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("e2e-meta-outage") / "data"
    running = LocalCluster(data_dir, shards=2).start()
    yield running
    assert running.stop() == 0, running.tail()


@pytest.fixture(scope="module")
def http(cluster: LocalCluster) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=cluster.endpoint, timeout=HTTP_TIMEOUT_S) as client:
        yield client


@contextlib.contextmanager
def stopped(pid: int) -> Iterator[None]:
    """SIGSTOP ``pid`` for the block; SIGCONT it whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)


def _create(http: httpx.Client, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    resp = http.post("/v1/collections", json={"name": name, "dim": DIM, "metric": "l2"})
    assert resp.status_code == 201, resp.text
    return name


def _write(http: httpx.Client, coll: str, ids: list[str], seed: int) -> dict[str, Any]:
    resp = http.post("/v1/vectors/batch", json={
        "collection": coll, "ids": ids, "vectors": [vec(seed + i, DIM) for i in range(len(ids))],
        "metadatas": [{"tag": i} for i in ids], "ack": "all"}, headers={"X-Request-Id": uuid.uuid4().hex})
    assert resp.status_code == 201, resp.text
    answer: dict[str, Any] = resp.json()
    assert answer["replicas_acked"] == answer["replicas_expected"], answer
    return answer


def _search(http: httpx.Client, coll: str, level: str, ids: list[str], vector: list[float],
            **extra: Any) -> set[str]:
    """Search with a filter that leaves exactly ``ids`` as candidates; the ids found."""
    resp = http.post("/v1/vectors/search", json={
        "collection": coll, "vector": vector, "k": len(ids), "consistency_level": level,
        "filters": {"tag": {"$in": ids}}, **extra})
    assert resp.status_code == 200, (level, resp.text)
    assert resp.json()["consistency_info"]["level_achieved"] == resp.json()["consistency_info"][
        "level_requested"]
    return {hit["id"] for hit in resp.json()["results"]}


def _data_path_works(http: httpx.Client, coll: str, tag: str) -> None:
    """Every data-path operation, each checked as on a healthy cluster."""
    ids = [f"{tag}-{n}" for n in range(4)]
    answer = _write(http, coll, ids[:1], seed=hash(tag) % 1000)
    token = answer["session_token"]
    _write(http, coll, ids[1:], seed=hash(tag) % 1000 + 1)
    probe = vec(hash(tag) % 1000, DIM)

    # Every level answers; the levels that promise to see these writes do.
    assert _search(http, coll, "eventual", ids, probe) <= set(ids)
    assert _search(http, coll, "bounded", ids, probe, max_staleness_ms=60_000) <= set(ids)
    assert ids[0] in _search(http, coll, "read_your_writes", ids, probe, session_token=token)
    assert _search(http, coll, "strong", ids, probe) == set(ids)

    got = http.get(f"/v1/vectors/{ids[0]}", params={"collection": coll, "consistency_level": "strong"})
    assert got.status_code == 200, got.text
    assert got.json()["id"] == ids[0] and got.json()["metadata"] == {"tag": ids[0]}

    listed = http.get(f"/v1/collections/{coll}/records",
                      params={"consistency_level": "strong", "limit": 1000})
    assert listed.status_code == 200, listed.text
    assert set(ids) <= {r["id"] for r in listed.json()["records"]}

    deleted = http.post("/v1/vectors/delete", json={"collection": coll, "ids": [ids[3]], "ack": "all"})
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["deleted_ids"] == [ids[3]]
    gone = http.get(f"/v1/vectors/{ids[3]}", params={"collection": coll, "consistency_level": "strong"})
    assert gone.status_code == 404, gone.text
    assert _search(http, coll, "strong", ids, probe) == set(ids[:3])


def _ddl_fails_503(http: httpx.Client, coll: str) -> None:
    """DDL needs the meta manager: 503 naming it, and nothing changed."""
    new = f"ddl_{uuid.uuid4().hex[:8]}"
    for resp in (http.post("/v1/collections", json={"name": new, "dim": DIM}),
                 http.delete(f"/v1/collections/{coll}")):
        assert resp.status_code == 503, resp.text
        assert "meta manager" in resp.json()["error"]["message"], resp.text
    # A collection the gateway never cached: 503 (not 404), as the meta manager cannot be asked.
    miss = http.post("/v1/vectors/search", json={"collection": f"never_{new}", "vector": vec(1, DIM), "k": 1})
    assert miss.status_code == 503 and "meta manager" in miss.json()["error"]["message"], miss.text


def _ddl_works(http: httpx.Client, coll: str) -> None:
    """Once the meta manager is back: create and drop succeed, and the drop is seen by reads."""
    created = _create(http, "after")
    assert http.delete(f"/v1/collections/{created}").status_code == 200
    assert http.get(f"/v1/collections/{coll}").status_code == 200


def _wait_schema_watch(http: httpx.Client, connected: bool, timeout: float = 60.0) -> None:
    """Poll the gateway's /healthz until its schema watch is (dis)connected."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http.get("/healthz").json().get("schema_watch") is connected:
            return
        time.sleep(0.05)
    raise AssertionError(f"schema watch never became {'connected' if connected else 'disconnected'}")


def test_sigstopped_meta_manager(cluster: LocalCluster, http: httpx.Client) -> None:
    coll = _create(http, "stop")
    _write(http, coll, ["before"], seed=1)
    _wait_schema_watch(http, True)
    meta = int(cluster.process("meta")["pid"])
    with stopped(meta):
        _data_path_works(http, coll, "stopped")
        _ddl_fails_503(http, coll)
    _wait_schema_watch(http, True)
    _ddl_works(http, coll)
    _data_path_works(http, coll, "resumed")


def test_killed_meta_manager_while_its_supervisor_is_held(cluster: LocalCluster, http: httpx.Client) -> None:
    coll = _create(http, "kill")
    _write(http, coll, ["before"], seed=2)
    assert cluster.proc is not None
    old = int(cluster.process("meta")["pid"])
    with stopped(cluster.proc.pid):
        cluster.kill("meta")
        _wait_schema_watch(http, False)  # the stream broke: the gateway knows the meta manager is gone
        _data_path_works(http, coll, "down")
        _ddl_fails_503(http, coll)
    cluster.wait_restarted("meta", old)
    _wait_schema_watch(http, True)
    _ddl_works(http, coll)
    _data_path_works(http, coll, "restarted")


def test_reads_and_writes_go_on_while_the_supervisor_restarts_the_meta_manager(
        cluster: LocalCluster, http: httpx.Client) -> None:
    coll = _create(http, "restart")
    _write(http, coll, ["before"], seed=3)
    old = cluster.kill("meta")
    rounds = 0
    # Keep working while the supervisor restarts it (at least one round, whatever the timing).
    while rounds == 0 or cluster.process("meta")["pid"] in (None, old) \
            or cluster.process("meta")["health"] != "up":
        _data_path_works(http, coll, f"r{rounds}")
        rounds += 1
    cluster.wait_restarted("meta", old)
    _wait_schema_watch(http, True)
    _ddl_works(http, coll)


async def _append_as_a_stale_gateway(journal_address: str, old: CollectionSchema, record_id: str) -> int:
    """Append the write a gateway whose cached schema is ``old`` (a dropped incarnation) would
    append: the same payload builders, ``old.collection_id`` in the entry; ack=all."""
    records = RecordBatch.validate([record_id], [vec(99, old.dim)], metadata=[{"tag": record_id}])
    journal = JournalClient(journal_address)
    try:
        answer = await journal.append(
            old.partition, payloads.encode_payload([payloads.write_mutation(old, records, upsert=False)]),
            request_id=uuid.uuid4().hex, shards=payloads.touched_shards(list(records.ids), old.shards),
            ack=journal_pb2.ACK_ALL)
    finally:
        await journal.close()
    return int(answer.offset)


def test_a_write_of_a_dropped_incarnation_never_lands_in_the_recreated_collection(
        cluster: LocalCluster, http: httpx.Client) -> None:
    """A gateway whose cached schema is stale (the collection was dropped and recreated while it
    was disconnected) appends writes carrying the old incarnation's collection_id. Every replica
    skips them (vecraft/shared/index/journal_ops.py: writes of a dropped incarnation), so they
    never appear in the new collection, and no replica halts on them."""
    coll = _create(http, "inc")
    body = http.get(f"/v1/collections/{coll}").json()
    old = CollectionSchema(name=coll, tenant=body["tenant"], dim=body["dim"], metric=body["metric"],
                           shards=body["shards"], replicas=body["replicas"], partition=body["partition"],
                           collection_id=body["collection_id"])
    assert http.delete(f"/v1/collections/{coll}").status_code == 200
    resp = http.post("/v1/collections", json={"name": coll, "dim": DIM, "metric": "l2"})
    assert resp.status_code == 201, resp.text
    new_id = resp.json()["collection_id"]
    assert new_id != old.collection_id
    _write(http, coll, ["fresh"], seed=5)

    offset = asyncio.run(_append_as_a_stale_gateway(cluster.process("journal")["grpc_address"], old, "stale"))
    ids = ["fresh", "stale"]
    # Strong reads reach past the stale entry (the journal head) on every replica.
    assert _search(http, coll, "strong", ids, vec(99, DIM)) == {"fresh"}
    got = http.get("/v1/vectors/stale", params={"collection": coll, "consistency_level": "strong"})
    assert got.status_code == 404, got.text
    listed = http.get(f"/v1/collections/{coll}/records", params={"consistency_level": "strong"})
    assert listed.status_code == 200 and [r["id"] for r in listed.json()["records"]] == ["fresh"], listed.text
    assert listed.json()["index_version"] >= offset
    # Skipped, not halted on: every replica is still up and ready.
    for row in cluster.processes("storage") + cluster.processes("query"):
        assert row["health"] == "up", row
        assert httpx.get(f"http://{row['http_address']}/readyz", timeout=HTTP_TIMEOUT_S).status_code == 200

