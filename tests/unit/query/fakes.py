"""Journal entry builders and an in-memory journal for query processor tests."""

from __future__ import annotations

import asyncio
import time
import uuid
import weakref
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np

from vecraft.services.query_processor.cache import ShardCache, cache_followers, warm_up
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.hlc import pack
from vecraft.shared.replica.follower import PartitionFollower
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2, meta_pb2

PARTITION = "data-0"


def create_payload(name: str, dim: int, metric: str = "cosine", *, shards: int = 1,
                   partition: str = PARTITION) -> tuple[collection_pb2.CollectionSchema, bytes]:
    """A CREATE DDL payload for collection ``name`` of tenant "default"."""
    schema = collection_pb2.CollectionSchema(
        tenant="default", name=name, dim=dim, metric=metric, shards=shards, replicas=1, partition=partition,
        collection_id=uuid.uuid4().hex,
        hnsw=collection_pb2.HnswParams(m=16, ef_construction=100, ef_search=64))
    ddl = journal_pb2.CollectionDDL(kind=journal_pb2.CollectionDDL.CREATE, schema=schema)
    return schema, journal_pb2.JournalPayload(mutations=[journal_pb2.Mutation(ddl=ddl)]).SerializeToString()


def write_payload(schema: collection_pb2.CollectionSchema, ids: Sequence[str], vectors: np.ndarray,
                  metadata: Sequence[str] | None = None) -> bytes:
    """An upsert payload of ``ids`` with ``vectors`` (rows) and metadata JSON."""
    write = journal_pb2.VectorWrite(
        collection=schema.name, collection_id=schema.collection_id, upsert=True, ids=list(ids),
        dim=schema.dim,
        vectors=np.ascontiguousarray(vectors, dtype="<f4").tobytes(),
        metadata_json=list(metadata) if metadata is not None else [""] * len(ids))
    return journal_pb2.JournalPayload(mutations=[journal_pb2.Mutation(write=write)]).SerializeToString()


class FakeJournal:
    """Committed entries per partition in memory; ``pull`` can be gated and made to fail."""

    def __init__(self) -> None:
        self.entries: dict[str, list[journal_pb2.JournalEntry]] = {}
        self.pull_calls: list[tuple[str, int, int]] = []
        #: ``timeout_s`` of every get_offset and pull call (None: the caller gave no budget)
        self.timeouts: list[float | None] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.down = False

    def append(self, payload: bytes, partition: str = PARTITION) -> journal_pb2.JournalEntry:
        log = self.entries.setdefault(partition, [])
        hlc = pack(int(time.time() * 1000), 0)
        if log and hlc <= log[-1].hlc:
            hlc = log[-1].hlc + 1
        entry = journal_pb2.JournalEntry(partition=partition, offset=len(log) + 1, hlc=hlc,
                                         request_id=uuid.uuid4().hex, payload=payload, shards=[0])
        log.append(entry)
        return entry

    def head(self, partition: str) -> tuple[int, int]:
        log = self.entries.get(partition, [])
        return (log[-1].offset, log[-1].hlc) if log else (0, 0)

    async def get_offset(self, partition: str, *, timeout_s: float | None = None) -> tuple[int, int]:
        self.timeouts.append(timeout_s)
        if self.down:
            raise Unavailable("journal down")
        return self.head(partition)

    async def get_offsets(self, partitions: Sequence[str] = ()) -> dict[str, tuple[int, int]]:
        if self.down:
            raise Unavailable("journal down")
        return {p: self.head(p) for p in partitions}

    async def pull(self, partition: str, from_offset: int, to_offset: int = 0, *,
                   timeout_s: float | None = None) -> list[journal_pb2.JournalEntry]:
        self.pull_calls.append((partition, from_offset, to_offset))
        self.timeouts.append(timeout_s)
        await self.gate.wait()
        if self.down:
            raise Unavailable("journal down")
        log = self.entries.get(partition, [])
        last = to_offset or len(log)
        return [e for e in log if from_offset <= e.offset <= last]

    def subscribe(self, partition: str, from_offset: int,
                  **_: object) -> AsyncIterator[journal_pb2.JournalEntry]:
        raise NotImplementedError("unit tests drive the cache without a push stream")

    async def leave(self, partition: str, replica_id: str, **_: object) -> bool:
        """A consumer stopping on purpose; nothing is tracked here."""
        return False


_FOLLOWERS: weakref.WeakKeyDictionary[ShardCache, dict[str, PartitionFollower]] = weakref.WeakKeyDictionary()


def followers_for(journal: object, cache: ShardCache, **kw: Any) -> dict[str, PartitionFollower]:
    """The partition followers of ``cache`` over ``journal`` (the same ones on every call)."""
    if cache not in _FOLLOWERS:
        _FOLLOWERS[cache] = cache_followers(journal, cache, replica_id="q", **kw)  # type: ignore[arg-type]
    return _FOLLOWERS[cache]


async def warm(journal: object, cache: ShardCache, **kw: Any) -> int:
    """Warm ``cache`` up from ``journal`` with its followers."""
    return await warm_up(followers_for(journal, cache), **kw)


async def sync_to(followers: dict[str, PartitionFollower], target: int, partition: str = PARTITION) -> bool:
    """Sync ``partition`` to ``target``; whether this call pulled or waited on a pull."""
    return (await followers[partition].sync(target)).pulled


class NodeRegistry:
    """A meta manager's node registry (what the storage fallback lists) that a test changes at will;
    ``fail`` makes it unreachable."""

    def __init__(self, nodes: Sequence[meta_pb2.NodeInfo] = ()) -> None:
        self.nodes = list(nodes)
        self.reads = 0
        self.fail = False

    async def list_nodes(self, role: str = "") -> list[meta_pb2.NodeInfo]:
        self.reads += 1
        if self.fail:
            raise Unavailable("meta manager at 127.0.0.1:9 is unavailable")
        return [n for n in self.nodes if not role or n.role == role]


def storage_node(address: str, shards: Sequence[int], *, state: str = "up",
                 loading: Sequence[int] = ()) -> meta_pb2.NodeInfo:
    """A storage node's registration serving ``shards`` (``loading``: still catching up)."""
    return meta_pb2.NodeInfo(node_id=f"storage@{address}", role="storage", address=address,
                             shards=list(shards), loading_shards=list(loading), state=state)
