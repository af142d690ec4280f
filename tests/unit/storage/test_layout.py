"""The per-shard data layout: a single-shard data dir (files at its root) is moved into shard-<s>/.

Real files: the old layout is written by the node's own stores (open_local_state + Applier at the
data dir's root, as the single-shard node did), then migrated and reopened.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.unit.storage import payloads
from vecraft.services.storage_node.journal_replay.applier import Applier
from vecraft.services.storage_node.journal_replay.recovery import open_local_state
from vecraft.services.storage_node.layout import LayoutError, migrate_single_shard_dir, replica_dir
from vecraft.shared.model.routing import shard_of

pytestmark = pytest.mark.unit

DIM = 4


def _single_shard_dir(root: Path, shard: int, *, snapshot: bool = True) -> set[str]:
    """Write the old layout: shard ``shard`` of a 3-shard collection at ``root``; returns its ids."""
    log = payloads.EntryLog()
    s = payloads.schema(dim=DIM, shards=3)
    ids = [f"r{i}" for i in range(30)]
    entries = [log.entry(payloads.ddl(s)),
               log.entry(payloads.write(s, ids, np.random.default_rng(1).standard_normal((30, DIM))))]
    state = open_local_state(root, shard)
    Applier(shard, state.records, state.locations, state.registry, state.applied).apply("data-0", entries)
    if snapshot:
        indexes = {c.collection_id: c.index for c in state.registry.collections()}
        state.snapshots.save(dict(state.applied), indexes)
    state.close()
    return {i for i in ids if shard_of(i, 3) == shard}


def test_a_single_shard_dir_moves_into_its_shard_directory_and_opens_with_its_records(tmp_path: Path) -> None:
    expected = _single_shard_dir(tmp_path, 2)
    assert (tmp_path / "records.bin").exists() and (tmp_path / "snapshot").is_dir()

    assert migrate_single_shard_dir(tmp_path, [2]) == 2

    target = replica_dir(tmp_path, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-2"]
    assert {"records.bin", "locations.sqlite", "snapshot"} <= {p.name for p in target.iterdir()}
    state = open_local_state(target, 2)
    try:
        assert set(state.registry.get("", "docs").index.ids()) == expected
        assert state.applied["data-0"][0] == 2
    finally:
        state.close()
    # Nothing left to move: a second start does nothing.
    assert migrate_single_shard_dir(tmp_path, [2]) is None


@pytest.mark.parametrize("hosted", [[0, 2], [1], [0, 1, 3]])
def test_a_single_shard_dir_is_refused_unless_the_node_hosts_exactly_its_shard(
        tmp_path: Path, hosted: list[int]) -> None:
    _single_shard_dir(tmp_path, 0, snapshot=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(LayoutError) as err:
        migrate_single_shard_dir(tmp_path, hosted)
    message = str(err.value)
    assert "shard 0 in the single-shard layout" in message
    assert f"hosts shards {', '.join(map(str, hosted))}" in message and "--shards 0" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # untouched


def test_a_shard_both_at_the_root_and_in_its_directory_is_refused(tmp_path: Path) -> None:
    _single_shard_dir(tmp_path, 1, snapshot=False)
    replica_dir(tmp_path, 1).mkdir()
    with pytest.raises(LayoutError, match="both at its root"):
        migrate_single_shard_dir(tmp_path, [1])


def test_root_files_without_a_location_index_are_refused(tmp_path: Path) -> None:
    (tmp_path / "records.bin").write_bytes(b"\0" * 16)
    with pytest.raises(LayoutError, match="no location index"):
        migrate_single_shard_dir(tmp_path, [0])


def test_a_migration_cut_short_by_a_crash_is_finished_at_the_next_start(tmp_path: Path) -> None:
    expected = _single_shard_dir(tmp_path, 0)
    # As if the process died after moving the location index into the staging directory.
    stage = tmp_path / ".migrating-shard-0"
    stage.mkdir()
    os.rename(tmp_path / "locations.sqlite", stage / "locations.sqlite")

    assert migrate_single_shard_dir(tmp_path, [0]) == 0

    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-0"]
    state = open_local_state(replica_dir(tmp_path, 0), 0)
    try:
        assert set(state.registry.get("", "docs").index.ids()) == expected
    finally:
        state.close()


def test_an_empty_or_per_shard_dir_needs_no_migration(tmp_path: Path) -> None:
    assert migrate_single_shard_dir(tmp_path / "missing", [0, 2]) is None
    _single_shard_dir(replica_dir(tmp_path, 0), 0, snapshot=False)
    assert migrate_single_shard_dir(tmp_path, [0, 2]) is None
