"""A storage replica whose journal goes silent reports growing staleness; bounded reads then fail.

On main the estimator answered 0 whenever applied >= the last head it heard,
so a dead journal read as "fresh" and the query processor's warm-up fallback
served BOUNDED(200 ms) reads from it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.unit.query.fakes import NodeRegistry, storage_node
from tests.unit.storage import payloads
from vecraft.services.query_processor.vector_search.fallback import StorageFallback
from vecraft.services.query_processor.vector_search.request import parse_query
from vecraft.services.storage_node.journal_replay.applier import Applier
from vecraft.services.storage_node.journal_replay.engine import ApplyEngine
from vecraft.services.storage_node.journal_replay.follower import (
    HeadWatch,
    PartitionFollower,
    storage_follower,
)
from vecraft.services.storage_node.journal_replay.recovery import open_local_state
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.rpc.v1 import journal_pb2, query_pb2, storage_pb2

pytestmark = pytest.mark.unit


class SilencingJournal:
    """Answers until ``down`` is set, then every call fails (a dead or partitioned journal)."""

    def __init__(self, entries: list[journal_pb2.JournalEntry]) -> None:
        self.entries = entries
        self.down = False

    async def get_offset(self, partition: str) -> tuple[int, int]:
        if self.down:
            raise Unavailable("journal unreachable")
        return self.entries[-1].offset, self.entries[-1].hlc

    async def get_offsets(self, partitions: list[str]) -> dict[str, tuple[int, int]]:
        return {p: await self.get_offset(p) for p in partitions}

    async def pull(self, partition: str, from_offset: int,
                   to_offset: int = 0) -> list[journal_pb2.JournalEntry]:
        if self.down:
            raise Unavailable("journal unreachable")
        return [e for e in self.entries if from_offset <= e.offset <= (to_offset or e.offset)]


class FollowerStub:
    """The storage node's Search as far as staleness goes, over a real follower."""

    def __init__(self, follower: PartitionFollower) -> None:
        self.follower = follower

    async def Search(self, request: storage_pb2.ShardSearchRequest,  # noqa: N802 - gRPC name
                     timeout: float) -> storage_pb2.ShardSearchResponse:
        if request.sync_latest:
            await self.follower.sync(None)
        return storage_pb2.ShardSearchResponse(partition="data-0", index_version=self.follower.applied_offset,
                                               staleness_ms=self.follower.staleness_ms(), shard=0)


async def test_silent_journal_grows_staleness_and_bounded_reads_fail(tmp_path: Path) -> None:
    log = payloads.EntryLog()
    s = payloads.schema(dim=4)
    entries = [log.entry(payloads.ddl(s)), log.entry(payloads.write(s, ["a"], np.ones((1, 4))))]
    state = open_local_state(tmp_path, 0)
    applier = Applier(0, state.records, state.locations, state.registry, state.applied)
    engine = ApplyEngine(applier, state.registry, state.snapshots, on_applied=lambda _p, _o: None,
                         snapshot_every_ops=0, snapshot_every_s=0)
    journal = SilencingJournal(entries)
    follower = storage_follower("data-0", engine, journal, replica_id="r", shard=0)  # type: ignore[arg-type]
    watch = HeadWatch(journal, {"data-0": follower}, interval_s=0.02)  # type: ignore[arg-type]
    await follower.sync(None)
    await watch.poll_once()
    assert follower.staleness_ms() < 200

    fallback = StorageFallback(NodeRegistry([storage_node("s", [0])]))
    fallback._stubs = {"s": FollowerStub(follower)}  # type: ignore[dict-item]  # gRPC stand-in
    vec = np.ones(4, np.float32).astype("<f4").tobytes()
    q = parse_query(query_pb2.QuerySearchRequest(collection="docs", vector=vec, k=1,
                                                 level=int(L.BOUNDED_STALENESS), max_staleness_ms=200), [0])
    assert (await fallback.search(q, 1.0)).staleness_ms <= 200

    journal.down = True  # no more heartbeats or head reads
    polling = asyncio.create_task(watch.run())
    await asyncio.sleep(0.3)
    first = follower.staleness_ms()
    await asyncio.sleep(0.1)
    assert 300 <= first < follower.staleness_ms()  # growing, never "fresh"
    with pytest.raises(Unavailable):
        await fallback.search(q, 1.0)
    polling.cancel()
    await asyncio.gather(polling, return_exceptions=True)
    state.close()
