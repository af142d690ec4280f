"""Where things live in a backup target (docs/backup.md, "Target layout")."""

from __future__ import annotations

#: Base backups: backups/<id>.json.
BACKUPS = "backups"
#: Shard replica files, content-addressed (shared by every backup holding the same file).
BLOBS = "blobs"
#: The journal archive: journal/<partition>/...
JOURNAL = "journal"


def blob_key(digest: str) -> str:
    """Key of the file whose SHA-256 (hex) is ``digest``."""
    return f"{BLOBS}/{digest}"


def backup_key(backup_id: str) -> str:
    return f"{BACKUPS}/{backup_id}.json"
