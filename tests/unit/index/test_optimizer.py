"""The background optimizer: its policy, its checks, one rebuild per process, cancellation, and the
query processor's cache optimizer."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from prometheus_client import REGISTRY

from tests.unit.storage import payloads
from vecraft.services.query_processor.cache import ShardCache
from vecraft.services.query_processor.cache.optimizer import cache_optimizer, cached_indexes
from vecraft.shared.index import CollectionIndex
from vecraft.shared.index import optimizer as optimizer_module
from vecraft.shared.index.collection import OptimizeResult
from vecraft.shared.index.optimizer import IndexOptimizer, Label, OptimizeObserver, OptimizePolicy

pytestmark = pytest.mark.unit

WAIT_S = 30.0


def _index(rows: int, deleted: int, dim: int = 4) -> CollectionIndex:
    index = CollectionIndex(dim=dim, metric="l2")
    vectors = np.random.default_rng(rows + deleted).standard_normal((rows, dim)).astype(np.float32)
    index.upsert([f"i{j}" for j in range(rows)], vectors, [{"j": j} for j in range(rows)])
    index.delete([f"i{j}" for j in range(deleted)])
    return index


class Recorder(OptimizeObserver):
    def __init__(self) -> None:
        self.fractions: dict[Label, float] = {}
        self.forgotten: list[Label] = []
        self.rebuilds: list[tuple[Label, OptimizeResult]] = []

    def dead_fraction(self, label: Label, fraction: float) -> None:
        self.fractions[label] = fraction

    def forget(self, label: Label) -> None:
        self.forgotten.append(label)
        self.fractions.pop(label, None)

    def rebuilt(self, label: Label, result: OptimizeResult) -> None:
        self.rebuilds.append((label, result))


def test_policy_needs_the_fraction_and_enough_dead_rows() -> None:
    policy = OptimizePolicy(threshold=0.2, min_dead_rows=100)
    assert not policy.due(_index(1000, 100))  # 10 % dead
    assert policy.due(_index(1000, 250))
    assert not policy.due(_index(200, 99))  # half dead, but fewer than 100 rows
    assert not OptimizePolicy(threshold=0.0, min_dead_rows=0).due(_index(100, 90))  # disabled
    assert not OptimizePolicy(threshold=0.2, min_dead_rows=0).due(_index(100, 0))  # nothing dead
    with pytest.raises(ValueError):
        OptimizePolicy(threshold=1.5)


async def test_a_check_rebuilds_the_most_dead_due_index_and_publishes_fractions() -> None:
    indexes: dict[Label, CollectionIndex] = {
        ("0", "t/light"): _index(1000, 300), ("0", "t/heavy"): _index(1000, 700),
        ("0", "t/clean"): _index(500, 0)}
    recorder = Recorder()
    opt = IndexOptimizer(lambda: list(indexes.items()), OptimizePolicy(0.2, 10), recorder, interval_s=0)
    result = await opt.tick()
    assert result is not None and result.dropped == 700
    assert [label for label, _ in recorder.rebuilds] == [("0", "t/heavy")]
    assert recorder.fractions == {("0", "t/light"): pytest.approx(0.3), ("0", "t/heavy"): 0.0,
                                  ("0", "t/clean"): 0.0}
    assert (await opt.tick()) is not None and indexes[("0", "t/light")].dead_rows == 0
    assert await opt.tick() is None  # nothing due any more
    del indexes[("0", "t/light")]
    await opt.tick()
    assert recorder.forgotten == [("0", "t/light")] and ("0", "t/light") not in recorder.fractions


async def test_one_rebuild_at_a_time_per_process() -> None:
    index = _index(1000, 500)
    opt = IndexOptimizer(lambda: [(("0", "c"), index)], OptimizePolicy(0.2, 10), interval_s=0)
    assert optimizer_module._PROCESS_SLOT.acquire(blocking=False)  # another rebuild of this process runs
    try:
        assert await opt.tick() is None and index.dead_rows == 500
    finally:
        optimizer_module._PROCESS_SLOT.release()
    assert await opt.tick() is not None and index.dead_rows == 0


class _Paused(CollectionIndex):
    """Pauses its rebuild after the copy until the rebuild is asked to stop."""

    started = threading.Event()

    def optimize(self, **kwargs: Any) -> OptimizeResult | None:
        stop: threading.Event = kwargs["stop"]

        def on_phase(phase: str) -> None:
            if phase == "copied":
                self.started.set()
                assert stop.wait(WAIT_S)

        return super().optimize(stop=stop, on_phase=on_phase)


async def test_cancelling_the_loop_stops_the_rebuild_and_waits_for_it() -> None:
    index = _Paused(dim=4, metric="l2")
    index.upsert([f"p{j}" for j in range(600)], np.ones((600, 4), np.float32), [None] * 600)
    index.delete([f"p{j}" for j in range(400)])
    graph = index._graph
    task = asyncio.create_task(IndexOptimizer(lambda: [(("0", "c"), index)], OptimizePolicy(0.2, 10),
                                              interval_s=0).run())
    assert await asyncio.to_thread(index.started.wait, WAIT_S)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The thread ended (it released the slot) and left the index as it was.
    assert index._graph is graph and index.dead_rows == 400 and index._touched is None
    assert optimizer_module._PROCESS_SLOT.acquire(blocking=False)
    optimizer_module._PROCESS_SLOT.release()


async def test_the_query_processor_cache_optimizer_rebuilds_cached_collections() -> None:
    schema = payloads.schema("cached", dim=4, metric="l2", tenant="acme")
    log = payloads.EntryLog()
    rng = np.random.default_rng(3)
    ids = [f"q{j}" for j in range(400)]
    with ThreadPoolExecutor(2) as pool:
        cache = ShardCache([0], ["data-0"], pool)
        await cache.apply("data-0", [log.entry(payloads.ddl(schema)),
                                     log.entry(payloads.write(schema, ids, rng.standard_normal((400, 4)))),
                                     log.entry(payloads.delete(schema, ids[:300]))])
        [(label, index)] = cached_indexes(cache)
        assert label == ("0", "acme/cached") and index.dead_rows == 300
        labels = {"shard": "0", "collection": "acme/cached"}
        before = REGISTRY.get_sample_value("vecraft_query_index_rebuilds_total", labels) or 0.0
        opt = cache_optimizer(lambda: cache, 0.2, min_dead_rows=100, interval_s=0)
        result = await opt.tick()
        assert result is not None and result.dropped == 300 and len(index) == 100
        assert REGISTRY.get_sample_value("vecraft_query_index_rebuilds_total", labels) == before + 1
        assert REGISTRY.get_sample_value("vecraft_query_index_dead_ratio", labels) == 0.0
        assert sorted(cache.states[0].index("acme", "cached").ids()) == sorted(ids[300:])
        assert await cache_optimizer(lambda: cache, 0.0, min_dead_rows=0).tick() is None
        assert cached_indexes(None) == []
