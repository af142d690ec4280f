"""Pull-before-read in process with a fake journal: coalesced pulls, nothing applied twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from tests.unit.storage import payloads
from vecraft.services.storage_node.journal_replay.applier import Applier
from vecraft.services.storage_node.journal_replay.engine import ApplyEngine
from vecraft.services.storage_node.journal_replay.follower import storage_follower
from vecraft.services.storage_node.journal_replay.recovery import open_local_state
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.unit


class FakeJournal:
    """Just the calls a follower's sync makes; counts pulls and slows them a little."""

    def __init__(self, entries: list[journal_pb2.JournalEntry]) -> None:
        self.entries = entries
        self.pulls = 0

    async def get_offset(self, partition: str) -> tuple[int, int]:
        return self.entries[-1].offset, self.entries[-1].hlc

    async def pull(self, partition: str, from_offset: int,
                   to_offset: int = 0) -> list[journal_pb2.JournalEntry]:
        self.pulls += 1
        await asyncio.sleep(0.05)
        return [e for e in self.entries if from_offset <= e.offset <= (to_offset or e.offset)]


async def test_concurrent_syncs_coalesce_and_apply_each_entry_once(tmp_path: Path) -> None:
    log = payloads.EntryLog()
    s = payloads.schema(dim=4)
    rng = np.random.default_rng(5)
    entries = [log.entry(payloads.ddl(s))]
    entries += [log.entry(payloads.write(s, [f"i{n}"], rng.standard_normal((1, 4)))) for n in range(20)]
    state = open_local_state(tmp_path, 0)
    applier = Applier(0, state.records, state.locations, state.registry, state.applied)
    reported: list[int] = []
    engine = ApplyEngine(applier, state.registry, state.snapshots,
                         on_applied=lambda _p, o: reported.append(o), snapshot_every_ops=0,
                         snapshot_every_s=0)
    journal = FakeJournal(entries)
    follower = storage_follower("data-0", engine, journal, replica_id="r", shard=0)  # type: ignore[arg-type]

    outcomes = await asyncio.gather(*(follower.sync(10) for _ in range(5)), follower.sync(None))
    assert all(o.applied_offset >= 10 for o in outcomes)
    assert follower.applied_offset == 21 and journal.pulls <= 2
    # Entries applied: each once, whichever caller's pull brought it.
    assert sum(o.entries_pulled for o in outcomes) >= 21 and len(state.registry.get("", "docs").index) == 20
    assert reported[-1] == 21 and reported == sorted(reported)
    assert (await follower.sync(21)).pulled is False  # already there: no pull
    assert journal.pulls <= 2
    # The push path delivering the same entries again changes nothing.
    assert await engine.apply("data-0", entries, path="push") == 0
    # Caught up: staleness is the age of the head read that confirmed it (never a bare 0).
    assert 0 < follower.staleness_ms() < 2000
    with pytest.raises(InvalidRequest, match="beyond the head 21 of data-0"):
        await follower.sync(99)
    state.close()
