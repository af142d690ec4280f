"""The storage node's data directory: one subdirectory per hosted shard replica.

```
<data-dir>/
  shard-0/     records.bin, locations.sqlite(-wal), snapshot/  (docs/storage-node.md)
  shard-2/     ...
```

A node of the previous version hosted exactly one shard and kept those files
at the data dir's root. :func:`migrate_single_shard_dir` moves them into
``shard-<s>/`` when the node hosts exactly that shard, and refuses to start
otherwise (the files would otherwise be ignored, and the shard rebuilt from the
journal somewhere they are not). The move is crash-safe: the files go into a
staging directory named after the shard, which is then renamed to
``shard-<s>`` in one step; a start after a crash mid-way finishes the move.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from vecraft.shared.common.fsync import fsync_path

log = logging.getLogger(__name__)

#: Files and directories a single-shard data dir holds at its root.
_LEGACY_NAMES = ("records.bin", "locations.sqlite", "locations.sqlite-wal", "locations.sqlite-shm",
                 "snapshot", "snapshot.old")
_LEGACY_GLOBS = (".snapshot.tmp-*",)
_STAGING_PREFIX = ".migrating-shard-"
#: Staging directories of checkpoints a replica serves (backups, CopyShard to a peer), inside its
#: directory; one left by a process that died mid-stream is deleted at the replica's next open.
CHECKPOINT_PREFIX = ".checkpoint-"


def remove_stale_checkpoints(replica_dir: Path) -> int:
    """Delete checkpoint staging directories left in ``replica_dir``; how many there were."""
    stale = [p for p in replica_dir.glob(CHECKPOINT_PREFIX + "*") if p.is_dir()]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True)
    if stale:
        log.info("removed checkpoint staging left by an earlier run", extra={"count": len(stale)})
    return len(stale)


class LayoutError(Exception):
    """The data dir holds files the node cannot use as it is configured (the message says why)."""


_SHARD_DIR = re.compile(r"shard-(\d+)")


def replica_dir(data_dir: Path, shard: int) -> Path:
    """Where the replica of ``shard`` keeps its files."""
    return data_dir / f"shard-{shard}"


def local_shards(data_dir: Path) -> list[int]:
    """The shards with a directory in ``data_dir`` (hosted now or not), in order."""
    try:
        entries = list(data_dir.iterdir())
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for p in entries if (m := _SHARD_DIR.fullmatch(p.name)) and p.is_dir())


def _legacy_entries(data_dir: Path) -> list[Path]:
    found = [data_dir / n for n in _LEGACY_NAMES if (data_dir / n).exists()]
    for pattern in _LEGACY_GLOBS:
        found += sorted(data_dir.glob(pattern))
    return found


def _legacy_owner(data_dir: Path) -> int | None:
    """The shard recorded in a root-level location index (None: no such file, or none recorded)."""
    path = data_dir / "locations.sqlite"
    if not path.exists():
        return None
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'shard'").fetchone()
    except sqlite3.DatabaseError:
        return None
    finally:
        db.close()
    return None if row is None else int(row[0])


def migrate_single_shard_dir(data_dir: Path, shards: Sequence[int]) -> int | None:
    """Move a single-shard data dir's root files into ``shard-<s>/``; returns ``s`` (None: nothing to do).

    Raises:
        LayoutError: the root holds a shard's files and the node does not host
            exactly that shard, the shard's directory exists as well, or the
            files do not say which shard they belong to.
    """
    staging = sorted(data_dir.glob(f"{_STAGING_PREFIX}*")) if data_dir.exists() else []
    entries = _legacy_entries(data_dir) if data_dir.exists() else []
    if not staging and not entries:
        return None
    if len(staging) > 1:
        raise LayoutError(f"data dir {data_dir} holds several unfinished migrations "
                          f"({', '.join(p.name for p in staging)}); move the files by hand")
    owner = int(staging[0].name[len(_STAGING_PREFIX):]) if staging else _legacy_owner(data_dir)
    hosted = ", ".join(str(s) for s in shards)
    if owner is None:
        raise LayoutError(f"data dir {data_dir} holds {', '.join(p.name for p in entries)} at its root "
                          f"(the single-shard layout) but no location index saying which shard they "
                          f"belong to; move them into shard-<s>/ by hand or remove them")
    if list(shards) != [owner]:
        raise LayoutError(
            f"data dir {data_dir} holds shard {owner} in the single-shard layout (files at its root), "
            f"but this node hosts shards {hosted}; start it once with --shards {owner} to move the files "
            f"into {replica_dir(data_dir, owner).name}/, or use another data dir")
    target = replica_dir(data_dir, owner)
    if target.exists():
        raise LayoutError(f"data dir {data_dir} holds shard {owner} both at its root (the single-shard "
                          f"layout) and in {target.name}/; keep one of them")
    stage = staging[0] if staging else data_dir / f"{_STAGING_PREFIX}{owner}"
    stage.mkdir(exist_ok=True)
    moved = [p.name for p in entries]
    for path in entries:
        os.rename(path, stage / path.name)
    fsync_path(stage)
    os.rename(stage, target)
    fsync_path(data_dir)
    log.warning("moved a single-shard data dir into the per-shard layout",
                extra={"data_dir": str(data_dir), "shard": owner, "into": target.name, "moved": moved})
    return owner
