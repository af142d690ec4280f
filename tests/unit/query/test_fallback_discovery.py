"""The storage fallback finds the storage nodes of a shard in the meta manager's registry, and
looks again when the shard moved or a node died; while the registry cannot answer it keeps
its last view."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from tests.unit.query.fakes import NodeRegistry as Registry
from tests.unit.query.fakes import storage_node as node
from vecraft.services.query_processor.vector_search.consistency import ReadRequirement
from vecraft.services.query_processor.vector_search.fallback import StorageFallback
from vecraft.services.query_processor.vector_search.request import ParsedQuery
from vecraft.services.storage_node.main import ShardNotHosted
from vecraft.shared.common import in_process
from vecraft.shared.common.errors import NotFound, Unavailable
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.rpc.v1 import search_pb2, storage_pb2

pytestmark = pytest.mark.unit

A, B, C = "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"


class StorageNode:
    """A storage node of this process (answered without gRPC, as in standalone mode)."""

    def __init__(self, address: str, shards: set[int]) -> None:
        self.address, self.shards = address, shards
        self.asked: list[int] = []

    async def storage_search_in_process(self, request: storage_pb2.ShardSearchRequest
                                        ) -> storage_pb2.ShardSearchResponse:
        self.asked.append(request.shard)
        if request.shard not in self.shards:
            raise ShardNotHosted(f"shard {request.shard} is not hosted by {self.address}")
        if request.collection == "missing":
            raise NotFound("collection 'missing' does not exist")
        return storage_pb2.ShardSearchResponse(
            results=[search_pb2.ScoredVector(id=f"{self.address}/{request.shard}", score=1.0)],
            partition="data-0", index_version=7, shard=request.shard)


@pytest.fixture
def nodes() -> Iterator[dict[str, StorageNode]]:
    made = {a: StorageNode(a, set()) for a in (A, B, C)}
    for address, service in made.items():
        in_process.register(address, service)
    yield made
    for address in made:
        in_process.unregister(address)


@pytest.fixture
async def fallback_of() -> AsyncIterator[list[StorageFallback]]:
    made: list[StorageFallback] = []
    yield made
    for f in made:
        await f.close()


def query(*shards: int, collection: str = "c") -> ParsedQuery:
    return ParsedQuery(tenant="default", collection=collection, vector=np.ones(4, np.float32), k=1,
                       filter=None, filter_json="", ef_search=None, shards=shards,
                       requirement=ReadRequirement(ConsistencyLevel.EVENTUAL), timeout_ms=2000)


def answered_by(answer: object) -> list[str]:
    return [h.ids[0] for h in answer.hits]  # type: ignore[attr-defined]


async def test_replicas_come_from_the_registry(nodes: dict[str, StorageNode],
                                               fallback_of: list[StorageFallback]) -> None:
    nodes[A].shards, nodes[B].shards = {0, 2}, {1}
    registry = Registry([node(A, [0, 2]), node(B, [1]), node(C, [], loading=[1])])
    fallback = StorageFallback(registry)
    fallback_of.append(fallback)
    answer = await fallback.search(query(0, 1, 2), timeout_s=2.0)
    assert answered_by(answer) == [f"{A}/0", f"{B}/1", f"{A}/2"]
    assert nodes[C].asked == [], "a node still loading a shard is not asked for it"
    assert registry.reads == 1
    await fallback.search(query(0, 1, 2), timeout_s=2.0)
    assert registry.reads == 1, "a known shard does not read the registry again"


async def test_a_shard_that_moved_is_found_on_its_new_node(nodes: dict[str, StorageNode],
                                                           fallback_of: list[StorageFallback],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vecraft.services.query_processor.vector_search.fallback.REDISCOVER_MIN_S", 0.0)
    nodes[A].shards = {0}
    registry = Registry([node(A, [0])])
    fallback = StorageFallback(registry)
    fallback_of.append(fallback)
    assert answered_by(await fallback.search(query(0), timeout_s=2.0)) == [f"{A}/0"]
    # The fail-over manager re-placed shard 0 on C; A dropped it.
    nodes[A].shards, nodes[C].shards = set(), {0}
    registry.nodes = [node(A, []), node(C, [0])]
    assert answered_by(await fallback.search(query(0), timeout_s=2.0)) == [f"{C}/0"]
    assert nodes[A].asked == [0, 0] and registry.reads == 2


async def test_down_nodes_are_skipped_and_a_shard_nobody_serves_is_unavailable(
        nodes: dict[str, StorageNode], fallback_of: list[StorageFallback]) -> None:
    nodes[A].shards = nodes[B].shards = {0}
    fallback = StorageFallback(Registry([node(A, [0], state="down"), node(B, [0])]))
    fallback_of.append(fallback)
    assert answered_by(await fallback.search(query(0), timeout_s=2.0)) == [f"{B}/0"]
    assert nodes[A].asked == []
    with pytest.raises(Unavailable, match="no storage replica of shard 1 is registered"):
        await fallback.search(query(1), timeout_s=2.0)


async def test_the_last_view_serves_while_the_registry_cannot_answer(
        nodes: dict[str, StorageNode], fallback_of: list[StorageFallback],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vecraft.services.query_processor.vector_search.fallback.REDISCOVER_MIN_S", 0.0)
    nodes[A].shards, nodes[B].shards = {0}, {0}
    registry = Registry([node(A, [0]), node(B, [0])])
    fallback = StorageFallback(registry)
    fallback_of.append(fallback)
    await fallback.search(query(0), timeout_s=2.0)
    registry.fail = True
    nodes[A].shards = set()  # A died; the registry is down too: B, known from before, answers
    assert answered_by(await fallback.search(query(0), timeout_s=2.0)) == [f"{B}/0"]
    nodes[B].shards = set()
    with pytest.raises(Unavailable, match="no storage replica of shard 0 answered"):
        await fallback.search(query(0), timeout_s=2.0)


async def test_a_request_error_is_not_retried_elsewhere(nodes: dict[str, StorageNode],
                                                        fallback_of: list[StorageFallback]) -> None:
    nodes[A].shards = nodes[B].shards = {0}
    fallback = StorageFallback(Registry([node(A, [0]), node(B, [0])]))
    fallback_of.append(fallback)
    with pytest.raises(NotFound):
        await fallback.search(query(0, collection="missing"), timeout_s=2.0)
    assert nodes[A].asked + nodes[B].asked == [0]


async def test_concurrent_searches_share_one_registry_read_and_later_ones_read_again(
        nodes: dict[str, StorageNode], fallback_of: list[StorageFallback],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("vecraft.services.query_processor.vector_search.fallback.REDISCOVER_MIN_S", 0.0)
    nodes[A].shards = {0}
    registry = Registry([node(A, [0])])
    fallback = StorageFallback(registry)
    fallback_of.append(fallback)
    await asyncio.gather(*(fallback.search(query(0), timeout_s=2.0) for _ in range(5)))
    assert registry.reads == 1
    # Shard 1 appears later on B: a search naming it reads the registry again.
    nodes[B].shards = {1}
    registry.nodes = [node(A, [0]), node(B, [1])]
    assert answered_by(await fallback.search(query(0, 1), timeout_s=2.0)) == [f"{A}/0", f"{B}/1"]
    assert registry.reads == 2
