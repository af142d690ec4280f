"""The index layer shared by storage nodes (authoritative, snapshotted) and query processors (cache).

- :class:`CollectionIndex`: one shard of one collection in memory: faiss HNSW
  with tombstones, a contiguous vector store, an inverted metadata index and a
  planner that scans candidates exactly when a filter leaves few of them.
- :class:`ShardState`: one shard of every collection, fed by journal entries.
- :func:`decode_entry` / :class:`ShardOp`: one shard's part of a journal entry.

See docs/indexes.md for the design and the measured numbers.
"""

from __future__ import annotations

from vecraft.shared.index.collection import EXACT_SEARCH_MAX_CANDIDATES, CollectionIndex
from vecraft.shared.index.journal_ops import ShardOp, UnknownCollection, decode_entry
from vecraft.shared.index.metadata_text import metadata_to_json
from vecraft.shared.index.shard_state import ShardState

__all__ = [
    "EXACT_SEARCH_MAX_CANDIDATES",
    "CollectionIndex",
    "ShardOp",
    "ShardState",
    "UnknownCollection",
    "decode_entry",
    "metadata_to_json",
]
