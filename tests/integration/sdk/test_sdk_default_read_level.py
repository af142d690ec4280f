"""The SDK's default read level against a real `vecraft up` cluster whose replicas lag 3 s.

Every replica (query-processor caches and storage nodes) applies an entry only
3 s after its commit, so a write acknowledged at ``ack="journal"`` is visible
right after only to a read that pulls before it reads. A client that wrote
reads its own writes by default (read-your-writes with its token); ``eventual``
stays one argument away and does not see them; a client that never wrote reads
eventual. Each claim is checked on what the answer says (the level requested
and achieved, the index version read), not on timing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft_client import AsyncVecraftClient, ConsistencyLevel, NotFound, VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

APPLY_DELAY_MS = 3000
EV, RYW = ConsistencyLevel.EVENTUAL, ConsistencyLevel.READ_YOUR_WRITES


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("sdk_default") / "data"
    running = LocalCluster(data_dir, shards=1, apply_delay_ms=APPLY_DELAY_MS).start()
    yield running
    assert running.stop() == 0, running.tail()


def _client(cluster: LocalCluster, transport: str) -> VecraftClient:
    endpoint = cluster.endpoint if transport == "http" else cluster.grpc_endpoint
    return VecraftClient(endpoint=endpoint, transport=transport)  # type: ignore[arg-type]


def _collection(admin: VecraftClient, prefix: str) -> str:
    """A new collection, created by ``admin``: the clients under test have written nothing yet."""
    name = f"{prefix}_{uuid.uuid4().hex[:6]}"
    admin.create_collection(name, dim=4, metric="l2")
    # A strong read brings the processors up to the journal head, DDL included, so an
    # eventual read knows the collection.
    assert admin.vector_search([0.0] * 4, k=1, consistency_level="strong", collection=name).results == []
    return name


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_a_search_right_after_an_insert_finds_it_by_default(cluster: LocalCluster, transport: str) -> None:
    admin = _client(cluster, transport)
    name = _collection(admin, f"dflt_{transport}")
    rng = np.random.default_rng(3)
    with _client(cluster, transport) as client:
        fresh = client.vector_search(rng.normal(size=4), k=1, collection=name)
        # Never wrote: eventual, nothing to wait for.
        assert fresh.consistency_info.level_requested is EV
        assert fresh.consistency_info.level_achieved is EV
        assert not fresh.consistency_info.sync_performed

        mine = rng.normal(size=4).astype(np.float32)
        written = client.insert_vector(mine, id="mine", collection=name, ack="journal")
        found = client.vector_search(mine, k=1, collection=name)
        info = found.consistency_info
        assert (info.level_requested, info.level_achieved) == (RYW, RYW)
        assert info.index_version >= written.offset
        assert [r.id for r in found.results] == ["mine"]
        assert client.get_vector("mine", collection=name).metadata is None  # a read by id too

        later = rng.normal(size=4).astype(np.float32)
        written = client.insert_vector(later, id="later", collection=name, ack="journal")
        eventual = client.vector_search(later, k=1, collection=name, consistency_level="eventual")
        info = eventual.consistency_info
        assert (info.level_requested, info.level_achieved) == (EV, EV)
        # Read from a cache that had not applied the write: the replicas lag 3 s.
        assert info.index_version < written.offset
        assert "later" not in {r.id for r in eventual.results}
        with pytest.raises(NotFound):
            client.get_vector("later", collection=name, consistency_level=ConsistencyLevel.EVENTUAL)

    # Another client that never wrote reads eventual, whatever this one wrote.
    with _client(cluster, transport) as other:
        info = other.vector_search(later, k=1, collection=name).consistency_info
        assert info.level_requested is EV
    admin.drop_collection(name)
    admin.close()


def test_async_client_reads_its_writes_by_default(cluster: LocalCluster) -> None:
    admin = _client(cluster, "http")
    name = _collection(admin, "dflt_async")

    async def scenario() -> None:
        async with AsyncVecraftClient(endpoint=cluster.endpoint) as client:
            before = await client.vector_search([1.0, 0.0, 0.0, 0.0], k=1, collection=name)
            assert before.consistency_info.level_requested is EV
            written = await client.insert_vector([1.0, 2.0, 3.0, 4.0], id="a", collection=name, ack="journal")
            found = await client.vector_search([1.0, 2.0, 3.0, 4.0], k=1, collection=name)
            assert found.consistency_info.level_achieved is RYW
            assert found.consistency_info.index_version >= written.offset
            assert [r.id for r in found.results] == ["a"]

    asyncio.run(scenario())
    admin.drop_collection(name)
    admin.close()
