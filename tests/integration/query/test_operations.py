"""Single flight, restart with a warm cache, several shards, bad input and an unreachable journal."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import httpx
import numpy as np
import orjson
import pytest

from tests.integration.query.conftest import Collection, QueryClient, Writer, metric_value
from tests.unit.query.fakes import PARTITION, create_payload, write_payload
from vecraft.clients.journal import JournalClient
from vecraft.shared.common.errors import InvalidRequest, NotFound, Unavailable
from vecraft.shared.common.grpc_errors import translate_rpc_error
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.model.routing import shard_of
from vecraft.shared.rpc.v1 import journal_pb2, query_pb2, query_pb2_grpc, storage_pb2

pytestmark = pytest.mark.integration
log = logging.getLogger(__name__)

DIM = 8


def rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


async def test_concurrent_strong_reads_share_pulls(start_query, writer: Writer, connect) -> None:
    # The push tail lags far longer than the test runs: every round's write reaches the cache
    # only by a pull, however slow the machine.
    qp = start_query("--apply-delay-ms", "600000")
    client: QueryClient = connect(qp)
    coll = await writer.create("sf", DIM)
    await writer.write(coll, ["a"], rows(1, 1))
    await client.search("sf", rows(1, 1)[0], level=L.STRONG)
    n = 24
    pulls: list[float] = []
    waiters: list[float] = []
    for round_ in range(3):
        ack = await writer.write(coll, [f"x{round_}"], rows(1, 100 + round_),
                                 [orjson.dumps({"round": round_}).decode()])
        labels = {"partition": PARTITION}
        p0 = metric_value(qp.http_address, "vecraft_query_sync_pulls_total", labels)
        w0 = metric_value(qp.http_address, "vecraft_query_sync_waiters_total", labels)
        flt = orjson.dumps({"round": round_}).decode()
        resps = await asyncio.gather(*(client.search("sf", rows(1, 100 + round_)[0], level=L.STRONG,
                                                     filter_json=flt) for _ in range(n)))
        for resp in resps:
            assert [r.id for r in resp.results] == [f"x{round_}"]
            assert resp.consistency_info.index_version_used >= ack.offset
        pulls.append(metric_value(qp.http_address, "vecraft_query_sync_pulls_total", labels) - p0)
        waiters.append(metric_value(qp.http_address, "vecraft_query_sync_waiters_total", labels) - w0)
        assert sum(r.consistency_info.sync_performed for r in resps) == waiters[-1]
    log.info("%d concurrent strong reads x3 rounds: pulls %s, waiters %s", n, pulls, waiters)
    assert sum(pulls) >= 3
    assert sum(pulls) < sum(waiters)


async def test_restart_comes_back_with_a_warm_cache(start_query, writer: Writer, journal: JournalClient,
                                                    connect) -> None:
    qp = start_query("--apply-delay-ms", "500")
    client: QueryClient = connect(qp)
    coll = await writer.create("rs", DIM)
    for i in range(5):
        await writer.write(coll, [f"r{j}" for j in range(i * 50, i * 50 + 50)], rows(50, i))
    await client.search("rs", rows(1, 0)[0], level=L.STRONG)
    qp.kill()
    # Written while the processor is down: the restarted one must have them before it is ready.
    later = rows(1, 99)
    ack = await writer.write(coll, ["while-down"], later, [orjson.dumps({"k": "down"}).decode()])
    started = time.monotonic()
    qp.start()
    log.info("restart to ready: %.2fs", time.monotonic() - started)
    head, _ = await journal.get_offset(PARTITION)
    assert head == ack.offset
    health = httpx.get(f"http://{qp.http_address}/healthz", timeout=5).json()
    assert health["role"] == "query" and health["shards"] == [0]
    assert health["partitions"][PARTITION]["applied_offset"] == head

    client = connect(qp)
    resp = await client.search("rs", later[0], k=5, level=L.EVENTUAL, filter_json='{"k": "down"}')
    assert [r.id for r in resp.results] == ["while-down"]
    info = resp.consistency_info
    assert info.index_version_used == head and not info.sync_performed and info.cache_hit
    resp = await client.search("rs", rows(1, 3)[0], k=300, level=L.EVENTUAL)
    assert len(resp.results) == 251


async def test_several_shards_are_merged(start_query, journal: JournalClient, connect) -> None:
    qp = start_query("--shard", "1", "--shard", "2")
    client: QueryClient = connect(qp)
    schema, ddl = create_payload("multi", DIM, "l2", shards=3)
    await journal.append(PARTITION, ddl, request_id=uuid.uuid4().hex, ack=journal_pb2.ACK_JOURNAL)
    ids = [f"m{i}" for i in range(300)]
    data = rows(300, 7)
    await journal.append(PARTITION, write_payload(schema, ids, data), request_id=uuid.uuid4().hex,
                         shards=[0, 1, 2], ack=journal_pb2.ACK_JOURNAL)
    query = data[0] + 0.01
    resp = await client.search("multi", query, k=20, level=L.STRONG)
    assert list(resp.shards) == [1, 2]
    served = [i for i in range(300) if shard_of(ids[i], 3) in (1, 2)]
    dist = ((data[served] - query) ** 2).sum(axis=1)
    expected = [ids[served[j]] for j in np.argsort(dist)[:20]]
    got = [r.id for r in resp.results]
    assert len(set(got) & set(expected)) >= 18  # HNSW recall on each shard, merged
    assert all(shard_of(i, 3) in (1, 2) for i in got)
    scores = [r.score for r in resp.results]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(Unavailable, match=r"shard 0 is not served .*serves \[1, 2\]"), translate_rpc_error():
        await client.stub.Search(query_pb2.QuerySearchRequest(
            collection="multi", vector=query.astype("<f4").tobytes(), k=3, shards=[0]))
    status = await client.stub.Status(storage_pb2.NodeStatusRequest())
    assert status.ready and status.partitions[0].partition == PARTITION


async def test_bad_input_is_refused_clearly(start_query, writer: Writer, connect) -> None:
    qp = start_query()
    client: QueryClient = connect(qp)
    coll: Collection = await writer.create("bad", DIM)
    await writer.write(coll, ["a"], rows(1, 1))
    with pytest.raises(InvalidRequest, match="dimensions"):
        await client.search("bad", [1.0, 2.0, 3.0], level=L.STRONG)
    for level in (L.EVENTUAL, L.STRONG, L.READ_YOUR_WRITES, L.BOUNDED_STALENESS):
        with pytest.raises(NotFound, match="nope"):
            await client.search("nope", rows(1, 1)[0], level=level)
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        await client.search("bad", rows(1, 1)[0], filter_json="{category:")
    with pytest.raises(InvalidRequest, match=r"\$regex|operator"):
        await client.search("bad", rows(1, 1)[0], filter_json='{"a": {"$regex": "x"}}')
    with pytest.raises(InvalidRequest, match="k must be"):
        await client.search("bad", rows(1, 1)[0], k=0)
    with pytest.raises(InvalidRequest, match="NaN"):
        await client.search("bad", [float("nan")] * DIM)
    with pytest.raises(InvalidRequest, match="max_staleness_ms"):
        await client.search("bad", rows(1, 1)[0], level=L.BOUNDED_STALENESS, max_staleness_ms=-5)
    stub: query_pb2_grpc.QueryProcessorServiceStub = client.stub
    with pytest.raises(InvalidRequest, match="consistency level"), translate_rpc_error():
        await stub.Search(query_pb2.QuerySearchRequest(collection="bad", vector=rows(1, 1).tobytes(), k=1,
                                                       level=9))
    with pytest.raises(InvalidRequest, match="float32"), translate_rpc_error():
        await stub.Search(query_pb2.QuerySearchRequest(collection="bad", vector=b"\x00\x01\x02", k=1))
    # The processor still answers normally afterwards.
    resp = await client.search("bad", rows(1, 1)[0], k=1, level=L.STRONG)
    assert [r.id for r in resp.results] == ["a"]


async def test_unreachable_journal_is_503_not_a_downgrade(start_query, writer: Writer, journal_proc,
                                                          connect) -> None:
    qp = start_query()
    client: QueryClient = connect(qp)
    coll = await writer.create("down", DIM)
    await writer.write(coll, ["a"], rows(1, 1))
    await client.search("down", rows(1, 1)[0], level=L.STRONG)
    journal_proc.kill()
    # The journal refuses connections: 503 after --journal-retry-ms (1 s), long before the
    # request's own deadline would make it a 504, however busy the machine.
    with pytest.raises(Unavailable):
        await client.search("down", rows(1, 1)[0], level=L.STRONG, timeout_ms=30_000)
    # Eventual still answers from the cache, and its staleness grows with the silence.
    await asyncio.sleep(0.6)
    resp = await client.search("down", rows(1, 1)[0], level=L.EVENTUAL)
    assert [r.id for r in resp.results] == ["a"]
    assert resp.consistency_info.staleness_ms >= 500
    with pytest.raises(Unavailable):
        await client.search("down", rows(1, 1)[0], level=L.BOUNDED_STALENESS, max_staleness_ms=100,
                            timeout_ms=30_000)
