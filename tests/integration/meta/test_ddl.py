"""Collection DDL through a real meta manager and journal, on both backends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.support.procs import ServiceProcess
from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.services.meta_manager.ddl import ddl_of, ddl_payload
from vecraft.shared.common.errors import Conflict, InvalidRequest, NotFound
from vecraft.shared.common.grpc_errors import translate_rpc_error
from vecraft.shared.model.routing import SYSTEM_PARTITION
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

Kind = journal_pb2.CollectionDDL


async def test_create_get_list_alter_drop_in_journal_order(client: MetaClient,
                                                           journal_client: JournalClient) -> None:
    a = await client.create_collection("alpha", 8, metric="L2", shards=2)
    b = await client.create_collection("beta", 4)
    assert (a.dim, a.metric, a.shards, a.replicas) == (8, "l2", 2, 1)
    assert (b.shards, b.metric) == (3, "cosine")
    assert (b.hnsw.m, b.hnsw.ef_construction, b.hnsw.ef_search) == (16, 200, 0)  # ef_search 0: dynamic
    assert 0 < a.ddl_offset < b.ddl_offset and a.collection_id != b.collection_id
    assert a.partition.startswith("data-")
    assert (await client.get_collection("alpha")).collection_id == a.collection_id
    assert [c.name for c in await client.list_collections()] == ["alpha", "beta"]

    altered = await client.alter_collection("alpha", ef_search=300)
    assert altered.hnsw.ef_search == 300 and altered.hnsw.m == 16
    assert altered.ddl_offset > b.ddl_offset and altered.collection_id == a.collection_id
    dropped = await client.drop_collection("beta")
    assert dropped.ddl_offset > altered.ddl_offset
    with pytest.raises(NotFound):
        await client.get_collection("beta")
    with pytest.raises(NotFound):
        await client.drop_collection("beta")
    assert [c.name for c in await client.list_collections()] == ["alpha"]

    # The system partition holds the DDL in the same order; each effective DDL was also
    # appended to the collection's data partition with the system offset filled in.
    system = [(e.offset, ddl_of(e)) for e in await journal_client.pull(SYSTEM_PARTITION, 1)]
    assert [(o, d.kind, d.schema.name) for o, d in system if d] == [
        (a.ddl_offset, Kind.CREATE, "alpha"), (b.ddl_offset, Kind.CREATE, "beta"),
        (altered.ddl_offset, Kind.ALTER, "alpha"), (dropped.ddl_offset, Kind.DROP, "beta")]
    data = [ddl_of(e) for e in await journal_client.pull(a.partition, 1)]
    alpha_data = [(d.kind, d.schema.ddl_offset) for d in data if d and d.schema.name == "alpha"]
    assert alpha_data == [(Kind.CREATE, a.ddl_offset), (Kind.ALTER, altered.ddl_offset)]


async def test_ddl_is_idempotent_by_request_id(client: MetaClient, journal_client: JournalClient) -> None:
    first = await client.create_collection("docs", 16, request_id="create-docs-1")
    again = await client.create_collection("docs", 16, request_id="create-docs-1")
    assert again.collection_id == first.collection_id and again.ddl_offset == first.ddl_offset
    altered = await client.alter_collection("docs", ef_search=99, request_id="alter-docs-1")
    assert (await client.alter_collection("docs", ef_search=99, request_id="alter-docs-1")).ddl_offset \
        == altered.ddl_offset
    dropped = await client.drop_collection("docs", request_id="drop-docs-1")
    retried = await client.drop_collection("docs", request_id="drop-docs-1")
    assert retried.ddl_offset == dropped.ddl_offset
    # A retried create of a collection since dropped does not resurrect it.
    assert (await client.create_collection("docs", 16, request_id="create-docs-1")).collection_id \
        == first.collection_id
    with pytest.raises(NotFound):
        await client.get_collection("docs")
    entries = await journal_client.pull(SYSTEM_PARTITION, 1)
    assert [e.request_id for e in entries] == ["create-docs-1", "alter-docs-1", "drop-docs-1"]


async def test_existing_name_conflicts_unless_if_not_exists_matches(client: MetaClient) -> None:
    created = await client.create_collection("default", 4)
    with pytest.raises(Conflict) as err:
        await client.create_collection("default", 4)
    assert "dim 4" in err.value.message and "cosine" in err.value.message
    same = await client.create_collection("default", 4, if_not_exists=True)
    assert same.collection_id == created.collection_id
    with pytest.raises(Conflict, match="dim 4, metric cosine"):
        await client.create_collection("default", 8, if_not_exists=True)
    with pytest.raises(Conflict):
        await client.create_collection("default", 4, metric="ip", if_not_exists=True)
    # Tenants are separate namespaces.
    other = await client.create_collection("default", 8, tenant="acme")
    assert other.tenant == "acme" and other.collection_id != created.collection_id


BAD_CREATES: list[tuple[dict[str, object], str]] = [
    ({"name": "", "dim": 4}, "is empty"),
    ({"name": "9lives", "dim": 4}, "starts with '9'"),
    ({"name": "has space", "dim": 4}, "contains ' '"),
    ({"name": "x" * 129, "dim": 4}, "129 characters"),
    ({"name": "ok", "dim": 4, "tenant": "bad/tenant"}, "tenant name"),
    ({"name": "ok", "dim": 0}, "dim is 0"),
    ({"name": "ok", "dim": 65_537}, "dim is 65537"),
    ({"name": "ok", "dim": 4, "metric": "hamming"}, "metric 'hamming' is not supported"),
    ({"name": "ok", "dim": 4, "shards": 65}, "shards is 65"),
    ({"name": "ok", "dim": 4, "replicas": 6}, "replicas is 6"),
    ({"name": "ok", "dim": 4, "hnsw": collection_pb2.HnswParams(m=2)}, "hnsw.m is 2"),
]


async def test_bad_create_is_refused_before_the_journal(client: MetaClient,
                                                        journal_client: JournalClient) -> None:
    # One process pair for every case: starting them dominates the cost of a case.
    before, _ = await journal_client.get_offset(SYSTEM_PARTITION)
    for kwargs, fragment in BAD_CREATES:
        with pytest.raises(InvalidRequest) as err:
            await client.create_collection(**kwargs)  # type: ignore[arg-type]
        assert fragment in err.value.message, (kwargs, err.value.message)
    assert (await journal_client.get_offset(SYSTEM_PARTITION))[0] == before
    assert await client.list_collections() == []
    largest = await client.create_collection("ok", 65_536, metric="IP")
    assert (largest.dim, largest.metric) == (65_536, "ip")


async def test_bad_alter_and_drop(client: MetaClient) -> None:
    await client.create_collection("docs", 4)
    for ef in (0, 4097):
        with pytest.raises(InvalidRequest, match="ef_search"):
            await client.alter_collection("docs", ef_search=ef)
    with pytest.raises(InvalidRequest, match=r"hnsw\.m cannot change"), translate_rpc_error():
        await client._stub.AlterCollection(collection_pb2.AlterCollectionRequest(
            name="docs", hnsw=collection_pb2.HnswParams(m=32, ef_search=10)))
    with pytest.raises(NotFound):
        await client.alter_collection("missing", ef_search=10)
    with pytest.raises(InvalidRequest):
        await client.drop_collection("bad name")


async def test_concurrent_creates_from_two_clients_exactly_one_wins(meta: ServiceProcess) -> None:
    one, two = MetaClient(meta.grpc_address), MetaClient(meta.grpc_address)
    try:
        names = [f"race{i}" for i in range(6)]
        outcomes = await asyncio.gather(
            *(c.create_collection(n, dim) for n in names for c, dim in ((one, 4), (two, 8))),
            return_exceptions=True)
        for i, name in enumerate(names):
            pair = outcomes[2 * i: 2 * i + 2]
            winners = [o for o in pair if isinstance(o, collection_pb2.CollectionSchema)]
            assert len(winners) == 1, pair
            assert sum(isinstance(o, Conflict) for o in pair) == 1, pair
            stored = await one.get_collection(name)
            assert stored.collection_id == winners[0].collection_id and stored.dim == winners[0].dim
    finally:
        await one.close()
        await two.close()


async def test_ddl_left_in_the_journal_by_a_crash_is_materialized(client: MetaClient,
                                                                  journal_client: JournalClient) -> None:
    # A manager that died after appending to the system partition, before materializing.
    orphan = collection_pb2.CollectionSchema(
        tenant="default", name="orphan", dim=3, metric="ip", shards=1, replicas=1, partition="data-2",
        collection_id="0123456789abcdef",
        hnsw=collection_pb2.HnswParams(m=16, ef_construction=200, ef_search=64))
    appended = await journal_client.append(SYSTEM_PARTITION, ddl_payload(Kind.CREATE, orphan),
                                           request_id="crashed-create", ack=journal_pb2.ACK_JOURNAL)
    deadline = time.monotonic() + 30
    while True:
        try:
            found = await client.get_collection("orphan")
            break
        except NotFound:
            assert time.monotonic() < deadline, "orphaned DDL was never materialized"
            await asyncio.sleep(0.1)
    assert found.collection_id == orphan.collection_id and found.ddl_offset == appended.offset
    data = [ddl_of(e) for e in await journal_client.pull("data-2", 1)]
    assert [(d.kind, d.schema.collection_id) for d in data if d] == [(Kind.CREATE, orphan.collection_id)]


@pytest.mark.parametrize("hard", [False, True], ids=["sigterm", "kill9"])
async def test_restart_loses_nothing(start_meta: Callable[..., ServiceProcess], hard: bool) -> None:
    meta = start_meta()
    client = MetaClient(meta.grpc_address)
    try:
        kept = await client.create_collection("kept", 32, shards=2)
        await client.create_collection("gone", 4)
        await client.drop_collection("gone")
        await client.alter_collection("kept", ef_search=128)
        await client.set_tenant_partition("pinned", "data-3")
        if hard:
            meta.kill()
            meta.start()
        else:
            meta.restart()
        after = await client.get_collection("kept")
        assert after.collection_id == kept.collection_id and after.hnsw.ef_search == 128
        assert [c.name for c in await client.list_collections()] == ["kept"]
        assert (await client.get_tenant_partition("pinned")).partition == "data-3"
        # DDL continues in order after the restart.
        new = await client.create_collection("new", 4)
        assert new.ddl_offset > after.ddl_offset
    finally:
        await client.close()
