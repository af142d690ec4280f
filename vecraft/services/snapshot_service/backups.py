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
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from vecraft.services.journal_service.client import JournalClient
from vecraft.services.snapshot_service.archive import (
    CorruptBackup,
    archive_partitions,
    load_archive,
    read_chunk,
)
from vecraft.services.snapshot_service.target import BackupTarget, MissingFile
from vecraft.shared.common.errors import NotFound

BACKUPS = "backups"


@dataclass(frozen=True)
class BaseBackup:
    id: str
    created: str
    #: partition -> [offset, hlc] of the cut.
    partitions: dict[str, list[int]]
    seconds: float
    #: The source cluster's default shard count for new collections (None: not known).
    default_shards: int | None = None

    @property
    def key(self) -> str:
        return f"{BACKUPS}/{self.id}.json"

    @property
    def max_hlc(self) -> int:
        return max((hlc for _, hlc in self.partitions.values()), default=0)


def _new_id(now: datetime) -> str:
    return f"{now.strftime('%Y%m%dT%H%M%S')}-{secrets.token_hex(3)}"


async def create_backup(journal: JournalClient, target: BackupTarget, *,
                        default_shards: int | None = None) -> BaseBackup:
    """Cut every partition at its head now, archive up to the cut, then record the backup."""
    began = time.perf_counter()
    now = datetime.now(UTC)
    heads = await journal.get_offsets()
    archived = await archive_partitions(journal, target, up_to={p: off for p, (off, _) in heads.items()})
    cut = {p: [archived[p][0], archived[p][1]] for p in sorted(heads)}
    backup = BaseBackup(_new_id(now), now.isoformat(timespec="seconds"), cut, time.perf_counter() - began,
                        default_shards)
    target.put(backup.key, json.dumps(asdict(backup), indent=1).encode())
    return backup


def list_backups(target: BackupTarget) -> list[BaseBackup]:
    """Every recorded base backup, oldest first."""
    found = []
    for key in target.keys(BACKUPS):
        if key.endswith(".json"):
            found.append(BaseBackup(**json.loads(target.get(key))))
    return sorted(found, key=lambda b: (b.created, b.id))


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
    backup = get_backup(target, backup_id)
    target.delete(backup.key)
    return backup


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
    return problems
