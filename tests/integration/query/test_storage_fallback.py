"""A cold query processor answers through a real storage node, at the level asked, with cache_hit false."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.integration.query.conftest import Writer
from tests.support.procs import ServiceProcess
from tests.unit.query.fakes import PARTITION, followers_for
from vecraft.clients.journal import JournalClient
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
    storage = start_service("vecraft.services.storage_node", [
        "--shards", "0", "--replica", "0", "--journal-address", journal_proc.grpc_address,
        "--data-partitions", "1", "--data-dir", str(tmp_path / "storage"), "--apply-delay-ms", "1000"],
        ready_timeout=60.0)
    coll = await writer.create("fb", DIM)
    data = np.random.default_rng(3).standard_normal((30, DIM)).astype(np.float32)
    ack = await writer.write(coll, [f"v{i}" for i in range(30)], data)

    fallback = StorageFallback([storage.grpc_address])
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
