"""The SDK against a real `vecraft up` cluster whose push path is slowed by 3 s.

- the spec's three SDK snippets run unmodified (endpoint aside) and print what
  the spec prints;
- HTTP and gRPC transports pass the same behavioural suite;
- a session sees its own writes although replicas lag, the async client
  behaves like the sync one.
"""

from __future__ import annotations

import asyncio
import os
import re
import runpy
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft_client import (
    AsyncVecraftClient,
    Conflict,
    ConsistencyLevel,
    InvalidRequest,
    NotFound,
    VecraftClient,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SNIPPETS = Path(__file__).parent / "spec_snippets"
# Far above a write + search round trip even on a loaded machine: the session test's control
# ("eventual reads miss fresh writes") raced a 500 ms lag.
APPLY_DELAY_MS = 3000


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("sdk") / "data"
    running = LocalCluster(data_dir, shards=2, apply_delay_ms=APPLY_DELAY_MS).start()
    yield running
    assert running.stop() == 0, running.tail()


def endpoint_for(cluster: LocalCluster, transport: str) -> str:
    return cluster.endpoint if transport == "http" else cluster.grpc_endpoint


def run_snippet(cluster: LocalCluster, name: str) -> str:
    result = subprocess.run([sys.executable, str(SNIPPETS / name)], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "VECRAFT_ENDPOINT": cluster.endpoint})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_spec_snippets_run_verbatim(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    out = run_snippet(cluster, "bounded_staleness.py")
    assert re.fullmatch(r"Actual staleness: \d+ms\nCache hit: (True|False)\n", out), out
    run_snippet(cluster, "strong.py")

    monkeypatch.setenv("VECRAFT_ENDPOINT", cluster.endpoint)
    namespace = runpy.run_path(str(SNIPPETS / "read_your_writes.py"))
    response = namespace["response"]
    assert response.consistency_info.level_achieved is ConsistencyLevel.READ_YOUR_WRITES
    assert response.results, "the session's own insert must be visible"
    assert response.results[0].metadata == {"user": "alice"}

    # After the default collection exists, snippet 1 finds alice's vector too (bounded 500 ms: a sync,
    # since the push lags APPLY_DELAY_MS).
    out = run_snippet(cluster, "bounded_staleness.py")
    staleness = int(re.search(r"Actual staleness: (\d+)ms", out).group(1))  # type: ignore[union-attr]
    assert staleness <= 500


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_same_behaviour_over_both_transports(cluster: LocalCluster, transport: str) -> None:
    client = VecraftClient(endpoint=endpoint_for(cluster, transport), transport=transport)  # type: ignore[arg-type]
    name = f"sdk_{transport}_{uuid.uuid4().hex[:6]}"
    created = client.create_collection(name, dim=8, metric="l2", shards=2)
    assert (created.name, created.dim, created.metric, created.shards) == (name, 8, "l2", 2)
    assert name in {c.name for c in client.list_collections()}
    with pytest.raises(Conflict):
        client.create_collection(name, dim=8)

    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(20, 8)).astype(np.float32)
    ids = [f"r{i}" for i in range(20)]
    written = client.insert_vectors(vectors, ids=ids,
                                    metadatas=[{"i": i, "even": i % 2 == 0} for i in range(20)],
                                    collection=name)
    assert written.ids == ids and written.offset > 0

    got = client.get_vector("r3", collection=name, consistency_level=ConsistencyLevel.STRONG)
    assert got.metadata == {"i": 3, "even": False}
    assert np.allclose(got.vector, vectors[3])

    hits = client.vector_search(vectors[5], k=3, consistency_level=ConsistencyLevel.STRONG, collection=name)
    assert hits.results[0].id == "r5"
    assert hits.consistency_info.index_version >= written.offset

    odd = client.vector_search(vectors[4], k=5, consistency_level="strong", collection=name,
                               filters={"even": False})
    assert odd.results and all(r.metadata["even"] is False for r in odd.results)

    client.upsert_vector("r5", vectors[6], metadata={"i": 5, "moved": True}, collection=name)
    moved = client.get_vector("r5", collection=name, consistency_level="strong")
    assert moved.metadata == {"i": 5, "moved": True}
    client.delete_vector("r5", collection=name)
    with pytest.raises(NotFound):
        client.get_vector("r5", collection=name, consistency_level="strong")
    after = client.vector_search(vectors[6], k=20, consistency_level="strong", collection=name)
    assert "r5" not in {r.id for r in after.results}

    with pytest.raises(InvalidRequest, match="dim"):
        client.insert_vector([1.0, 2.0], collection=name)
    with pytest.raises(NotFound):
        client.vector_search([0.0] * 8, k=1, collection=f"missing_{uuid.uuid4().hex[:6]}")
    client.drop_collection(name)
    with pytest.raises(NotFound):
        client.get_collection(name)
    client.close()


def test_session_sees_its_writes_while_replicas_lag(cluster: LocalCluster) -> None:
    client = VecraftClient(endpoint=cluster.endpoint)
    name = f"sdk_session_{uuid.uuid4().hex[:6]}"
    client.create_collection(name, dim=4)
    # An eventual read may not know a collection its processor has not applied yet (NotFound): a
    # strong read first brings every shard's processor up to the journal head, DDL included.
    assert client.vector_search([0.0] * 4, k=1, consistency_level="strong", collection=name).results == []
    session = client.create_session()
    rng = np.random.default_rng(11)
    eventual_missed = 0
    trials = 15
    for i in range(trials):
        vector = rng.normal(size=4).astype(np.float32)
        # ack=journal: answered once durable, before the slowed replicas apply it.
        session.insert_vector(vector, id=f"s{i}", collection=name, ack="journal")
        eventual = client.vector_search(vector, k=1, consistency_level="eventual", collection=name)
        if not eventual.results or eventual.results[0].id != f"s{i}":
            eventual_missed += 1
        mine = session.vector_search(vector, k=1, consistency_level=ConsistencyLevel.READ_YOUR_WRITES,
                                     collection=name)
        assert mine.results[0].id == f"s{i}", f"trial {i}: session missed its own write"
        assert mine.consistency_info.level_achieved is ConsistencyLevel.READ_YOUR_WRITES
    # The lag is real: without the session, fresh writes were usually not visible yet.
    assert eventual_missed > 0
    # A session exported as a token (e.g. a web app between requests) keeps the guarantee.
    resumed = client.import_session(session.export_token())
    assert resumed.offsets == session.offsets
    client.drop_collection(name)


def test_async_client(cluster: LocalCluster) -> None:
    async def scenario() -> None:
        async with AsyncVecraftClient(endpoint=cluster.endpoint) as client:
            name = f"sdk_async_{uuid.uuid4().hex[:6]}"
            await client.create_collection(name, dim=4, metric="ip")
            session = client.create_session()
            await asyncio.gather(*(session.insert_vector([float(i), 1.0, 0.0, 0.0], id=f"a{i}",
                                                         collection=name, ack="journal")
                                   for i in range(5)))
            response = await session.vector_search([4.0, 1.0, 0.0, 0.0], k=5,
                                                   consistency_level="read_your_writes", collection=name)
            assert {r.id for r in response.results} == {f"a{i}" for i in range(5)}
            await client.drop_collection(name)

    asyncio.run(scenario())


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_ids_with_slashes_can_be_read_replaced_and_deleted(cluster: LocalCluster, transport: str) -> None:
    """Every id that can be written is addressable: the HTTP transport quotes it in the path."""
    client = VecraftClient(endpoint=endpoint_for(cluster, transport), transport=transport)  # type: ignore[arg-type]
    name = f"slash_{transport}_{uuid.uuid4().hex[:6]}"
    client.create_collection(name, dim=2)
    client.insert_vector([1.0, 0.0], metadata={"v": 1}, id="tenant/a/b", collection=name)
    assert client.get_vector("tenant/a/b", collection=name, consistency_level="strong").metadata == {"v": 1}
    client.upsert_vector("tenant/a/b", [0.0, 1.0], metadata={"v": 2}, collection=name)
    assert client.get_vector("tenant/a/b", collection=name, consistency_level="strong").metadata == {"v": 2}
    client.delete_vector("tenant/a/b", collection=name)
    with pytest.raises(NotFound):
        client.get_vector("tenant/a/b", collection=name, consistency_level="strong")
    client.close()
