"""Seeding a new shard replica from the newest base backup instead of an empty disk.

A node that is given a shard it has no files for (the fail-over manager
re-placed it, or the node's disk was replaced) would otherwise replay the
whole journal. When the node knows the backup target (``--backup-target``,
set by ``vecraft up --backup-target``), the newest base backup's copy of that
shard — record file, location index, index snapshot with the HNSW graphs — is
downloaded, checked against its SHA-256s and moved into place in one rename;
the replica then opens it like its own files and replays only the entries after
it. Any failure leaves no files behind and the replica starts empty, as before.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from vecraft.services.snapshot_service.backups import list_backups
from vecraft.services.snapshot_service.shards import download_copy
from vecraft.services.snapshot_service.target import open_target
from vecraft.shared.common.errors import Unavailable

log = logging.getLogger(__name__)


class NoSeedSource(Unavailable):
    """A replica without files that nothing can rebuild now: no backup or serving peer has a copy,
    and the journal was trimmed below what it would need. It waits for a source to appear."""


@dataclass(frozen=True)
class Seeded:
    backup: str
    #: partition -> (offset, hlc) the seeded files reflect.
    applied: dict[str, tuple[int, int]]
    files: int
    bytes: int
    seconds: float


def seed_from_backup(target_location: str, shard: int, directory: Path) -> Seeded | None:
    """Fill ``directory`` (absent or empty) with the newest backed-up copy of ``shard``.

    Returns what was seeded, or None when no backup holds the shard or anything
    failed (logged; the replica then rebuilds from the journal).
    """
    if directory.exists() and any(directory.iterdir()):
        return None
    began = time.perf_counter()
    staging = directory.with_name(f".seeding-{directory.name}")
    try:
        target = open_target(target_location)
        copies = [(b, b.shards[str(shard)]) for b in reversed(list_backups(target)) if str(shard) in b.shards]
        if not copies:
            return None
        backup, copy = copies[0]
        shutil.rmtree(staging, ignore_errors=True)
        size = download_copy(target, shard, copy, staging)
        if directory.exists():
            directory.rmdir()
        os.replace(staging, directory)
    except Exception:  # seeding is an optimisation: fall back to the journal
        log.exception("seeding shard %d from the backup target failed; rebuilding from the journal", shard,
                      extra={"shard": shard, "target": target_location})
        shutil.rmtree(staging, ignore_errors=True)
        return None
    applied = {p: (int(o), int(h)) for p, (o, h) in copy["applied"].items()}
    seeded = Seeded(backup.id, applied, len(copy["files"]), size, time.perf_counter() - began)
    log.info("shard replica seeded from a backup", extra={
        "shard": shard, "backup": seeded.backup, "applied": seeded.applied, "bytes": seeded.bytes,
        "seconds": round(seeded.seconds, 3)})
    return seeded
