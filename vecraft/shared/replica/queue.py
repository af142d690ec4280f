"""A bounded queue of journal entries between a push-stream reader and an applier.

The reader awaits :meth:`EntryQueue.put` and so stops reading its stream while
the queue is full; the journal client's own bounded buffer then fills, it stops
reading the gRPC stream, and gRPC flow control pushes back to the journal.
Nothing is ever dropped: an entry larger than the byte bound is admitted alone
into an empty queue.
"""

from __future__ import annotations

import asyncio
import collections

from vecraft.shared.rpc.v1 import journal_pb2

#: Default bounds of a replica's apply queue.
QUEUE_MAX_ENTRIES = 4096
QUEUE_MAX_BYTES = 16 << 20


class EntryQueue:
    """FIFO of entries bounded by count and payload bytes; one producer, one consumer.

    Contract: :meth:`put` waits while the queue is at a bound; :meth:`take`
    waits for at least one entry and returns up to ``max_entries`` in order.
    ``peak_entries`` / ``peak_bytes`` record the largest occupancy seen.
    """

    def __init__(self, *, max_entries: int = QUEUE_MAX_ENTRIES, max_bytes: int = QUEUE_MAX_BYTES) -> None:
        if max_entries < 1 or max_bytes < 1:
            raise ValueError("queue bounds must be positive")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.peak_entries = 0
        self.peak_bytes = 0
        self._items: collections.deque[journal_pb2.JournalEntry] = collections.deque()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def _fits(self, size: int) -> bool:
        if not self._items:
            return True  # never drop, never deadlock: an oversized entry goes alone
        return len(self._items) < self.max_entries and self.bytes + size <= self.max_bytes

    async def put(self, entry: journal_pb2.JournalEntry) -> None:
        """Append ``entry``, waiting while the queue is full (back-pressure on the reader)."""
        size = len(entry.payload)
        while not self._fits(size):
            self._changed.clear()
            await self._changed.wait()
        self._items.append(entry)
        self.bytes += size
        self.peak_entries = max(self.peak_entries, len(self._items))
        self.peak_bytes = max(self.peak_bytes, self.bytes)
        self._changed.set()

    async def take(self, max_entries: int) -> list[journal_pb2.JournalEntry]:
        """Up to ``max_entries`` entries in order, waiting until there is at least one."""
        while not self._items:
            self._changed.clear()
            await self._changed.wait()
        out: list[journal_pb2.JournalEntry] = []
        while self._items and len(out) < max_entries:
            entry = self._items.popleft()
            self.bytes -= len(entry.payload)
            out.append(entry)
        self._changed.set()
        return out
