"""Quota records in the meta manager, on both backends, through a real meta manager process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest

from tests.support.procs import ServiceProcess
from vecraft.clients.meta import MetaClient
from vecraft.shared.common.errors import InvalidRequest, NotFound
from vecraft.shared.rpc.v1 import meta_pb2

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(120)]


@pytest.fixture
async def shared_client(shared_meta: ServiceProcess) -> AsyncIterator[MetaClient]:
    c = MetaClient(shared_meta.grpc_address)
    yield c
    await c.close()


async def test_set_list_delete_and_watch(shared_client: MetaClient) -> None:
    client = shared_client
    seen: dict[tuple[str, str], meta_pb2.Quota | None] = {}
    snapshot_done = asyncio.Event()
    changed = asyncio.Event()

    async def follow() -> None:
        async for event in client.watch(["quotas"], snapshot_end=True):
            if event.WhichOneof("item") is None:
                snapshot_done.set()
                continue
            assert event.WhichOneof("item") == "quota"
            subject = (event.quota.tenant, event.quota.key_id)
            seen[subject] = None if event.type == meta_pb2.WatchEvent.DELETE else event.quota
            changed.set()

    async def until(check: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not check():
                changed.clear()
                await changed.wait()

    watcher = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(snapshot_done.wait(), 10)
        stored = await client.set_quota(meta_pb2.Quota(tenant="qa", write_requests_per_s=5, max_vectors=100))
        assert stored.updated_unix_ms > 0 and stored.write_requests_per_s == 5
        await client.set_quota(meta_pb2.Quota(tenant="qa", key_id="0123456789ab", read_requests_per_s=2))
        await until(lambda: ("qa", "0123456789ab") in seen)
        assert seen[("qa", "")] is not None and seen[("qa", "")].max_vectors == 100  # type: ignore[union-attr]
        # A set replaces the whole record.
        await client.set_quota(meta_pb2.Quota(tenant="qa", read_requests_per_s=9))
        await until(lambda: seen[("qa", "")] is not None and seen[("qa", "")].read_requests_per_s == 9)
        listed = await client.list_quotas("qa")
        assert [(q.key_id, q.max_vectors, q.read_requests_per_s) for q in listed] == [
            ("", 0, 9), ("0123456789ab", 0, 2)]
        assert ("qa", "") in {(q.tenant, q.key_id) for q in await client.list_quotas()}
        removed = await client.delete_quota("qa")
        assert removed.read_requests_per_s == 9
        await until(lambda: seen[("qa", "")] is None)
        with pytest.raises(NotFound):
            await client.delete_quota("qa")
        assert [q.key_id for q in await client.list_quotas("qa")] == ["0123456789ab"]
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


@pytest.mark.parametrize("quota", [
    meta_pb2.Quota(tenant="a b"),
    meta_pb2.Quota(tenant="qa", key_id="xyz"),
    meta_pb2.Quota(tenant="qa", key_id="0123456789ab", max_collections=3),
    meta_pb2.Quota(tenant="qa", max_request_bytes=10),
    meta_pb2.Quota(tenant="qa", max_request_bytes=2**40),
], ids=["tenant", "key-id", "tenant-limit-on-key", "tiny-size", "huge-size"])
async def test_bad_quotas_are_refused(shared_client: MetaClient, quota: meta_pb2.Quota) -> None:
    with pytest.raises(InvalidRequest):
        await shared_client.set_quota(quota)


async def test_quotas_survive_a_restart(start_meta: Callable[..., ServiceProcess]) -> None:
    meta = start_meta()
    client = MetaClient(meta.grpc_address)
    try:
        await client.set_quota(meta_pb2.Quota(tenant="kept", write_vectors_per_s=50))
        meta.restart()
        assert [(q.tenant, q.write_vectors_per_s) for q in await client.list_quotas()] == [("kept", 50)]
    finally:
        await client.close()
