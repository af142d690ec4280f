"""Backup targets: where archived journal chunks and base backups are stored.

A target stores immutable files under slash-separated keys. ``put`` is atomic
(a reader sees the whole file or none) and durable when it returns, so a
snapshot service killed at any point leaves either the old or the new file,
never a torn one. Checksums are kept by the callers' manifests, which name
each file with its SHA-256.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Protocol

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.common.fsync import fsync_path


class MissingFile(Exception):
    """A key the caller expected is not in the target."""

    def __init__(self, target: str, key: str) -> None:
        super().__init__(f"{key} is missing from {target}")
        self.key = key


class BackupTarget(Protocol):
    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def keys(self, prefix: str) -> list[str]: ...
    def delete(self, key: str) -> None: ...
    def describe(self) -> str: ...


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class DirectoryTarget:
    """A local (or mounted) directory; keys are relative paths below it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def describe(self) -> str:
        return str(self.root)

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
            raise InvalidRequest(f"bad backup file name {key!r}")
        return self.root.joinpath(*parts)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_path(path.parent)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise MissingFile(self.describe(), key) from None

    def keys(self, prefix: str) -> list[str]:
        """Every key below ``prefix`` (a folder key, without a trailing slash), sorted."""
        base = self._path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        found = []
        for path in base.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                found.append(path.relative_to(self.root).as_posix())
        return sorted(found)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._path(key).unlink()


def open_target(location: str) -> BackupTarget:
    """The target a ``--target`` value names: a directory path (or ``file://``), or ``s3://BUCKET/PREFIX``.

    Raises InvalidRequest for a malformed or unsupported location, and for ``s3://``
    when boto3 (the optional ``s3`` extra) is not installed.
    """
    if location.startswith("s3://"):
        # Imported here: boto3 is optional, and slow to import for directory targets.
        from vecraft.services.snapshot_service.s3_target import S3Target

        return S3Target.from_url(location)
    if "://" in location and not location.startswith("file://"):
        raise InvalidRequest(f"unsupported backup target {location!r}: give a directory path or "
                             f"s3://BUCKET/PREFIX")
    return DirectoryTarget(Path(location.removeprefix("file://")).expanduser())
