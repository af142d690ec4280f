"""The schema cache and the gateway while the meta manager is down (docs/consistency.md,
"When the meta manager is down").

A fake cluster whose meta manager can be taken down: its Watch stream breaks, every
meta call raises ``Unavailable`` naming it, and while it is down the fake's catalog can
still be changed behind the gateway's back (as another gateway would). Checked:

- cached schemas keep being served while the stream is broken, marked possibly stale;
- a miss fails with 503 naming the meta manager, not 404 (also when it only times out);
- on reconnect the stream's snapshot replaces the cache wholesale: a collection dropped
  meanwhile disappears, a recreated one has its new incarnation; a snapshot cut before its
  end marker leaves the cache as it was;
- writes, deletes, searches at every level, reads by id and listings work from the cache;
  DDL fails with 503 naming the meta manager and works again once it is back;
- a query processor's NotFound does not evict the cached schema.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncGenerator, AsyncIterator, Callable

import pytest
from prometheus_client import REGISTRY

from tests.support.waits import until
from tests.unit.gateway.fakes import FakeDownstream
from vecraft.services.api_gateway.downstream import SNAPSHOT_END
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.listing import ListQuery
from vecraft.services.api_gateway.models import (
    CollectionSpec,
    DeleteBatch,
    GetQuery,
    RequestContext,
    SearchQuery,
    WriteBatch,
)
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.common.errors import DeadlineExceeded, NotFound, Unavailable, VecraftError
from vecraft.shared.model.consistency import ConsistencyLevel
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

pytestmark = pytest.mark.unit

META = "meta manager at 127.0.0.1:7200"
#: An event that makes the fake's open Watch stream fail, as a dead meta manager's does.
_BREAK = (-1, None)


class MetaOutageDownstream(FakeDownstream):
    """:class:`FakeDownstream` whose meta manager can be taken down and brought back."""

    def __init__(self) -> None:
        super().__init__()
        self.down: VecraftError | None = None
        self.streams_opened = 0
        #: Cut the next stream after its snapshot, before the end marker.
        self.cut_before_marker = False

    def go_down(self, error: VecraftError | None = None) -> None:
        self.down = error or Unavailable(f"{META} is unavailable: connection refused",
                                         details={"service": META})
        self.events.put_nowait(_BREAK)  # type: ignore[arg-type]

    def come_back(self) -> None:
        self.down = None

    def _check(self) -> None:
        if self.down is not None:
            raise self.down

    async def get_collection(self, tenant: str, name: str) -> CollectionSchema:
        self._check()
        return await super().get_collection(tenant, name)

    async def list_collections(self, tenant: str) -> list[CollectionSchema]:
        self._check()
        return await super().list_collections(tenant)

    async def create_collection(self, request: collection_pb2.CreateCollectionRequest) -> CollectionSchema:
        self._check()
        return await super().create_collection(request)

    async def drop_collection(self, request: collection_pb2.DropCollectionRequest
                              ) -> collection_pb2.DropCollectionResponse:
        self._check()
        return await super().drop_collection(request)

    async def alter_collection(self, request: collection_pb2.AlterCollectionRequest) -> CollectionSchema:
        self._check()
        return await super().alter_collection(request)

    async def behind_the_back(self, request: collection_pb2.CreateCollectionRequest | None = None, *,
                              drop: str | None = None) -> CollectionSchema | None:
        """Change the catalog while the gateway cannot see it (its stream is broken), as
        another gateway would. Nothing here suspends, so the gateway never sees it up."""
        down, self.down = self.down, None
        try:
            if drop is not None:
                await super().drop_collection(collection_pb2.DropCollectionRequest(name=drop))
            return await super().create_collection(request) if request is not None else None
        finally:
            self.down = down

    async def watch_collections(self) -> AsyncIterator[tuple[int, CollectionSchema | None]]:
        self._check()
        self.streams_opened += 1
        # A new stream carries only changes made after it opened: forget older events.
        while not self.events.empty():
            self.events.get_nowait()
        stream: AsyncGenerator[tuple[int, CollectionSchema | None], None] = super().watch_collections()
        try:
            async for event_type, schema in stream:
                if (event_type, schema) == _BREAK:
                    raise self.down or Unavailable(f"{META} is unavailable")
                if event_type == SNAPSHOT_END and self.cut_before_marker:
                    self.cut_before_marker = False
                    raise Unavailable(f"{META} is unavailable: stream reset")
                yield event_type, schema
        finally:
            await stream.aclose()


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    await until(predicate, timeout)


def _connected_gauge() -> float | None:
    return REGISTRY.get_sample_value("vecraft_gateway_schema_watch_connected_state")


@pytest.fixture
async def fake() -> MetaOutageDownstream:
    return MetaOutageDownstream()


@pytest.fixture
async def cache(fake: MetaOutageDownstream) -> AsyncIterator[SchemaCache]:
    schemas = SchemaCache(fake)
    task = asyncio.create_task(schemas.run_watch())
    await _until(lambda: schemas.watching)
    yield schemas
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def _create(name: str, dim: int) -> collection_pb2.CreateCollectionRequest:
    return collection_pb2.CreateCollectionRequest(name=name, dim=dim)


async def test_cached_schemas_are_served_while_the_watch_is_broken(
        fake: MetaOutageDownstream, cache: SchemaCache) -> None:
    created = await fake.create_collection(_create("a", 2))
    await _until(lambda: cache.cached("default", "a") is not None)
    assert _connected_gauge() == 1
    fake.go_down()
    await _until(lambda: not cache.watching)
    assert _connected_gauge() == 0
    # Served from the cache, without asking the meta manager (which would raise).
    assert await cache.get("default", "a") == created
    # And still after several failed reconnects.
    opened = fake.streams_opened
    fake.events.put_nowait(_BREAK)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert await cache.get("default", "a") == created
    assert fake.streams_opened == opened  # reconnects fail before a stream opens


@pytest.mark.parametrize("error", [
    Unavailable(f"{META} is unavailable: connection refused", details={"service": META}),
    DeadlineExceeded(f"{META} timed out: DEADLINE_EXCEEDED", details={"service": META}),
])
async def test_a_miss_while_the_meta_manager_is_down_is_503_not_404(
        fake: MetaOutageDownstream, cache: SchemaCache, error: VecraftError) -> None:
    fake.go_down(error)
    await _until(lambda: not cache.watching)
    with pytest.raises(Unavailable) as raised:
        await cache.get("default", "never_cached")
    assert raised.value.http_status == 503
    assert "never_cached" in raised.value.message and "meta manager" in raised.value.message
    assert raised.value.details["service"] == META
    # Back: the miss is asked again and answered (404 now, from the meta manager).
    fake.come_back()
    with pytest.raises(NotFound):
        await cache.get("default", "never_cached")


async def test_reconnect_snapshot_replaces_the_cache_wholesale(
        fake: MetaOutageDownstream, cache: SchemaCache) -> None:
    kept = await fake.create_collection(_create("kept", 2))
    old = await fake.create_collection(_create("recreated", 2))
    await fake.create_collection(_create("dropped", 2))
    await _until(lambda: cache.cached("default", "dropped") is not None)
    fake.go_down()
    await _until(lambda: not cache.watching)
    # Changed behind the gateway's back while it is disconnected.
    await fake.behind_the_back(drop="dropped")
    new = await fake.behind_the_back(_create("recreated", 3), drop="recreated")
    assert new is not None and new.collection_id != old.collection_id
    # Still the old view while disconnected: possibly stale, by design.
    assert cache.cached("default", "recreated") == old
    assert cache.cached("default", "dropped") is not None

    # A stream cut before its snapshot ends changes nothing.
    fake.cut_before_marker = True
    fake.come_back()
    await _until(lambda: not fake.cut_before_marker)
    assert cache.cached("default", "recreated") == old

    await _until(lambda: cache.watching)
    assert cache.cached("default", "dropped") is None
    assert cache.cached("default", "recreated") == new
    assert cache.cached("default", "kept") == kept
    assert (await cache.get("default", "recreated")).collection_id == new.collection_id
    # Live events apply again after the snapshot.
    await fake.create_collection(_create("later", 4))
    await _until(lambda: cache.cached("default", "later") is not None)


async def test_put_keeps_the_later_state_of_a_name(fake: MetaOutageDownstream, cache: SchemaCache) -> None:
    first = await fake.create_collection(_create("a", 2))
    later = dataclasses.replace(first, ddl_offset=first.ddl_offset + 5, collection_id="c-later")
    cache.put(later)
    cache.put(first)  # an older answer arriving late does not replace a later state
    assert cache.cached("default", "a") == later


async def test_data_path_works_and_ddl_fails_503_while_the_meta_manager_is_down(
        fake: MetaOutageDownstream, cache: SchemaCache) -> None:
    gateway = Gateway(fake, cache)
    ctx = RequestContext(request_id="setup")
    await gateway.create_collection(CollectionSpec(name="docs", dim=2), ctx)
    await _until(lambda: cache.cached("default", "docs") is not None)
    fake.go_down()
    await _until(lambda: not cache.watching)

    written = await gateway.write(WriteBatch(vectors=[[1.0, 0.0], [0.0, 1.0]], ids=["x", "y"],
                                             collection="docs", ack=journal_pb2.ACK_ALL),
                                  RequestContext(request_id="w1"))
    assert written.offset > 0
    for level in ConsistencyLevel:
        found = await gateway.search(SearchQuery(vector=[1.0, 0.0], k=2, level=level, collection="docs"),
                                     RequestContext(request_id=f"s-{level.name}"))
        assert [h.id for h in found.hits][:1] == ["x"], level
    got = await gateway.get(GetQuery(ids=["x", "nope"], collection="docs", level=ConsistencyLevel.STRONG),
                            RequestContext(request_id="g1"))
    assert [r.id for r in got.records] == ["x"] and got.missing_ids == ["nope"]
    page = await gateway.list_records(ListQuery(collection="docs", level=ConsistencyLevel.STRONG),
                                      RequestContext(request_id="l1"))
    assert [r.id for r in page.records] == ["x", "y"]
    deleted = await gateway.delete(DeleteBatch(ids=["y"], collection="docs"), RequestContext(request_id="d1"))
    assert deleted.deleted_ids == ["y"]

    # DDL needs the meta manager: 503 naming it.
    with pytest.raises(Unavailable, match="meta manager"):
        await gateway.create_collection(CollectionSpec(name="other", dim=2), RequestContext(request_id="c"))
    with pytest.raises(Unavailable, match="meta manager"):
        await gateway.drop_collection("docs", RequestContext(request_id="dr"))
    # A write to a collection the gateway never cached: 503, not 404 (nor an implicit create).
    with pytest.raises(Unavailable, match="meta manager"):
        await gateway.write(WriteBatch(vectors=[[1.0, 0.0]], ids=["z"], collection="unknown"),
                            RequestContext(request_id="w2"))

    fake.come_back()
    await _until(lambda: cache.watching)
    await gateway.create_collection(CollectionSpec(name="other", dim=2), RequestContext(request_id="c2"))
    await gateway.drop_collection("docs", RequestContext(request_id="dr2"))
    with pytest.raises(NotFound):
        await gateway.search(SearchQuery(vector=[1.0, 0.0], k=2, collection="docs"),
                             RequestContext(request_id="s-after-drop"))


async def test_a_processors_not_found_does_not_evict_the_schema(
        fake: MetaOutageDownstream, cache: SchemaCache) -> None:
    gateway = Gateway(fake, cache)
    await gateway.create_collection(CollectionSpec(name="docs", dim=2), RequestContext(request_id="c"))
    await _until(lambda: cache.cached("default", "docs") is not None)
    fake.go_down()
    await _until(lambda: not cache.watching)
    fake.fail_shards = {s: NotFound("collection 'docs' is unknown to this processor") for s in range(3)}
    with pytest.raises(NotFound):
        await gateway.search(SearchQuery(vector=[1.0, 0.0], k=1, collection="docs"),
                             RequestContext(request_id="s1"))
    fake.fail_shards = {}
    # Still cached: the next search is answered without the meta manager.
    assert cache.cached("default", "docs") is not None
    await gateway.search(SearchQuery(vector=[1.0, 0.0], k=1, collection="docs"),
                         RequestContext(request_id="s2"))
