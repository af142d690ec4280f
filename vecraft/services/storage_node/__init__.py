"""Storage node: a process hosting shard replicas, each fed by journal replay.

- ``mmap/``: append-only record file (status byte + CRC per block) and the
  SQLite location index that commits applied offsets with the rows they cover;
- ``indexes/``: the in-memory collections (shared CollectionIndex) and their
  offset-tagged snapshots;
- ``journal_replay/``: the apply path, push followers, pull-before-read syncs,
  start-up recovery;
- ``replica.py``: one hosted shard replica (``shard-<s>/`` of the data dir,
  :mod:`.layout`), its engine, followers, reporter and halts;
- ``hosting.py`` and ``placement.py``: which shards are hosted, following the
  meta manager's placement map one load or drop at a time;
- ``registration.py``: what the node declares to the meta manager;
- ``servicer.py``: the gRPC ``StorageNodeService``; ``main.py``: the process.

See docs/storage-node.md.
"""
