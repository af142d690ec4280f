"""kill -9 a process in the middle of a record file compaction: the replica re-opens complete.

The process (``tests/unit/storage/rewrites.py``) rewrites the same ids round after round and
compacts after each round. It is killed four times over the same directory inside a compaction
(between its ``compacting`` and ``compacted`` lines; a kill that missed is tried again): twice at
a random instant, twice once the new file exists and the old one is still there (before or after
the commit that switches to it). After each kill the directory opens with one record file and exactly
the records of the journal prefix it holds: every id with the round and entry offset of its last
write at or below the applied offset.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.unit.storage import rewrites
from vecraft.services.storage_node.journal_replay.recovery import open_local_state
from vecraft.services.storage_node.record_compaction import record_files

pytestmark = [pytest.mark.integration, pytest.mark.slow]

COUNT = 5_000
REPO = Path(__file__).resolve().parents[3]


def _kill_inside_a_compaction(data_dir: Path, rng: random.Random, *, both_files: bool) -> list[str]:
    """Run the workload and kill it with SIGKILL during a compaction; returns the record files left.

    ``both_files``: kill once the new file exists and the old one is not deleted yet (the commit
    may or may not have happened); else at a random instant of the compaction. A kill that missed
    its moment is tried again.
    """
    for _attempt in range(20):
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.unit.storage.rewrites", str(data_dir), str(COUNT)],
            cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        try:
            # The first compaction after start gives how long one takes here.
            assert proc.stdout.readline().startswith("compacting")
            began = time.monotonic()
            assert proc.stdout.readline().startswith("compacted")
            took = time.monotonic() - began
            current = set(record_files(data_dir))
            assert proc.stdout.readline().startswith("compacting")
            if both_files:
                while set(record_files(data_dir)) == current and time.monotonic() - began < 30:
                    time.sleep(0.0002)
                time.sleep(rng.uniform(0, took * 0.3))
            else:
                time.sleep(rng.uniform(0, took * 0.8))
            proc.kill()
            proc.wait()
            rest = proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        left = [p.name for p in record_files(data_dir)]
        # Killed before it printed "compacted": inside the compaction.
        if not rest.strip() and (len(left) == 2 or not both_files):
            return left
    raise AssertionError("no kill landed at the moment wanted")


def test_kill_9_during_compactions_never_loses_or_mixes_records(tmp_path: Path) -> None:
    rng = random.Random(7)
    data_dir = tmp_path / "shard-0"
    for both_files in (True, False, True, False):
        left = _kill_inside_a_compaction(data_dir, rng, both_files=both_files)
        assert len(left) == 2 or not both_files
        state = open_local_state(data_dir, 0)
        try:
            assert len(record_files(data_dir)) == 1
            assert state.records.path.name == state.locations.get_meta("records_file")
            applied = state.applied["data-0"][0]
            expected = rewrites.expected_rounds(COUNT, applied)
            assert len(expected) == COUNT
            got = rewrites.stored(state, COUNT)
            assert {k: (r, o) for k, (r, o, _h) in got.items()} == expected
            assert set(state.registry.get("", "docs").index.ids()) == set(expected)
        finally:
            state.close()
