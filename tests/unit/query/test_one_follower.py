"""Pull-before-read lives in one place: both replicas follow the journal with the same component."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.unit.query.fakes import PARTITION, FakeJournal
from vecraft.services.query_processor.cache import ShardCache, cache_followers
from vecraft.services.storage_node.journal_replay.applier import Applier
from vecraft.services.storage_node.journal_replay.engine import ApplyEngine
from vecraft.services.storage_node.journal_replay.follower import storage_follower
from vecraft.services.storage_node.journal_replay.recovery import open_local_state
from vecraft.shared.replica.follower import PartitionFollower

pytestmark = pytest.mark.unit


def test_the_storage_node_and_the_query_processor_use_the_same_follower(tmp_path: Path) -> None:
    journal = FakeJournal()
    with ThreadPoolExecutor(max_workers=1) as pool:
        cache = ShardCache([0], [PARTITION], pool)
        query = cache_followers(journal, cache, replica_id="q")[PARTITION]  # type: ignore[arg-type]
    state = open_local_state(tmp_path, 0)
    engine = ApplyEngine(Applier(0, state.records, state.locations, state.registry, state.applied),
                         state.registry, state.snapshots, on_applied=lambda _p, _o: None)
    storage = storage_follower(PARTITION, engine, journal, replica_id="s", shard=0)  # type: ignore[arg-type]
    assert type(query) is type(storage) is PartitionFollower
    assert query.applier is cache and storage.applier is engine
    assert (query.role, storage.role) == ("cache", "replica")
    state.close()
