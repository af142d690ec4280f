"""Reclaiming a shard replica's disk: record file compaction and tombstone-row collection.

Every upsert appends a block and marks the previous version DELETED; nothing in
the append-only record file is ever overwritten, so a workload rewriting the
same ids grows it with every write. A :class:`RecordCompactor` (one per hosted
replica, beside its other loops) checks every :data:`CHECK_INTERVAL_S`:

* **record file**: once its dead bytes (blocks no live row points to, a counter
  the applier keeps) reach ``dead_fraction`` of the file and at least
  ``min_dead_bytes``, :func:`compact_record_file` rewrites it with the live
  blocks only, under the apply lock (applies wait; reads go on);
* **tombstone rows**: a delete leaves a row (status DELETED) in the location
  index, which start-up needs only to delete the ids from a snapshot older than
  the delete. Rows written by entries at or below the current snapshot's offset
  of their partition are deleted (:func:`collect_tombstones`).

Crash safety of a compaction (any instant, kill -9 included):

1. the live blocks are written into a new file ``records-<generation>.bin``
   whose offsets start at the old file's end (offsets are never reused, see
   :class:`~.mmap.RecordFile`), which is fsynced with its directory;
2. ONE SQLite transaction points every live row at its new offset and names
   the new file, its base and its end in ``meta``;
3. the old file is deleted.

At start-up, :func:`open_record_file` opens the file ``meta`` names (absent: the
legacy ``records.bin``) and deletes any other record file: a new file whose
commit never happened (crash in 1-2), or an old file whose deletion did not
(crash in 2-3). Readers are never stopped: the old file stays mapped for the
requests that may hold its offsets until they all ended (``quiesce``).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from vecraft.services.storage_node import metrics
from vecraft.services.storage_node.indexes.snapshots import SnapshotStore
from vecraft.services.storage_node.journal_replay.engine import ApplyEngine, run_to_completion
from vecraft.services.storage_node.mmap import LocationIndex, RecordFile
from vecraft.shared.common.fsync import fsync_path

log = logging.getLogger(__name__)

#: The record file of a replica never compacted (and the name a backup stores the file under).
LEGACY_NAME = "records.bin"
_NAME = re.compile(r"records(?:-(\d+))?\.bin")
#: Compact once this share of the record file is dead blocks (0 = never).
DEFAULT_DEAD_FRACTION = 0.5
#: ... and at least this many dead bytes, so small files are not rewritten over and over.
DEFAULT_MIN_DEAD_BYTES = 8 << 20
#: How often a compactor looks (reading two counters and the snapshot's manifest).
CHECK_INTERVAL_S = 2.0
#: A compaction that failed is not tried again for this long.
RETRY_AFTER_FAILURE_S = 60.0

T = TypeVar("T")


def record_file_name(generation: int) -> str:
    """``records.bin`` for generation 0 (never compacted), else ``records-<generation>.bin``."""
    return LEGACY_NAME if generation == 0 else f"records-{generation:06d}.bin"


def _generation(name: str) -> int:
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"{name!r} is not a record file name")
    return int(match.group(1) or 0)


def record_files(data_dir: Path) -> list[Path]:
    """Every record file in ``data_dir`` (any generation)."""
    return sorted(p for p in data_dir.iterdir() if _NAME.fullmatch(p.name) and p.is_file())


def open_record_file(data_dir: Path, locations: LocationIndex) -> RecordFile:
    """Open the record file the location index names, deleting any other (an interrupted compaction)."""
    name = locations.get_meta("records_file") or LEGACY_NAME
    base = int(locations.get_meta("records_base") or 0)
    stray = [p for p in record_files(data_dir) if p.name != name]
    for path in stray:
        path.unlink()
        log.warning("removed a record file left by an interrupted compaction",
                    extra={"path": str(path), "current": name})
    if stray:
        fsync_path(data_dir)
    return RecordFile(data_dir / name, base)


@dataclass(frozen=True, slots=True)
class CompactionPolicy:
    """When a record file is compacted. ``dead_fraction`` 0 disables compaction."""

    dead_fraction: float = DEFAULT_DEAD_FRACTION
    min_dead_bytes: int = DEFAULT_MIN_DEAD_BYTES

    def __post_init__(self) -> None:
        if not 0.0 <= self.dead_fraction <= 1.0:
            raise ValueError(f"compaction dead fraction must be within [0, 1], got {self.dead_fraction}")
        if self.min_dead_bytes < 0:
            raise ValueError(f"compaction min dead bytes must be >= 0, got {self.min_dead_bytes}")

    def due(self, records: RecordFile) -> bool:
        dead = records.dead_bytes
        size = records.end - records.base
        return (self.dead_fraction > 0 and dead > 0 and dead >= self.min_dead_bytes
                and dead >= self.dead_fraction * size)


@dataclass(frozen=True, slots=True)
class CompactionResult:
    live_blocks: int
    bytes_before: int
    bytes_after: int
    file: str
    seconds: float

    @property
    def reclaimed(self) -> int:
        return self.bytes_before - self.bytes_after


def compact_record_file(records: RecordFile, locations: LocationIndex) -> CompactionResult:
    """Rewrite ``records`` with its live blocks only (steps 1-3 of the module docstring).

    The caller holds the apply lock (nothing appends, flips a status or commits meanwhile) and,
    once readers of the old file are gone, calls ``records.release_previous()``.
    """
    began = time.perf_counter()
    rows = locations.live_blocks()
    offsets = np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))
    lengths = np.fromiter((r[3] for r in rows), dtype=np.int64, count=len(rows))
    old = records.path
    before = records.end - records.base
    dest = old.with_name(record_file_name(_generation(old.name) + 1))
    base = records.end
    end = base + int(lengths.sum())
    try:
        new_offsets = records.write_compacted(dest, base, offsets, lengths)
    except Exception:
        dest.unlink(missing_ok=True)
        raise
    records.switch(dest, base, end)
    try:
        locations.commit_compaction([(r[0], r[1]) for r in rows], new_offsets.tolist(), file_end=end,
                                    records_file=dest.name, base=base)
    except Exception:
        records.switch_back()
        raise
    _remove_replaced(old)
    return CompactionResult(len(rows), before, end - base, dest.name, time.perf_counter() - began)


def _remove_replaced(path: Path) -> None:
    """Delete the compacted-away file (its mapping lives on until released); start-up would otherwise."""
    try:
        path.unlink()
        fsync_path(path.parent)
    except OSError:
        log.exception("could not delete the replaced record file; the next start-up removes it",
                      extra={"path": str(path)})


def collect_tombstones(locations: LocationIndex, snapshots: SnapshotStore) -> int:
    """Delete the tombstone rows of entries at or below the current snapshot's offsets; returns how many.

    A tombstone's only reader is start-up, re-applying the rows written after the snapshot; one
    at or below the snapshot's offset of its partition is already reflected by the snapshot's
    indexes (and a rebuild without a snapshot uses the live rows only). The caller holds the apply
    lock, under which snapshots are written too.
    """
    offsets = snapshots.offsets()
    if not offsets:
        return 0
    return locations.delete_tombstones({p: o for p, (o, _h) in offsets.items()})


class RecordCompactor:
    """One replica's compaction and tombstone collection loop (:meth:`run`), see the module docstring.

    ``quiesce()`` returns once every request that was using the replica when it was called has
    ended: after it, nobody holds an offset of a compacted-away file.
    """

    def __init__(self, shard: int, records: RecordFile, locations: LocationIndex, snapshots: SnapshotStore,
                 engine: ApplyEngine, policy: CompactionPolicy, quiesce: Callable[[], Awaitable[None]], *,
                 interval_s: float = CHECK_INTERVAL_S) -> None:
        self.shard = str(shard)
        self.records = records
        self.locations = locations
        self.snapshots = snapshots
        self.engine = engine
        self.policy = policy
        self.quiesce = quiesce
        self.interval_s = interval_s
        self._failed_until = 0.0
        #: The snapshot offsets of the last collection (a check without a new snapshot takes no lock).
        self._collected: dict[str, tuple[int, int]] | None = None

    async def run(self) -> None:
        """Check, compact and collect until cancelled."""
        while True:
            await self.tick()
            await asyncio.sleep(self.interval_s)

    async def tick(self) -> CompactionResult | None:
        """One check: collect tombstones after a new snapshot, compact when due; returns a compaction's
        result (None: none ran, or it failed: logged and tried again after RETRY_AFTER_FAILURE_S)."""
        await self._collect()
        result = None
        if self.policy.due(self.records) and time.monotonic() >= self._failed_until:
            result = await self._compact()
        self._publish()
        return result

    def _publish(self) -> None:
        metrics.RECORD_FILE_BYTES.labels(self.shard).set(self.records.end - self.records.base)
        metrics.RECORD_FILE_DEAD_BYTES.labels(self.shard).set(self.records.dead_bytes)

    async def _exclusive(self, fn: Callable[[], T]) -> T | None:
        """``fn()`` in a worker thread under the apply lock; None if the replica is closing."""
        async with self.engine.lock:
            if self.engine.closed:
                return None
            return await run_to_completion(fn)

    async def _collect(self) -> None:
        offsets = self.snapshots.offsets()
        if offsets is None or offsets == self._collected:
            return  # no snapshot, or none since the last collection: nothing to look at
        try:
            removed = await self._exclusive(lambda: collect_tombstones(self.locations, self.snapshots))
        except Exception:  # tombstones are only space; retried at the next check
            log.exception("tombstone collection failed", extra={"shard": self.shard})
            return
        if removed is None:
            return
        self._collected = offsets
        if removed:
            metrics.TOMBSTONES_COLLECTED.labels(self.shard).inc(removed)
            log.info("tombstone rows collected", extra={"shard": self.shard, "rows": removed})

    async def _compact(self) -> CompactionResult | None:
        try:
            result = await self._exclusive(lambda: compact_record_file(self.records, self.locations))
        except Exception:  # the old file stays current; tried again later
            log.exception("record file compaction failed; the current file stays",
                          extra={"shard": self.shard, "retry_in_s": RETRY_AFTER_FAILURE_S})
            self._failed_until = time.monotonic() + RETRY_AFTER_FAILURE_S
            return None
        if result is None:
            return None
        metrics.COMPACTIONS.labels(self.shard).inc()
        metrics.COMPACTION_RECLAIMED.labels(self.shard).inc(result.reclaimed)
        metrics.COMPACTION_LATENCY.observe(result.seconds)
        log.info("record file compacted", extra={
            "shard": self.shard, "file": result.file, "live_blocks": result.live_blocks,
            "bytes_before": result.bytes_before, "bytes_after": result.bytes_after,
            "seconds": round(result.seconds, 3)})
        # Requests that looked a location up before the commit may still read the old file. If the
        # replica stops meanwhile, the old mapping is released when it closes.
        await self.quiesce()
        self.records.release_previous()
        return result
