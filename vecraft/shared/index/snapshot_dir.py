"""Atomic replacement of a snapshot directory.

A snapshot is written into a sibling temporary directory, every file and the
directory are fsynced, then it is renamed into place. POSIX cannot rename a
directory over a non-empty one, so an existing snapshot is first renamed to
``<name>.old`` and removed after the swap; a crash between the two renames
leaves ``<name>.old`` (complete) or the temporary directory (complete), and
:func:`existing_snapshot` finds whichever is whole. Readers never see a
half-written snapshot.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vecraft.shared.common.fsync import fsync_path

_COMPLETE = "COMPLETE"


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield an empty temporary directory; on a clean exit it replaces ``target``.

    The body writes its files into the yielded directory. On an exception the
    temporary directory is removed and ``target`` is left untouched. One
    writer per target at a time.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Leftovers of crashed saves; one writer per target is assumed.
    for stale in target.parent.glob(f".{target.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        yield tmp
        (tmp / _COMPLETE).write_bytes(b"")
        # Bottom-up, so every file and every (nested) directory entry is durable.
        for root, dirs, files in os.walk(tmp, topdown=False):
            for name in files + dirs:
                fsync_path(Path(root) / name)
        fsync_path(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = target.parent / f"{target.name}.old"
    if old.exists():
        shutil.rmtree(old)
    if target.exists():
        os.rename(target, old)
    os.rename(tmp, target)
    fsync_path(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def existing_snapshot(target: Path) -> Path:
    """The complete snapshot for ``target``: itself, or what a crash mid-swap left behind.

    Raises FileNotFoundError when there is none.
    """
    target = Path(target)
    if (target / _COMPLETE).exists():
        return target
    candidates = [target.parent / f"{target.name}.old"]
    if target.parent.exists():
        candidates += sorted(target.parent.glob(f".{target.name}.tmp-*"))
    for candidate in candidates:
        if (candidate / _COMPLETE).exists():
            return candidate
    raise FileNotFoundError(f"no complete snapshot at {target}")
