"""Storage node sync: a target beyond the journal head fails its own request only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.unit.storage import payloads
from tests.unit.storage.test_follower_sync import FakeJournal
from vecraft.services.storage_node.journal_replay.applier import Applier
from vecraft.services.storage_node.journal_replay.engine import ApplyEngine
from vecraft.services.storage_node.journal_replay.follower import storage_follower
from vecraft.services.storage_node.journal_replay.recovery import open_local_state
from vecraft.shared.common.errors import InvalidRequest

pytestmark = pytest.mark.unit


async def test_a_bad_target_does_not_fail_the_syncs_waiting_with_it(tmp_path: Path) -> None:
    log = payloads.EntryLog()
    s = payloads.schema(dim=4)
    rng = np.random.default_rng(3)
    entries = [log.entry(payloads.ddl(s))]
    entries += [log.entry(payloads.write(s, [f"i{n}"], rng.standard_normal((1, 4)))) for n in range(10)]
    state = open_local_state(tmp_path, 0)
    applier = Applier(0, state.records, state.locations, state.registry, state.applied)
    engine = ApplyEngine(applier, state.registry, state.snapshots, on_applied=lambda _p, _o: None,
                         snapshot_every_ops=0, snapshot_every_s=0)
    follower = storage_follower("data-0", engine, FakeJournal(entries),  # type: ignore[arg-type]
                                 replica_id="r", shard=0)
    bad = asyncio.create_task(follower.sync(500))
    await asyncio.sleep(0)  # the bad request goes first: on main it started the shared pull
    targets = (3, 8, 11, None)
    good = [asyncio.create_task(follower.sync(t)) for t in targets]
    with pytest.raises(InvalidRequest, match="min_required_offset 500 is beyond the head 11 of data-0"):
        await bad
    outcomes = await asyncio.gather(*good)
    assert [o.applied_offset >= (t or 11) for o, t in zip(outcomes, targets, strict=True)] == [True] * 4
    assert follower.applied_offset == 11
