"""The journal GC floor: what each consumer, the archive and a down replica's retention allow to trim."""

from __future__ import annotations

from pathlib import Path

import pytest

from vecraft.services.compactor.floor import Memory, floors, trimmable
from vecraft.services.compactor.main import _load_memory, _save_memory
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.unit

HOUR_MS = 3_600_000


def stats(*replicas: tuple[str, str, int, bool, str], heads: dict[str, int] | None = None,
          firsts: dict[str, int] | None = None) -> journal_pb2.StatsResponse:
    heads = heads or {"data-0": 1000, "data-1": 500, "system": 40}
    out = journal_pb2.StatsResponse()
    for name, head in heads.items():
        out.partitions.add(partition=name, head_offset=head, first_offset=(firsts or {}).get(name, 1))
    for partition, rid, applied, live, role in replicas:
        out.replicas.add(partition=partition, replica_id=rid, applied_offset=applied, live=live, role=role)
    return out


def by_partition(found: list) -> dict[str, tuple[int, str]]:
    return {f.partition: (f.offset, f.held_by) for f in found}


def test_the_slowest_replica_holds_each_partition_and_system_is_never_trimmed() -> None:
    s = stats(("data-0", "a/shard-0", 900, True, "replica"), ("data-0", "b/shard-1", 700, True, "replica"),
              ("data-1", "a/shard-0", 480, True, "replica"), ("data-0", "q/cache", 650, True, "cache"),
              ("system", "a/shard-0", 40, True, "replica"))
    memory = Memory()
    memory.observe(s, now_ms=10 * HOUR_MS)
    got = by_partition(floors(s, memory, bounds={}))
    # The cache holds nothing: a processor whose cache falls below the floor answers through storage.
    assert got == {"data-0": (700, "replica b/shard-1"), "data-1": (480, "replica a/shard-0")}


def test_the_archive_and_the_newest_backups_bound_the_floor_when_a_target_is_set() -> None:
    s = stats(("data-0", "a/shard-0", 900, True, "replica"), ("data-1", "a/shard-0", 480, True, "replica"))
    memory = Memory()
    memory.observe(s, now_ms=0)
    got = by_partition(floors(s, memory, bounds={"archive": {"data-0": 300, "data-1": 480},
                                                 "backup": {"data-0": 350}}))
    # data-1 has no backed-up shard copy yet: nothing of it may go.
    assert got == {"data-0": (300, "archive"), "data-1": (0, "backup")}


def test_a_down_replica_holds_gc_until_its_retention_then_no_longer() -> None:
    memory = Memory()
    memory.observe(stats(("data-0", "a/shard-0", 900, True, "replica"),
                         ("data-0", "b/shard-0", 200, True, "replica")), now_ms=0)
    # b goes down: the journal forgets it (restart) or lists it as not live; both keep its floor.
    memory.observe(stats(("data-0", "a/shard-0", 950, True, "replica")), now_ms=HOUR_MS)
    assert memory.forget_expired(HOUR_MS, retention_ms=2 * HOUR_MS) == {}
    assert by_partition(floors(stats(), memory, bounds={}))["data-0"] == (200, "replica b/shard-0")
    memory.observe(stats(("data-0", "b/shard-0", 200, False, "replica")), now_ms=2 * HOUR_MS)
    assert memory.consumers[("data-0", "b/shard-0")].last_live_ms == 0  # not live: last seen live stays
    gone = memory.forget_expired(2 * HOUR_MS + 1, retention_ms=2 * HOUR_MS)
    assert list(gone) == [("data-0", "b/shard-0")]
    assert by_partition(floors(stats(), memory, bounds={}))["data-0"] == (950, "replica a/shard-0")


def test_only_floors_above_the_first_offset_are_trimmed() -> None:
    s = stats(("data-0", "a/shard-0", 900, True, "replica"), ("data-1", "a/shard-0", 480, True, "replica"),
              firsts={"data-0": 900, "data-1": 100})
    memory = Memory()
    memory.observe(s, now_ms=0)
    found = floors(s, memory, bounds={})
    assert [(f.partition, f.offset) for f in trimmable(found, {"data-0": 900, "data-1": 100})] == [
        ("data-1", 480)]


def test_remembered_consumers_survive_a_restart_of_the_compactor(tmp_path: Path) -> None:
    memory = Memory()
    memory.observe(stats(("data-0", "b/shard-0", 200, True, "replica"), ("data-1", "b/shard-0", 90, True,
                                                                      "replica")), now_ms=77)
    _save_memory(tmp_path / "consumers.json", memory)
    assert _load_memory(tmp_path / "consumers.json") == memory
    assert _load_memory(tmp_path / "missing.json") == Memory()
