"""API key records in the meta manager, on both backends, through a real meta manager process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.support.procs import ServiceProcess
from vecraft.clients.meta import MetaClient
from vecraft.services.meta_manager.api_keys import key_sha256, looks_like_key
from vecraft.shared.common.errors import InvalidRequest, NotFound
from vecraft.shared.rpc.v1 import meta_pb2

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


@pytest.fixture
async def client(shared_meta: ServiceProcess) -> AsyncIterator[MetaClient]:
    c = MetaClient(shared_meta.grpc_address)
    yield c
    await c.close()


async def test_create_list_revoke_and_watch(client: MetaClient, shared_meta: ServiceProcess) -> None:
    seen: dict[str, meta_pb2.ApiKeyInfo] = {}
    snapshot_done = asyncio.Event()
    changed = asyncio.Event()

    async def follow() -> None:
        async for event in client.watch(["keys"], snapshot_end=True):
            if event.WhichOneof("item") is None:
                snapshot_done.set()
                continue
            assert event.WhichOneof("item") == "api_key"
            seen[event.api_key.id] = event.api_key
            changed.set()

    watcher = asyncio.create_task(follow())
    try:
        await asyncio.wait_for(snapshot_done.wait(), 10)
        created = await client.create_api_key(role="write", tenant="acme", collections=["b", "a", "a"],
                                              name="ingest")
        assert looks_like_key(created.key) and created.key.startswith(f"vk_{created.info.id}_")
        info = created.info
        assert (info.role, info.tenant, list(info.collections), info.name) == ("write", "acme", ["a", "b"],
                                                                                 "ingest")
        assert info.key_sha256 == "" and info.created_unix_ms > 0 and not info.revoked

        # Watchers (gateways) get the hash, never the key.
        async with asyncio.timeout(10):
            while info.id not in seen:
                changed.clear()
                await changed.wait()
        assert seen[info.id].key_sha256 == key_sha256(created.key)
        assert created.key not in str(seen[info.id])

        listed = {k.id: k for k in await client.list_api_keys()}
        assert info.id in listed and listed[info.id].key_sha256 == ""

        revoked = await client.revoke_api_key(info.id)
        assert revoked.revoked and revoked.revoked_unix_ms > 0
        again = await client.revoke_api_key(info.id)
        assert again.revoked_unix_ms == revoked.revoked_unix_ms
        async with asyncio.timeout(10):
            while not seen[info.id].revoked:
                changed.clear()
                await changed.wait()
        assert info.id not in {k.id for k in await client.list_api_keys()}
        assert info.id in {k.id for k in await client.list_api_keys(include_revoked=True)}
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher

    # A restarted watcher sees the record (revoked) in its snapshot.
    async for event in client.watch(["keys"]):
        if event.api_key.id == info.id:
            assert event.api_key.revoked
            break


async def test_bad_grants_and_unknown_ids_are_refused(client: MetaClient) -> None:
    for kwargs in ({"role": "owner"}, {"role": "read", "tenant": "a b"},
                   {"role": "read", "collections": ["x/y"]}, {"role": "read", "name": "n" * 201}):
        with pytest.raises(InvalidRequest):
            await client.create_api_key(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        await client.revoke_api_key("000000000000")
    with pytest.raises(InvalidRequest):
        await client.revoke_api_key("")
    star = await client.create_api_key(role="admin", tenant="*")
    assert star.info.tenant == "*" and list(star.info.collections) == []
    default = await client.create_api_key(role="read")
    assert default.info.tenant == "default"
