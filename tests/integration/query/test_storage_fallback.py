"""A cold query processor answers through a real storage node, at the level asked, with cache_hit false.

The storage node is found where the query processor finds it in a cluster: in a real meta
manager's node registry, which the node joined by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.integration.query.conftest import Writer
from tests.support.procs import ServiceProcess
from tests.unit.query.fakes import PARTITION, followers_for
from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.services.query_processor.cache import ShardCache
from vecraft.services.query_processor.vector_search.fallback import StorageFallback
from vecraft.services.query_processor.vector_search.searcher import VectorSearcher
from vecraft.shared.common.errors import NotFound
from vecraft.shared.model.consistency import ConsistencyLevel as L
from vecraft.shared.rpc.v1 import query_pb2

pytestmark = pytest.mark.integration
DIM = 8


async def test_cold_cache_falls_back_to_storage(start_service: Callable[..., ServiceProcess],
                                                journal_proc: ServiceProcess, journal: JournalClient,
                                                writer: Writer, tmp_path: Path) -> None:
    meta = start_service("vecraft.services.meta_manager", [
        "--backend", "sqlite", "--data-dir", str(tmp_path / "meta"), "--journal-address",
        journal_proc.grpc_address, "--data-partitions", "1"], name="meta", ready_timeout=60.0)
    start_service("vecraft.services.storage_node", [
        "--shards", "0", "--replica", "0", "--journal-address", journal_proc.grpc_address,
        "--meta-address", meta.grpc_address, "--data-partitions", "1",
        "--data-dir", str(tmp_path / "storage"), "--apply-delay-ms", "1000"], ready_timeout=60.0)
    coll = await writer.create("fb", DIM)
    data = np.random.default_rng(3).standard_normal((30, DIM)).astype(np.float32)
    ack = await writer.write(coll, [f"v{i}" for i in range(30)], data)

    registry = MetaClient(meta.grpc_address, timeout_s=5.0)
    deadline = time.monotonic() + 60  # a hang detector: the wait ends on what it checks
    while not any(0 in n.shards for n in await registry.list_nodes("storage")):
        assert time.monotonic() < deadline, "the storage node never registered serving shard 0"
        await asyncio.sleep(0.05)
    fallback = StorageFallback(registry)
    with ThreadPoolExecutor(max_workers=1) as pool:
        cache = ShardCache([0], [PARTITION], pool)
        searcher = VectorSearcher(cache, followers_for(journal, cache), sync_timeout_ms=10_000,
                                  warm=lambda: False, fallback=fallback)
        try:
            req = query_pb2.QuerySearchRequest(collection="fb", vector=data[7].astype("<f4").tobytes(), k=3,
                                               level=int(L.STRONG))
            resp = await searcher.search(req)
            info = resp.consistency_info
            assert resp.results[0].id == "v7"
            assert not info.cache_hit and info.level_achieved == L.STRONG
            assert info.index_version_used >= ack.offset
            req.level, req.min_offset = int(L.READ_YOUR_WRITES), ack.offset
            assert (await searcher.search(req)).consistency_info.index_version_used >= ack.offset
            req.collection = "missing"
            with pytest.raises(NotFound):
                await searcher.search(req)
        finally:
            await fallback.close()
            await registry.close()
