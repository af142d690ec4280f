"""Index snapshots of a storage node, tagged with the applied offsets they reflect.

Layout: ``<data_dir>/snapshot/`` holds ``manifest.json`` (``{"offsets":
{partition: [offset, hlc]}, "collections": [collection_id, ...], "created_unix_ms"}``)
and one ``CollectionIndex.save`` directory per collection id. The whole
directory is replaced atomically (written beside, fsynced, renamed), so a crash
leaves either the previous snapshot or the new one, never a mix.

The caller must hold the node's apply lock while saving: the manifest's
offsets are then exactly what the saved indexes reflect. Searches keep running
(saving takes each index's read side).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import orjson

from vecraft.shared.index.collection import CollectionIndex
from vecraft.shared.index.snapshot_dir import atomic_directory, existing_snapshot

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"


@dataclass(slots=True)
class Snapshot:
    offsets: dict[str, tuple[int, int]]
    indexes: dict[str, CollectionIndex]
    path: Path


class SnapshotStore:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, offsets: Mapping[str, tuple[int, int]], indexes: Mapping[str, CollectionIndex]) -> None:
        """Write a snapshot of ``indexes`` at ``offsets`` and make it the current one."""
        with atomic_directory(self.directory) as tmp:
            for cid, index in indexes.items():
                index.save(tmp / cid)
            manifest = {"offsets": {p: [o, h] for p, (o, h) in offsets.items()},
                        "collections": sorted(indexes), "created_unix_ms": int(time.time() * 1000)}
            (tmp / MANIFEST).write_bytes(orjson.dumps(manifest))

    def offsets(self) -> dict[str, tuple[int, int]] | None:
        """The offsets of the current snapshot, or None when there is none."""
        try:
            path = existing_snapshot(self.directory)
            manifest = orjson.loads((path / MANIFEST).read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        return {p: (int(o), int(h)) for p, (o, h) in manifest["offsets"].items()}

    def load(self, wanted: set[str]) -> Snapshot | None:
        """Load the current snapshot's indexes of the collections in ``wanted``.

        Returns None when there is no usable snapshot (none yet, or damaged:
        logged); the caller then rebuilds every index from the record file.
        """
        try:
            path = existing_snapshot(self.directory)
        except FileNotFoundError:
            return None
        try:
            manifest = orjson.loads((path / MANIFEST).read_bytes())
            offsets = {p: (int(o), int(h)) for p, (o, h) in manifest["offsets"].items()}
            indexes = {cid: CollectionIndex.load(path / cid)
                       for cid in manifest["collections"] if cid in wanted}
        except Exception:
            log.exception("index snapshot unusable; rebuilding from the record file",
                          extra={"path": str(path)})
            return None
        return Snapshot(offsets, indexes, path)
