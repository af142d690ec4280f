"""Placement changes inside a query processor: one at a time, the newest map wins over one not applied yet.

The processor runs in this process over an in-memory journal whose pulls can be held
(``FakeJournal.gate``); its push tails, head watch, registration and Watch stream park, and
the maps are handed to its PlacementWatch directly.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.waits import until
from tests.unit.query.fakes import FakeJournal, create_payload, write_payload
from vecraft.clients.meta import MetaClient
from vecraft.services.query_processor import main as query_main
from vecraft.services.query_processor.membership import PlacementWatch
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.replica.follower import HeadWatch, PartitionFollower
from vecraft.shared.rpc.v1 import meta_pb2, query_pb2

pytestmark = pytest.mark.unit
DIM = 4
NODE = "q"


class _Journal(FakeJournal):
    async def close(self) -> None:
        pass


async def _park(*_: Any, **__: Any) -> None:
    await asyncio.Event().wait()


async def _settle_and_park(self: PlacementWatch) -> None:
    self.settled.set()
    await asyncio.Event().wait()


def placement(version: int, shards: Sequence[int]) -> meta_pb2.PlacementMap:
    return meta_pb2.PlacementMap(version=version, shards=[
        meta_pb2.ShardAssignment(shard=s, query_nodes=[NODE] if s in shards else ["other"])
        for s in range(3)])


@pytest.fixture
async def processor(monkeypatch: pytest.MonkeyPatch,
                    tmp_path: Path) -> AsyncIterator[tuple[query_main.QueryProcessor, FakeJournal]]:
    journal = _Journal()
    schema, ddl = create_payload("c", DIM, shards=3)
    journal.append(ddl)
    journal.append(write_payload(schema, [f"r{i}" for i in range(30)],
                                 np.random.default_rng(1).standard_normal((30, DIM)).astype(np.float32)))
    monkeypatch.setattr(query_main, "JournalClient", lambda *_a, **_k: journal)
    monkeypatch.setattr(PartitionFollower, "run", _park)
    monkeypatch.setattr(HeadWatch, "run", _park)
    monkeypatch.setattr(MetaClient, "keep_registered", _park)
    monkeypatch.setattr(PlacementWatch, "run", _settle_and_park)
    svc = query_main.QueryProcessor(query_main.QueryProcessorSettings(
        grpc_port=0, http_port=0, shard=[0], data_dir=tmp_path, meta_address="127.0.0.1:1", node_id=NODE))
    runner = asyncio.create_task(svc.run())
    try:
        await until(lambda: svc.ready or runner.done())
        assert svc.shards == [0] and svc.failure is None
        yield svc, journal
    finally:
        journal.gate.set()
        await svc.shutdown()
        await asyncio.gather(runner, return_exceptions=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):  # installed by Service.run()
            loop.remove_signal_handler(sig)


async def test_one_change_at_a_time_and_the_newest_map_wins(
        processor: tuple[query_main.QueryProcessor, FakeJournal], monkeypatch: pytest.MonkeyPatch) -> None:
    svc, journal = processor
    assert svc._placement is not None
    served: list[list[int]] = []
    serve = svc._serve

    async def recording(wanted: list[int], version: int) -> None:
        served.append(wanted)
        await serve(wanted, version)

    monkeypatch.setattr(svc, "_serve", recording)
    svc._placement.offer(placement(1, [0, 1]))
    await until(lambda: svc.shards == [0, 1] and not svc.loading)
    assert svc._node_info().shards == [0, 1]

    journal.gate.clear()  # the next load holds at its first pull
    svc._placement.offer(placement(2, [0, 1, 2]))
    await until(lambda: svc.loading == [2])
    info = svc._node_info()
    assert (list(info.shards), list(info.loading_shards)) == ([0, 1], [2])
    request = query_pb2.QuerySearchRequest(collection="c", vector=np.ones(DIM, "<f4").tobytes(), k=3,
                                           shards=[2])
    with pytest.raises(Unavailable, match=r"shard 2 is not served .*serves \[0, 1\], loading \[2\]"):
        await svc.searcher.search(request)  # type: ignore[union-attr]
    svc._placement.offer(placement(3, [1]))
    svc._placement.offer(placement(4, [2]))
    journal.gate.set()
    await until(lambda: svc.shards == [2] and not svc.loading)
    assert served == [[0, 1], [0, 1, 2], [2]]  # version 3 was superseded before its turn
    assert svc.ready and svc.health_payload()["placement_version"] == 4
    resp = await svc.searcher.search(request)  # type: ignore[union-attr]
    assert len(resp.results) == 3 and list(resp.shards) == [2]
