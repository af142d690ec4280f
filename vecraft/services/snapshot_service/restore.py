"""Restore: a new data directory holding exactly the journal entries up to a moment.

The journal is the source of truth for everything (the catalog is the
materialized ``system`` partition, each shard replica the replay of its data
partition), so a restore writes the archived entries up to the cut into the
local journal backend's files, with their original offsets and HLCs, plus a
``cluster.json`` with the source's partition count. ``vecraft up --data-dir
NEW`` then starts on it: the meta manager rebuilds the catalog from ``system``
and the storage nodes and query processors replay their partitions.

The cut: every entry whose HLC is <= the target HLC, in every partition. One
request is one entry (a transaction included), so a restore never keeps half
of one. A base backup's cut is per partition offsets (the heads when it was
taken), which is the same set of entries by HLC, because entries appended
after those heads were read got higher HLCs.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vecraft.local.topology import ClusterParams, prepare_plan
from vecraft.services.journal_service.wal.records import encode
from vecraft.services.journal_service.wal.segments import Segment, create_segment
from vecraft.services.snapshot_service.archive import (
    PartitionArchive,
    iter_entries,
    load_archive,
    load_horizon,
    read_chunk,
)
from vecraft.services.snapshot_service.backups import BaseBackup, get_backup, list_backups
from vecraft.services.snapshot_service.shards import download_copy
from vecraft.services.snapshot_service.target import BackupTarget
from vecraft.shared.common.errors import InvalidRequest, NotFound
from vecraft.shared.common.fsync import fsync_path
from vecraft.shared.hlc import LOGICAL_BITS, MAX_LOGICAL
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

SYSTEM = "system"
_DATA = re.compile(r"data-(\d+)")
SEGMENT_BYTES = 64 << 20


@dataclass(frozen=True)
class Moment:
    """What to restore to: at most one of the three (none: the backup's own cut)."""

    hlc: int | None = None
    time: str | None = None
    offset: tuple[str, int] | None = None


@dataclass
class RestoreReport:
    backup: str
    data_dir: Path
    target_hlc: int
    #: partition -> (entries restored, last offset, last hlc)
    partitions: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    #: "tenant/name" -> live rows
    collections: dict[str, int] = field(default_factory=dict)
    #: shard -> partition -> offset its restored files reflect (the rest is replayed on start);
    #: shards not listed rebuild from the journal alone.
    shards: dict[int, dict[str, int]] = field(default_factory=dict)


def parse_offset(text: str) -> tuple[str, int]:
    partition, sep, number = text.rpartition(":")
    if not sep or not partition or not number.isdigit() or int(number) < 1:
        raise InvalidRequest(f"--to-offset must be PARTITION:N with N >= 1 (e.g. data-0:1200), got {text!r}")
    return partition, int(number)


def hlc_of_time(text: str) -> int:
    """The greatest HLC of the millisecond ``text`` names (ISO 8601; no zone = UTC)."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(f"--to-time must be an ISO 8601 time such as 2026-12-04T15:30:00Z, "
                             f"got {text!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (int(when.timestamp() * 1000) << LOGICAL_BITS) | MAX_LOGICAL


def horizon(target: BackupTarget) -> int:
    """The newest restorable HLC: the newest base backup's cut, or the newest archiving pass that
    copied every partition up to its head."""
    backups = list_backups(target)
    return max(max((b.max_hlc for b in backups), default=0), load_horizon(target))


def _offset_at_or_below(target: BackupTarget, archive: PartitionArchive, hlc: int) -> int:
    """The last archived offset of the partition whose entry's HLC is <= ``hlc`` (0: none)."""
    last = 0
    for chunk in archive.chunks:
        if chunk.first_hlc > hlc:
            break
        if chunk.last_hlc <= hlc:
            last = chunk.last
            continue
        for entry in read_chunk(target, chunk):
            if entry.hlc > hlc:
                return last
            last = entry.offset
    return last


def _hlc_of_offset(target: BackupTarget, archive: PartitionArchive, offset: int) -> int:
    for chunk in archive.chunks:
        if chunk.first <= offset <= chunk.last:
            return next(e.hlc for e in read_chunk(target, chunk) if e.offset == offset)
    raise NotFound(f"offset {offset} of {archive.partition} is not archived (archived up to "
                   f"{archive.archived[0]})")


def plan_cut(target: BackupTarget, backup: BaseBackup, moment: Moment) -> tuple[int, dict[str, int]]:
    """(target HLC, partition -> last offset to restore)."""
    archives = load_archive(target)
    for partition in backup.partitions:
        if partition not in archives:
            raise NotFound(f"backup {backup.id} names partition {partition}, which the archive lacks")
    given = [m for m in (moment.hlc, moment.time, moment.offset) if m is not None]
    if len(given) > 1:
        raise InvalidRequest("give at most one of --to-hlc, --to-time and --to-offset")
    if not given:
        return backup.max_hlc, {p: off for p, (off, _) in backup.partitions.items()}
    if moment.offset is not None:
        partition, offset = moment.offset
        if partition not in archives:
            raise NotFound(f"no partition {partition!r} in the archive "
                           f"(it has {', '.join(sorted(archives))})")
        hlc = _hlc_of_offset(target, archives[partition], offset)
    elif moment.time is not None:
        hlc = hlc_of_time(moment.time)
    else:
        assert moment.hlc is not None
        hlc = moment.hlc
    newest = horizon(target)
    if hlc > newest:
        raise InvalidRequest(f"the archive can restore up to HLC {newest} (the newest backup's cut or "
                             f"archiving pass); HLC {hlc} is later: create a backup first")
    cut = {p: _offset_at_or_below(target, archives[p], hlc) for p in backup.partitions}
    return hlc, cut


def _partition_count(partitions: list[str]) -> int:
    data = sorted(int(m.group(1)) for p in partitions if (m := _DATA.fullmatch(p)))
    unknown = [p for p in partitions if p != SYSTEM and not _DATA.fullmatch(p)]
    if unknown or data != list(range(len(data))) or not data:
        raise InvalidRequest(f"the backup's partitions {sorted(partitions)} are not system + data-0..data-N")
    return len(data)


class _SegmentWriter:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True)
        self.segment: Segment | None = None
        self.size = 0

    def write(self, entry: journal_pb2.JournalEntry) -> None:
        record = encode(entry.offset, entry.hlc, entry.request_id.encode(), list(entry.shards), entry.payload)
        if self.segment is None or self.size + len(record) > SEGMENT_BYTES:
            self.close()
            self.segment = create_segment(self.directory, entry.offset)
            self.size = 0
        os.write(self.segment.fd, record)
        self.size += len(record)

    def close(self) -> None:
        if self.segment is not None:
            os.fsync(self.segment.fd)
            self.segment.close()
            self.segment = None
        fsync_path(self.directory)


class _Census:
    """Live rows per collection, from the restored entries (for the report)."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.rows: dict[str, set[str]] = {}

    def add(self, entry: journal_pb2.JournalEntry) -> None:
        payload = journal_pb2.JournalPayload.FromString(entry.payload)
        for m in payload.mutations:
            kind = m.WhichOneof("kind")
            if kind == "write":
                self.rows.setdefault(m.write.collection_id, set()).update(m.write.ids)
            elif kind == "delete":
                self.rows.get(m.delete.collection_id, set()).difference_update(m.delete.ids)
            elif kind == "ddl" and entry.partition != SYSTEM:
                self._ddl(m.ddl)

    def _ddl(self, ddl: journal_pb2.CollectionDDL) -> None:
        schema: collection_pb2.CollectionSchema = ddl.schema
        if ddl.kind == journal_pb2.CollectionDDL.CREATE:
            self.names[schema.collection_id] = f"{schema.tenant}/{schema.name}"
            self.rows.setdefault(schema.collection_id, set())
        elif ddl.kind == journal_pb2.CollectionDDL.DROP:
            self.names.pop(schema.collection_id, None)
            self.rows.pop(schema.collection_id, None)

    def collections(self) -> dict[str, int]:
        by_name = sorted(self.names.items(), key=lambda item: item[1])
        return {name: len(self.rows.get(cid, ())) for cid, name in by_name}


def restore(target: BackupTarget, backup_id: str, data_dir: Path, moment: Moment = Moment()) -> RestoreReport:
    """Write a new data directory at ``moment`` from ``backup_id`` ("latest" = the newest)."""
    data_dir = Path(data_dir).resolve()
    if data_dir.exists() and any(data_dir.iterdir()):
        raise InvalidRequest(f"{data_dir} is not empty: restore into a new data directory")
    backup = get_backup(target, backup_id)
    count = _partition_count(list(backup.partitions))
    hlc, cut = plan_cut(target, backup, moment)
    archives = load_archive(target)
    report = RestoreReport(backup.id, data_dir, hlc)
    staging = data_dir.with_name(f".{data_dir.name}.restoring")
    if staging.exists():
        raise InvalidRequest(f"{staging} exists (an interrupted restore?): remove it first")
    # The chosen backup's shard copies first, then older ones (a PITR before its cut), then newer.
    every = list_backups(target)
    at = next(i for i, b in enumerate(every) if b.id == backup.id)
    copies = choose_shard_copies(every[at::-1] + every[at + 1:], cut)
    try:
        _write(target, archives, cut, staging, report)
        _record_origin(target, report, moment, staging)
        _place_shards(target, copies, staging, report)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if data_dir.exists():
        data_dir.rmdir()  # empty, checked above
    os.replace(staging, data_dir)
    prepare_plan(data_dir, {"data_partitions": count, "shards": backup.default_shards})
    return report


def _write(target: BackupTarget, archives: dict[str, PartitionArchive], cut: dict[str, int], staging: Path,
           report: RestoreReport) -> None:
    census = _Census()
    journal_dir = staging / "journal"
    journal_dir.mkdir(parents=True)
    for partition in sorted(cut):
        writer = _SegmentWriter(journal_dir / partition)
        entries = 0
        last = (0, 0)
        for entry in _entries(target, archives[partition], cut[partition]):
            writer.write(entry)
            census.add(entry)
            entries += 1
            last = (entry.offset, entry.hlc)
        writer.close()
        report.partitions[partition] = (entries, *last)
    report.collections = census.collections()
    fsync_path(journal_dir)


def _record_origin(target: BackupTarget, report: RestoreReport, moment: Moment, staging: Path) -> None:
    """``restored-from.json``: where the data came from, and who restored it when (for its audit entry)."""
    asked: dict[str, Any] = {}
    if moment.hlc is not None:
        asked["hlc"] = moment.hlc
    if moment.time is not None:
        asked["time"] = moment.time
    if moment.offset is not None:
        asked["offset"] = f"{moment.offset[0]}:{moment.offset[1]}"
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (a bare container)
        user = str(os.getuid())
    (staging / "restored-from.json").write_text(json.dumps({
        "backup": report.backup, "target": target.describe(), "hlc": report.target_hlc, "moment": asked,
        "restored_by": user, "restored_at_ms": int(time.time() * 1000),
        "partitions": {p: list(v) for p, v in report.partitions.items()}}, indent=1) + "\n")


def choose_shard_copies(backups: list[BaseBackup], cut: dict[str, int]) -> dict[int, dict[str, Any]]:
    """Per shard, the first copy (in ``backups`` order) whose files reflect no entry past the cut."""
    chosen: dict[int, dict[str, Any]] = {}
    for backup in backups:
        for shard, copy in backup.shards.items():
            if int(shard) in chosen:
                continue
            applied = copy["applied"]
            if all(p in cut and offset <= cut[p] for p, (offset, _) in applied.items()):
                chosen[int(shard)] = copy
    return chosen


def _place_shards(target: BackupTarget, copies: dict[int, dict[str, Any]], staging: Path,
                  report: RestoreReport) -> None:
    """Each chosen shard copy into a storage node's directory, spread over the default node count."""
    nodes = ClusterParams.storage_nodes
    for shard, copy in sorted(copies.items()):
        download_copy(target, shard, copy, staging / "storage" / f"node-{shard % nodes}" / f"shard-{shard}")
        report.shards[shard] = {p: offset for p, (offset, _) in copy["applied"].items()}


def _entries(target: BackupTarget, archive: PartitionArchive,
             to_offset: int) -> Iterator[journal_pb2.JournalEntry]:
    if to_offset:
        yield from iter_entries(target, archive, to_offset)
