"""Small pure pieces: codec round trips, etcd targets, DDL payloads, keyed locks, partition owners."""

from __future__ import annotations

import asyncio

import pytest

from vecraft.services.meta_manager.ddl import KeyedLocks, ddl_of, ddl_payload
from vecraft.services.meta_manager.placement import partition_owner
from vecraft.services.meta_manager.store import DdlRecord, codec
from vecraft.services.meta_manager.store.etcd import channel_target
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2, meta_pb2

pytestmark = pytest.mark.unit

SCHEMA = collection_pb2.CollectionSchema(
    tenant="acme", name="docs", dim=4, metric="l2", shards=2, replicas=1, partition="data-1",
    collection_id="c1", ddl_offset=2**63 + 5, ddl_hlc=2**64 - 1, hnsw=collection_pb2.HnswParams(m=16))


def test_codec_round_trips_keep_64_bit_values() -> None:
    assert codec.decode_message(codec.encode_message(SCHEMA), collection_pb2.CollectionSchema) == SCHEMA
    record = DdlRecord(request_id="r/1", offset=7, hlc=2**64 - 2, kind=journal_pb2.CollectionDDL.CREATE,
                       tenant="acme", name="docs", applied=True, schema=SCHEMA)
    assert codec.decode_record(codec.encode_record(record)) == record
    lost = DdlRecord(request_id="r2", offset=8, hlc=1, kind=journal_pb2.CollectionDDL.CREATE, tenant="acme",
                     name="docs", applied=False)
    assert codec.decode_record(codec.encode_record(lost)) == lost


def test_ddl_payload_round_trip_and_non_ddl_entries() -> None:
    entry = journal_pb2.JournalEntry(offset=3, payload=ddl_payload(journal_pb2.CollectionDDL.DROP, SCHEMA))
    ddl = ddl_of(entry)
    assert ddl is not None and ddl.kind == journal_pb2.CollectionDDL.DROP and ddl.schema == SCHEMA
    write = journal_pb2.JournalPayload(mutations=[journal_pb2.Mutation(
        write=journal_pb2.VectorWrite(collection="docs"))]).SerializeToString()
    assert ddl_of(journal_pb2.JournalEntry(payload=write)) is None
    assert ddl_of(journal_pb2.JournalEntry(payload=b"\xff\xff garbage")) is None


def test_channel_target() -> None:
    assert channel_target(["127.0.0.1:2379"]) == ("127.0.0.1", 2379)
    assert channel_target(["http://localhost:2379"]) == ("localhost", 2379)
    host, port = channel_target(["127.0.0.1:1", "localhost:2", "127.0.0.1:3"])
    assert f"{host}:{port}" == "ipv4:127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"
    for bad in ([], ["nohost"], ["h:port"]):
        with pytest.raises(InvalidRequest):
            channel_target(bad)


async def test_keyed_locks_serialize_one_key_only() -> None:
    locks = KeyedLocks()
    order: list[str] = []

    async def work(key: str, tag: str) -> None:
        async with locks.hold(("t", key)):
            order.append(f"{tag}+")
            await asyncio.sleep(0.01)
            order.append(f"{tag}-")

    await asyncio.gather(work("a", "a1"), work("a", "a2"), work("b", "b1"))
    assert order.index("a1-") < order.index("a2+")
    assert order.index("b1+") < order.index("a1-")
    assert locks._locks == {}


def test_partition_owner() -> None:
    j1 = meta_pb2.NodeInfo(node_id="j1", role="journal", partitions=["data-0"])
    j2 = meta_pb2.NodeInfo(node_id="j2", role="journal", partitions=["data-1", "system"])
    anyone = meta_pb2.NodeInfo(node_id="j3", role="journal")
    storage = meta_pb2.NodeInfo(node_id="s", role="storage", partitions=["data-1"])
    assert partition_owner([storage, j1, j2], "data-1") == j2
    assert partition_owner([j1, anyone], "data-1") == anyone
    assert partition_owner([j1], "data-9") == j1
    assert partition_owner([storage], "data-1") is None
