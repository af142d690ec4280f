"""Base backups: a consistent cut of every journal partition, archived before it is recorded.

``backups/<id>.json`` records, per partition, the offset and HLC of the head
when the backup was taken. It is written only after the archive holds every
entry up to that cut, so a listed backup can always be restored (``verify``
checks it again, file by file). Writes go on meanwhile: they land after the cut
and are archived by the next backup or archiving pass.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.services.snapshot_service.archive import (
    CorruptBackup,
    Progress,
    archive_partitions,
    check_history,
    load_archive,
    read_chunk,
)
from vecraft.services.snapshot_service.layout import BACKUPS, BLOBS, backup_key, blob_key
from vecraft.services.snapshot_service.shards import ShardFiles, backup_shards
from vecraft.services.snapshot_service.target import BackupTarget, MissingFile, sha256
from vecraft.shared.common.errors import NotFound


@dataclass(frozen=True)
class BaseBackup:
    id: str
    created: str
    #: partition -> [offset, hlc] of the cut.
    partitions: dict[str, list[int]]
    seconds: float
    #: The source cluster's default shard count for new collections (None: not known).
    default_shards: int | None = None
    #: shard -> its replica's files (:class:`.shards.ShardFiles` as a dict); missing shards replay.
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Shards in the placement map when the backup was taken (0: no meta manager was asked).
    shard_count: int = 0

    @property
    def key(self) -> str:
        return backup_key(self.id)

    @property
    def max_hlc(self) -> int:
        return max((hlc for _, hlc in self.partitions.values()), default=0)


def _new_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%S%f')[:-3]}-{secrets.token_hex(2)}"


async def create_backup(journal: JournalClient, target: BackupTarget, *, location: str = "",
                        meta: MetaClient | None = None, default_shards: int | None = None,
                        progress: Progress | None = None) -> BaseBackup:
    """Checkpoint every shard (with ``meta``: through the placement map), then cut every partition
    at its head, archive up to the cut, and record the backup.

    The shard files come first: what they reflect is then at or below the cut, so
    a restore of the cut replays the rest from the archive. ``location`` is the
    target as the storage nodes open it (``--target``).
    """
    began = time.perf_counter()
    now = datetime.now(UTC)
    copies: list[ShardFiles] = []
    shard_count = 0
    await check_history(journal, target)  # before any shard file is uploaded
    if meta is not None:
        known = {key.rsplit("/", 1)[1] for key in target.keys(BLOBS)}
        copies, shard_count = await backup_shards(meta, location or target.describe(), known, progress)
    heads = await journal.get_offsets()
    archived = await archive_partitions(journal, target, up_to={p: off for p, (off, _) in heads.items()},
                                        progress=progress)
    cut = {p: [archived[p][0], archived[p][1]] for p in sorted(heads)}
    backup = BaseBackup(_new_id(now), now.isoformat(timespec="seconds"), cut, time.perf_counter() - began,
                        default_shards, {str(c.shard): asdict(c) for c in copies}, shard_count)
    target.put(backup.key, json.dumps(asdict(backup), indent=1).encode())
    return backup


def list_backups(target: BackupTarget) -> list[BaseBackup]:
    """Every recorded base backup, oldest first."""
    found = []
    for key in target.keys(BACKUPS):
        if key.endswith(".json"):
            found.append(BaseBackup(**json.loads(target.get(key))))
    # By cut: two backups taken within one second have the same `created`.
    return sorted(found, key=lambda b: (b.max_hlc, b.created, b.id))


def get_backup(target: BackupTarget, backup_id: str) -> BaseBackup:
    """The backup ``backup_id`` ("latest": the newest)."""
    backups = list_backups(target)
    if not backups:
        raise NotFound(f"no backup in {target.describe()} (create one with `vecraft backup create`)")
    if backup_id == "latest":
        return backups[-1]
    for backup in backups:
        if backup.id == backup_id:
            return backup
    raise NotFound(f"no backup {backup_id!r} in {target.describe()}; there are: "
                   f"{', '.join(b.id for b in backups)}")


def delete_backup(target: BackupTarget, backup_id: str) -> BaseBackup:
    """Delete a base backup and the shard files no other backup holds."""
    backup = get_backup(target, backup_id)
    target.delete(backup.key)
    sweep_blobs(target)
    return backup


def sweep_blobs(target: BackupTarget) -> int:
    """Delete the shard files no recorded backup names; returns how many.

    Not while a backup runs: its files are uploaded before its record is written
    (the snapshot service runs both one after the other).
    """
    named = {str(f["sha256"]) for b in list_backups(target)
             for copy in b.shards.values() for f in copy["files"]}
    gone = 0
    for key in target.keys(BLOBS):
        if key.rsplit("/", 1)[1] not in named:
            target.delete(key)
            gone += 1
    return gone


@dataclass(frozen=True)
class Retention:
    """Keep the newest ``keep`` backups (0 = all) and none older than ``keep_days`` (0 = any age);
    the newest backup is always kept."""

    keep: int = 0
    keep_days: float = 0.0


def prune(target: BackupTarget, retention: Retention, *, now: datetime | None = None) -> list[BaseBackup]:
    """Delete the backups the retention policy does not keep (and their unshared files)."""
    backups = list_backups(target)
    now = now or datetime.now(UTC)
    doomed = []
    for i, backup in enumerate(backups[:-1]):
        newer = len(backups) - 1 - i
        too_many = retention.keep and newer >= retention.keep
        too_old = retention.keep_days and \
            (now - datetime.fromisoformat(backup.created)).total_seconds() > retention.keep_days * 86400
        if too_many or too_old:
            doomed.append(backup)
    for backup in doomed:
        target.delete(backup.key)
    if doomed:
        sweep_blobs(target)
    return doomed


def verify(target: BackupTarget, backup_id: str | None = None) -> list[str]:
    """Problems found (empty = restorable): every chunk a backup needs is read and checksummed."""
    backups = list_backups(target) if backup_id is None else [get_backup(target, backup_id)]
    archives = load_archive(target)
    needed: dict[str, int] = {}
    for backup in backups:
        for partition, (offset, _) in backup.partitions.items():
            needed[partition] = max(needed.get(partition, 0), offset)
    problems = []
    for partition, offset in sorted(needed.items()):
        archive = archives.get(partition)
        have = archive.archived[0] if archive else 0
        if have < offset:
            problems.append(f"journal/{partition}: archived up to offset {have}, a backup needs {offset}")
            continue
        assert archive is not None
        expected = 1
        for chunk in archive.chunks:
            if chunk.first > offset:
                break
            if chunk.first != expected:
                problems.append(f"journal/{partition}: offsets {expected}..{chunk.first - 1} are missing")
                break
            try:
                read_chunk(target, chunk)
            except (CorruptBackup, MissingFile) as exc:
                problems.append(str(exc))
            expected = chunk.last + 1
    problems += _verify_blobs(target, backups)
    return problems


def _verify_blobs(target: BackupTarget, backups: list[BaseBackup]) -> list[str]:
    """Every shard file the backups name is present with its checksum (each blob read once)."""
    problems = []
    checked: set[str] = set()
    for backup in backups:
        for shard, copy in sorted(backup.shards.items()):
            for f in copy["files"]:
                digest = str(f["sha256"])
                if digest in checked:
                    continue
                checked.add(digest)
                try:
                    data = target.get(blob_key(digest))
                except MissingFile:
                    problems.append(f"{blob_key(digest)} (shard {shard}: {f['path']}) is missing")
                    continue
                if sha256(data) != digest:
                    problems.append(f"{blob_key(digest)} (shard {shard}: {f['path']}): checksum mismatch")
    return problems
