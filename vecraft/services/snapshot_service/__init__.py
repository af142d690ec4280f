"""Snapshot service: journal archiving, base backups, and restore to any archived moment.

- :mod:`.target` — where backups live (a directory; every file written atomically, with a checksum).
- :mod:`.archive` — continuous journal archiving: each partition's entries copied in chunks.
- :mod:`.backups` — base backups (a consistent cut of every partition), list, verify, delete.
- :mod:`.restore` — a new data directory holding exactly the entries up to a moment.

docs/backup.md describes the layout of a backup target and the guarantees.
"""
