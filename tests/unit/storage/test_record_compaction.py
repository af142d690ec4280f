"""Record file compaction and tombstone collection of one replica, in process, on real files.

What a compaction must keep (every live record byte for byte, with its entry offset and HLC),
what a crash at each of its steps leaves (the old file or the new, complete, never a mix), reads
racing it, the steady state of an upsert-heavy workload, and which tombstone rows may go.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from tests.unit.storage import payloads, rewrites
from vecraft.services.storage_node import metrics, record_compaction
from vecraft.services.storage_node.backup import _checkpoint
from vecraft.services.storage_node.journal_replay.applier import Applier
from vecraft.services.storage_node.journal_replay.engine import ApplyEngine
from vecraft.services.storage_node.journal_replay.recovery import LocalState, open_local_state
from vecraft.services.storage_node.mmap import LocationIndex, RecordFile
from vecraft.services.storage_node.record_compaction import (
    CompactionPolicy,
    RecordCompactor,
    compact_record_file,
    record_files,
)
from vecraft.services.storage_node.replica import ReplicaConfig, ShardReplica

pytestmark = pytest.mark.unit

COUNT = 1500


class Crash(BaseException):
    """Stands for the process dying at that instant: no exception handler of the code under test runs."""


def _open(path: Path) -> tuple[LocalState, Applier]:
    state = open_local_state(path, 0)
    return state, Applier(0, state.records, state.locations, state.registry, state.applied)


def _rounds(applier: Applier, log: payloads.EntryLog, first: int, last: int, count: int = COUNT) -> None:
    s = rewrites.schema()
    if first == 1:
        applier.apply("data-0", [log.entry(payloads.ddl(s))])
    for round_ in range(first, last + 1):
        applier.apply("data-0", [log.entry(p) for p in rewrites.round_payloads(s, count, round_)])


def _full_records(state: LocalState) -> dict[str, tuple[bytes, str, str, int, int]]:
    """id -> (vector bytes, metadata, document, entry offset, hlc), read like a Get."""
    s = rewrites.schema()
    ids = [r.id for r in state.locations.live_rows(s.collection_id)]
    out = {}
    for record_id, loc in state.locations.lookup(s.collection_id, ids).items():
        view = state.records.read(loc.file_offset, loc.length)
        out[record_id] = (view.vector.tobytes(), view.metadata_json, view.document, view.entry_offset,
                          view.hlc)
    return out


def _live_bytes(locations: LocationIndex) -> int:
    return sum(length for _c, _i, _o, length in locations.live_blocks())


def test_compaction_keeps_every_record_and_reclaims_the_dead_blocks(tmp_path: Path) -> None:
    state, applier = _open(tmp_path / "n")
    log = payloads.EntryLog()
    _rounds(applier, log, 1, 4)
    s = rewrites.schema()
    last = applier.apply("data-0", [log.entry(payloads.delete(s, [rewrites.rid(n) for n in range(0, 300)]))])
    assert last.deleted == 300
    before = _full_records(state)
    assert len(before) == COUNT - 300
    size_before = state.records.end - state.records.base
    assert state.records.dead_bytes == size_before - _live_bytes(state.locations)

    result = compact_record_file(state.records, state.locations)
    state.records.release_previous()

    assert result.live_blocks == COUNT - 300 and result.bytes_before == size_before
    assert result.bytes_after == _live_bytes(state.locations) == state.records.end - state.records.base
    assert state.records.dead_bytes == 0
    assert _full_records(state) == before
    assert [p.name for p in record_files(tmp_path / "n")] == ["records-000001.bin"]
    assert state.locations.get_meta("records_file") == "records-000001.bin"
    assert state.records.base == size_before  # offsets of the new file start where the old one ended

    # Writes after the compaction append to the new file and supersede blocks in it.
    _rounds(applier, log, 5, 5, count=500)
    after = _full_records(state)
    assert state.records.dead_bytes > 0
    state.close()
    reopened, _ = _open(tmp_path / "n")
    assert _full_records(reopened) == after
    assert set(reopened.registry.get("", "docs").index.ids()) == set(after)
    assert reopened.records.dead_bytes == reopened.records.end - reopened.records.base - _live_bytes(
        reopened.locations)
    reopened.close()


@pytest.mark.parametrize("step", ["write", "commit", "remove"])
def test_a_crash_at_each_step_leaves_one_complete_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        step: str) -> None:
    """write: the new file is written but not committed; commit: the transaction never commits;
    remove: committed, the old file not deleted yet. Re-opened: the old file (first two) or the new
    one (last) is the only record file, and every record is there."""
    state, applier = _open(tmp_path / "n")
    log = payloads.EntryLog()
    _rounds(applier, log, 1, 3)
    before = _full_records(state)

    def crash(*_args: object, **_kwargs: object) -> None:
        raise Crash

    if step == "write":
        write = RecordFile.write_compacted

        def write_then_crash(self: RecordFile, *args: object) -> None:
            write(self, *args)  # type: ignore[arg-type]
            raise Crash

        monkeypatch.setattr(RecordFile, "write_compacted", write_then_crash)
    elif step == "commit":
        monkeypatch.setattr(LocationIndex, "commit_compaction", crash)
    else:
        monkeypatch.setattr(record_compaction, "_remove_replaced", crash)
    with pytest.raises(Crash):
        compact_record_file(state.records, state.locations)
    assert len(record_files(tmp_path / "n")) == 2  # both files on disk at the crash
    monkeypatch.undo()

    # The crashed process's handles are abandoned, not closed.
    reopened, applier = _open(tmp_path / "n")
    expected = "records-000001.bin" if step == "remove" else "records.bin"
    assert [p.name for p in record_files(tmp_path / "n")] == [expected]
    assert _full_records(reopened) == before
    assert set(reopened.registry.get("", "docs").index.ids()) == set(before)
    # And it goes on: more writes, another compaction, another start.
    _rounds(applier, log, 4, 4)
    compact_record_file(reopened.records, reopened.locations)
    reopened.records.release_previous()
    after = _full_records(reopened)
    assert {v[3] for v in after.values()} == {log.offset - 1, log.offset}
    reopened.close()
    again, _ = _open(tmp_path / "n")
    assert _full_records(again) == after
    assert len(record_files(tmp_path / "n")) == 1
    again.close()


def test_a_failed_compaction_keeps_the_current_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state, applier = _open(tmp_path / "n")
    log = payloads.EntryLog()
    _rounds(applier, log, 1, 2)
    before = _full_records(state)

    def disk_full(*_args: object, **_kwargs: object) -> None:
        raise OSError("no space left on device")

    monkeypatch.setattr(LocationIndex, "commit_compaction", disk_full)
    with pytest.raises(OSError):
        compact_record_file(state.records, state.locations)
    monkeypatch.undo()
    assert [p.name for p in record_files(tmp_path / "n")] == ["records.bin"]
    assert not state.records.retains_previous and state.records.base == 0
    assert _full_records(state) == before
    _rounds(applier, log, 3, 3)  # appends still go to the old file
    assert compact_record_file(state.records, state.locations).live_blocks == COUNT
    state.close()


def test_rewriting_the_same_ids_20_times_reaches_a_steady_size(tmp_path: Path) -> None:
    state, applier = _open(tmp_path / "n")
    log = payloads.EntryLog()
    policy = CompactionPolicy(dead_fraction=0.5, min_dead_bytes=0)
    peak = 0
    compactions = 0
    for round_ in range(1, 21):
        _rounds(applier, log, round_, round_)
        live = _live_bytes(state.locations)
        used = state.records.end - state.records.base
        # Due once the dead blocks are half the file: a round more than the live data at most.
        assert used < 3 * live
        peak = max(peak, used)
        if policy.due(state.records):
            compact_record_file(state.records, state.locations)
            state.records.release_previous()
            compactions += 1
            assert state.records.end - state.records.base == live
            # On disk: the live data rounded up to the file's 1 MiB growth step.
            assert state.records.path.stat().st_size <= max(2 * live, 1 << 20)
    assert compactions >= 9
    uncompacted = 20 * live
    assert peak < uncompacted / 6
    assert rewrites.expected_rounds(COUNT, log.offset) == {
        k: (r, o) for k, (r, o, _h) in rewrites.stored(state, COUNT).items()}
    state.close()


async def test_reads_during_compactions_never_fail_nor_return_another_record(tmp_path: Path) -> None:
    """Reader threads do what Get does (look the locations up, read the blocks) inside requests of
    the replica while rounds are applied and compacted; each read is a record some round wrote,
    never older than what the same reader saw before."""
    config = ReplicaConfig(partitions=("data-0",))
    replica = ShardReplica(0, 0, tmp_path / "n", config, node_id="node")
    await replica.open()
    local = replica.local
    applier = Applier(0, local.records, local.locations, local.registry, local.applied)
    engine = ApplyEngine(applier, local.registry, local.snapshots, on_applied=lambda _p, _o: None,
                         snapshot_every_ops=0, snapshot_every_s=0)
    compactor = RecordCompactor(0, local.records, local.locations, local.snapshots, engine,
                                CompactionPolicy(0.3, 0), replica.quiesce)
    log = payloads.EntryLog()
    s = rewrites.schema()
    count = 600
    entries = [log.entry(payloads.ddl(s)), *(log.entry(p) for p in rewrites.round_payloads(s, count, 1))]
    await engine.apply("data-0", entries, path="pull")
    stop = threading.Event()
    reads = [0]
    failures: list[BaseException] = []
    ids = [rewrites.rid(n) for n in range(count)]

    def get_all(seen: dict[str, int]) -> None:
        found = replica.locations.lookup(s.collection_id, ids)
        assert len(found) == count
        for record_id, loc in found.items():
            view = replica.records.read(loc.file_offset, loc.length)
            round_ = rewrites.check(record_id, view.vector, view.metadata_json, view.document)
            assert round_ >= seen.get(record_id, 0)
            seen[record_id] = round_
        reads[0] += 1

    async def reader() -> None:
        seen: dict[str, int] = {}
        try:
            while not stop.is_set():
                with replica.use():
                    await asyncio.to_thread(get_all, seen)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    done = 0
    for round_ in range(2, 8):
        await engine.apply("data-0", [log.entry(p) for p in rewrites.round_payloads(s, count, round_)],
                           path="pull")
        if await compactor.tick() is not None:
            done += 1
    stop.set()
    await asyncio.gather(*readers)
    assert not failures, failures[0]
    assert done >= 5 and reads[0] > done
    assert {r for r, _o, _h in rewrites.stored(local, count).values()} == {7}
    assert not local.records.retains_previous
    await replica.close()


async def test_a_request_holding_an_old_location_reads_it_and_holds_the_old_file(tmp_path: Path) -> None:
    replica = ShardReplica(0, 0, tmp_path / "n", ReplicaConfig(partitions=("data-0",)), node_id="node")
    await replica.open()
    local = replica.local
    applier = Applier(0, local.records, local.locations, local.registry, local.applied)
    log = payloads.EntryLog()
    _rounds(applier, log, 1, 2, count=100)
    s = rewrites.schema()
    with replica.use():
        old = local.locations.lookup(s.collection_id, ["id-000007"])["id-000007"]
        compact_record_file(local.records, local.locations)
        new = local.locations.lookup(s.collection_id, ["id-000007"])["id-000007"]
        assert new.file_offset >= local.records.base > old.file_offset
        waiting = asyncio.create_task(replica.quiesce())
        with replica.use():  # a request starting after the switch does not hold it up
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert not waiting.done()
        # Both locations name the same record, each in its own file.
        views = [local.records.read(loc.file_offset, loc.length) for loc in (old, new)]
        assert views[0].document == views[1].document and views[0].entry_offset == views[1].entry_offset
    await asyncio.wait_for(waiting, 5)
    local.records.release_previous()
    assert not local.records.retains_previous
    await replica.close()


def _collection_state(state: LocalState) -> tuple[set[str], list[list[str]]]:
    coll = state.registry.get("", "docs")
    queries = np.random.default_rng(5).standard_normal((5, rewrites.DIM)).astype(np.float32)
    return set(coll.index.ids()), [coll.index.search(q, 10)[0] for q in queries]


async def test_tombstones_are_collected_only_up_to_the_snapshot_and_a_restart_rebuilds_the_same(
        tmp_path: Path) -> None:
    state, applier = _open(tmp_path / "n")
    log = payloads.EntryLog()
    s = rewrites.schema()
    _rounds(applier, log, 1, 1, count=400)
    early = applier.apply("data-0", [log.entry(payloads.delete(s, [rewrites.rid(n) for n in range(0, 100)]))])
    state.snapshots.save(dict(state.applied),
                         {c.collection_id: c.index for c in state.registry.collections()})
    # After the snapshot: deleted ids (two of them deleted before too), one id written again.
    late_ids = [rewrites.rid(n) for n in range(98, 150)]
    late = applier.apply("data-0", [log.entry(payloads.delete(s, late_ids))])
    _rounds(applier, log, 2, 2, count=1)  # id-000000, deleted before the snapshot, written again
    assert state.locations.counts()[s.collection_id] == (251, 149)
    before = _collection_state(state)

    engine = ApplyEngine(applier, state.registry, state.snapshots, on_applied=lambda _p, _o: None,
                         snapshot_every_ops=0, snapshot_every_s=0)
    compactor = RecordCompactor(0, state.records, state.locations, state.snapshots, engine,
                                CompactionPolicy(0.0, 0), asyncio.sleep)
    collected = metrics.TOMBSTONES_COLLECTED.labels("0")._value.get()
    await compactor.tick()
    # The 97 tombstones the snapshot covers are gone (id-000000's row is live again); 98 and 99 were
    # deleted again after it: their rows, like the later ones, stay for start-up to replay.
    assert metrics.TOMBSTONES_COLLECTED.labels("0")._value.get() - collected == 97
    rows = state.locations.lookup(s.collection_id, [rewrites.rid(n) for n in range(400)])
    tombstones = {k: r.entry_offset for k, r in rows.items() if r.status != 1}
    assert set(tombstones) == set(late_ids) and set(tombstones.values()) == {late.applied_offset}
    assert early.applied_offset < late.applied_offset
    # Where it got to is kept with the rows, so the next collection (after a restart too) starts there.
    assert state.locations.get_meta("tombstones_collected") == f'{{"data-0":{early.applied_offset}}}'
    await compactor.tick()  # nothing new under the snapshot: nothing more collected
    assert metrics.TOMBSTONES_COLLECTED.labels("0")._value.get() - collected == 97
    state.close()

    restarted, _ = _open(tmp_path / "n")
    assert restarted.replayed_rows == len(late_ids) + 1
    assert _collection_state(restarted) == before
    restarted.close()
    (tmp_path / "n" / "snapshot").rename(tmp_path / "old-snapshot")
    rebuilt, _ = _open(tmp_path / "n")  # no snapshot: every index from the live rows alone
    assert _collection_state(rebuilt)[0] == before[0]
    rebuilt.close()


def test_a_record_file_from_before_compaction_existed_opens_as_it_is(tmp_path: Path) -> None:
    """A data dir of the previous version: records.bin, no records_file in meta."""
    state, applier = _open(tmp_path / "n")
    _rounds(applier, payloads.EntryLog(), 1, 2, count=50)
    before = _full_records(state)
    state.close()
    db = LocationIndex(tmp_path / "n" / "locations.sqlite")
    assert db.get_meta("records_file") is None and db.get_meta("records_base") is None
    db.close()
    reopened, _ = _open(tmp_path / "n")
    assert reopened.records.path.name == "records.bin" and _full_records(reopened) == before
    reopened.close()


def test_the_policy_needs_both_the_dead_fraction_and_the_minimum(tmp_path: Path) -> None:
    records = RecordFile(tmp_path / "r.bin")
    records.end = 100 << 20
    records.dead_bytes = 40 << 20
    assert not CompactionPolicy(0.5, 8 << 20).due(records)
    records.dead_bytes = 50 << 20
    assert CompactionPolicy(0.5, 8 << 20).due(records)
    assert not CompactionPolicy(0.5, 64 << 20).due(records)
    assert not CompactionPolicy(0.0, 0).due(records)  # 0 disables
    records.close()
    with pytest.raises(ValueError, match="dead fraction"):
        CompactionPolicy(1.5)


async def test_a_backup_of_a_compacted_replica_stores_records_bin_and_opens_as_a_replica(
        tmp_path: Path) -> None:
    replica = ShardReplica(0, 0, tmp_path / "n", ReplicaConfig(partitions=("data-0",)), node_id="node")
    await replica.open()
    local = replica.local
    applier = Applier(0, local.records, local.locations, local.registry, local.applied)
    _rounds(applier, payloads.EntryLog(), 1, 3, count=300)
    compact_record_file(local.records, local.locations)
    local.records.release_previous()
    before = _full_records(local)
    staging = tmp_path / "backup" / "shard-0"
    _checkpoint(replica, staging, dict(local.applied))
    await replica.close()
    assert sorted(p.name for p in staging.iterdir()) == ["locations.sqlite", "records.bin", "snapshot"]
    restored, _ = _open(staging)  # what a restore or a seeded replica opens
    assert restored.records.path.name == "records.bin" and restored.records.base > 0
    assert _full_records(restored) == before
    restored.close()
