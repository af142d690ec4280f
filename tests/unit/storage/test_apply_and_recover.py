"""Applier and start-up recovery in process: atomic batches, idempotence, snapshot + local replay."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.unit.storage import payloads
from vecraft.services.storage_node.journal_replay.applier import Applier, JournalGap
from vecraft.services.storage_node.journal_replay.recovery import LocalState, open_local_state
from vecraft.shared.model.routing import shard_of
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.unit

DIM = 8


def _open(path: Path, shard: int = 0) -> tuple[LocalState, Applier]:
    state = open_local_state(path, shard)
    return state, Applier(shard, state.records, state.locations, state.registry, state.applied)


def _answers(state: LocalState, queries: np.ndarray) -> list[list[str]]:
    coll = state.registry.get("default", "docs")
    return [coll.index.search(q, 5)[0] for q in queries]


def _history(rng: np.random.Generator) -> tuple[payloads.EntryLog, list[journal_pb2.JournalEntry]]:
    log = payloads.EntryLog()
    s = payloads.schema(dim=DIM, shards=2)
    entries = [log.entry(payloads.ddl(s))]
    for batch in range(6):
        ids = [f"v{batch}-{i}" for i in range(50)]
        entries.append(log.entry(payloads.write(s, ids, rng.standard_normal((50, DIM)),
                                                [{"batch": batch}] * 50, [f"doc {i}" for i in ids])))
    entries.append(log.entry(payloads.delete(s, [f"v0-{i}" for i in range(25)])))
    entries.append(log.entry(payloads.write(s, ["v1-0", "v1-1"], rng.standard_normal((2, DIM)))))
    return log, entries


def test_apply_is_idempotent_and_keeps_only_this_shard(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    _log, entries = _history(rng)
    state, applier = _open(tmp_path / "n0", shard=0)
    result = applier.apply("data-0", entries[:4])
    assert result.applied_offset == 4 and result.ddl == 1
    # Replaying an overlapping run applies only the new entries.
    again = applier.apply("data-0", entries)
    assert again.entries == len(entries) - 4
    assert applier.apply("data-0", entries).entries == 0
    coll = state.registry.get("", "docs")
    expected = {f"v{b}-{i}" for b in range(6) for i in range(50)} - {f"v0-{i}" for i in range(25)}
    expected = {i for i in expected if shard_of(i, 2) == 0}
    assert set(coll.index.ids()) == expected
    assert state.locations.progress()["data-0"][0] == len(entries)
    with pytest.raises(JournalGap):
        applier.apply("data-0", [journal_pb2.JournalEntry(partition="data-0", offset=len(entries) + 5,
                                                          hlc=1)])
    state.close()


def test_restart_from_snapshot_plus_local_replay_gives_same_answers(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    _log, entries = _history(rng)
    queries = rng.standard_normal((10, DIM)).astype(np.float32)
    state, applier = _open(tmp_path / "n")
    applier.apply("data-0", entries[:4])
    state.snapshots.save(dict(state.applied),
                         {c.collection_id: c.index for c in state.registry.collections()})
    applier.apply("data-0", entries[4:])  # after the snapshot: replayed from the record file
    before = _answers(state, queries)
    ids_before = set(state.registry.get("", "docs").index.ids())
    state.close()

    restarted, _ = _open(tmp_path / "n")
    assert restarted.replayed_rows > 0
    assert restarted.applied["data-0"][0] == len(entries)
    assert set(restarted.registry.get("", "docs").index.ids()) == ids_before
    assert _answers(restarted, queries) == before
    restarted.close()

    # Without any snapshot: every index is rebuilt from the record file alone.
    shutil.rmtree(tmp_path / "n" / "snapshot")
    rebuilt, _ = _open(tmp_path / "n")
    assert set(rebuilt.registry.get("", "docs").index.ids()) == ids_before
    rebuilt.close()


def test_drop_removes_rows_and_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    log, entries = _history(rng)
    state, applier = _open(tmp_path / "n")
    s = payloads.schema(dim=DIM, shards=2)
    applier.apply("data-0", [*entries, log.entry(payloads.ddl(s, journal_pb2.CollectionDDL.DROP))])
    assert len(state.registry) == 0
    assert state.locations.counts() == {}
    state.close()
    restarted, _ = _open(tmp_path / "n")
    assert len(restarted.registry) == 0
    restarted.close()


def test_applied_offset_moves_only_after_the_indexes_show_the_entries(tmp_path: Path) -> None:
    """Readers on the event loop read the applied offset while an apply runs in a worker thread:
    an offset that moved before the index update would let a read claim (index_version) a write
    its search cannot see yet."""
    rng = np.random.default_rng(4)
    _log, entries = _history(rng)
    state, applier = _open(tmp_path / "n")
    applier.apply("data-0", entries[:2])
    coll = state.registry.get("", "docs")
    seen_during_index_update: list[int] = []
    upsert = coll.index.upsert

    def watching_upsert(*args: object, **kwargs: object) -> object:
        seen_during_index_update.append(applier.applied_offset("data-0"))
        return upsert(*args, **kwargs)

    coll.index.upsert = watching_upsert  # type: ignore[method-assign]
    result = applier.apply("data-0", entries[2:4])
    assert result.applied_offset == 4
    assert seen_during_index_update and set(seen_during_index_update) == {2}
    assert applier.applied_offset("data-0") == 4
    state.close()


def test_opening_removes_checkpoint_staging_a_dead_process_left(tmp_path: Path) -> None:
    """A node killed while it streamed a checkpoint (CopyShard, a backup) leaves its staging dir."""
    state, applier = _open(tmp_path)
    _, entries = _history(np.random.default_rng(3))
    applier.apply("data-0", entries)
    state.close()
    stale = tmp_path / ".checkpoint-abc123"
    (stale / "snapshot").mkdir(parents=True)
    (stale / "records.bin").write_bytes(b"x" * 4096)
    state, _ = _open(tmp_path)
    try:
        assert not stale.exists()
        assert state.applied, "the replica's own files are untouched"
    finally:
        state.close()
