"""The node's single apply path, shared by the push stream and pull-before-read.

Every apply, from either path, goes through :meth:`ApplyEngine.apply`: it
holds one asyncio lock (SQLite has one writer and a journal entry must not be
applied twice), runs the :class:`Applier` in a worker thread so the event loop
keeps answering searches, and cuts long runs of entries into bounded chunks,
releasing the lock between them so a pull-before-read sync waits for at most
one chunk of a big push batch. After each chunk it reports the applied offset
(batched by :class:`AppliedReporter`) and takes an index snapshot when due.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from vecraft.services.storage_node import metrics
from vecraft.services.storage_node.indexes.registry import CollectionRegistry
from vecraft.services.storage_node.indexes.snapshots import SnapshotStore
from vecraft.services.storage_node.journal_replay.applier import (
    Applier,
    ApplyResult,
    JournalGap,
    PostCommitFailure,
)
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.common.metrics import timed
from vecraft.shared.replica import PartitionHalts
from vecraft.shared.replica.halt import describe
from vecraft.shared.rpc.v1 import journal_pb2

log = logging.getLogger(__name__)

# Bounds of one apply chunk (one commit). The lock is released between chunks, so a
# pull-before-read sync waits for at most one; 1 MiB is ~2000 vectors of dim 128.
CHUNK_MAX_ENTRIES = 1024
CHUNK_MAX_BYTES = 1024 * 1024


def chunks(entries: Sequence[journal_pb2.JournalEntry]) -> list[list[journal_pb2.JournalEntry]]:
    """Split a run of entries into chunks of at most CHUNK_MAX_ENTRIES / CHUNK_MAX_BYTES."""
    out: list[list[journal_pb2.JournalEntry]] = []
    current: list[journal_pb2.JournalEntry] = []
    size = 0
    for entry in entries:
        if current and (len(current) >= CHUNK_MAX_ENTRIES or size + len(entry.payload) > CHUNK_MAX_BYTES):
            out.append(current)
            current, size = [], 0
        current.append(entry)
        size += len(entry.payload)
    if current:
        out.append(current)
    return out


T = TypeVar("T")


async def run_to_completion(fn: Callable[[], T]) -> T:
    """``fn()`` in a worker thread; a cancelled caller still waits for the thread to end (a thread
    cannot be stopped), so a lock held around the call covers the whole run."""
    work = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        await asyncio.wait([work])
        raise


class ApplyEngine:
    """Serialised, threaded applies plus snapshot scheduling.

    Args:
        applier: the durable apply of one chunk.
        registry: the in-memory collections (for snapshots and index-size metrics).
        snapshots: where index snapshots go.
        on_applied: called with (partition, applied offset) after each committed chunk.
        snapshot_every_ops: take a snapshot after this many applied records (0 = never).
        snapshot_every_s: ... or after this many seconds with at least one applied record.
    """

    def __init__(self, applier: Applier, registry: CollectionRegistry, snapshots: SnapshotStore, *,
                 on_applied: Callable[[str, int], None], snapshot_every_ops: int = 50_000,
                 snapshot_every_s: float = 300.0, halts: PartitionHalts | None = None) -> None:
        self.applier = applier
        self._shard = str(applier.shard)  # the metrics' shard label
        self.registry = registry
        self.snapshots = snapshots
        self.on_applied = on_applied
        self.snapshot_every_ops = snapshot_every_ops
        self.snapshot_every_s = snapshot_every_s
        self.lock = asyncio.Lock()
        #: Partitions this node stopped applying (an apply failed, or the journal diverged).
        self.halts = halts if halts is not None else PartitionHalts()
        self._ops_since_snapshot = 0
        self._last_snapshot = time.monotonic()
        self._snapshot_task: asyncio.Task[None] | None = None
        #: Set by :meth:`close`: the stores are about to close, nothing more is applied.
        self.closed = False

    def applied(self, partition: str) -> tuple[int, int]:
        """(offset, hlc) committed for ``partition``; (0, 0) before its first entry."""
        return self.applier.applied.get(partition, (0, 0))

    async def apply(self, partition: str, entries: Sequence[journal_pb2.JournalEntry], *,
                    path: str) -> int:
        """Apply the entries past the applied offset, chunk by chunk; returns how many were new.

        Raises JournalGap (from the applier) when the entries start past applied + 1.
        Raises PartitionHalted when the partition is halted, or when this apply
        fails (an entry of a collection never created, a store error): the
        partition is halted then, loudly, instead of being retried forever; what
        was committed before the failing entry stays applied.
        ``path`` ("push" | "pull") labels the metrics.
        """
        self.halts.check(partition)
        applied = 0
        for chunk in chunks(entries):
            async with self.lock:
                if self.closed:
                    # The replica was dropped: refused without halting (nothing is wrong with it).
                    raise Unavailable(f"shard {self._shard} is no longer hosted here; not applied")
                self.halts.check(partition)
                with timed(metrics.APPLY_LATENCY):
                    try:
                        # Held to the end, so a snapshot at shutdown never sees a chunk half applied.
                        result = await run_to_completion(
                            functools.partial(self._apply_chunk, partition, chunk))
                    except JournalGap:
                        raise
                    except Exception as exc:
                        offset = self.applier.applied_offset(partition)
                        metrics.APPLIED_OFFSET.labels(self._shard, partition).set(offset)
                        self.on_applied(partition, offset)
                        raise self.halts.halt(
                            partition, "apply_failed", describe(exc),
                            action="repair the journal or the data dir, then restart the node") from exc
            applied += result.entries
            if result.entries:
                self._after_commit(result, path)
        return applied

    def _apply_chunk(self, partition: str, chunk: list[journal_pb2.JournalEntry]) -> ApplyResult:
        try:
            return self.applier.apply(partition, chunk)
        except PostCommitFailure:
            # Disk is ahead of memory; only a restart (snapshot + local replay)
            # brings them together again. Fail stop; the supervisor restarts us.
            log.critical("index update failed after commit; exiting to recover from disk",
                         exc_info=True, extra={"partition": partition})
            logging.shutdown()
            os._exit(70)

    def _after_commit(self, result: ApplyResult, path: str) -> None:
        metrics.APPLIED_OFFSET.labels(self._shard, result.partition).set(result.applied_offset)
        metrics.APPLY_ENTRIES.labels(self._shard, path).inc(result.entries)
        if result.upserted:
            metrics.APPLY_RECORDS.labels(self._shard, "upsert").inc(result.upserted)
        if result.deleted:
            metrics.APPLY_RECORDS.labels(self._shard, "delete").inc(result.deleted)
        for cid in result.touched:
            coll = self.registry.by_id(cid)
            if coll is not None:
                metrics.INDEX_RECORDS.labels(self._shard, coll.label).set(len(coll.index))
        self.on_applied(result.partition, result.applied_offset)
        self._ops_since_snapshot += result.upserted + result.deleted + result.ddl
        self._maybe_snapshot()

    def _maybe_snapshot(self) -> None:
        if not self._ops_since_snapshot or (self._snapshot_task and not self._snapshot_task.done()):
            return
        due_ops = self.snapshot_every_ops and self._ops_since_snapshot >= self.snapshot_every_ops
        due_time = self.snapshot_every_s and time.monotonic() - self._last_snapshot >= self.snapshot_every_s
        if due_ops or due_time:
            self._snapshot_task = asyncio.create_task(self.snapshot(), name="storage:snapshot")

    async def snapshot(self) -> None:
        """Write an index snapshot at the current applied offsets (applies wait meanwhile)."""
        async with self.lock:
            if not self._ops_since_snapshot:
                return
            offsets = dict(self.applier.applied)
            indexes = {c.collection_id: c.index for c in self.registry.collections()}
            try:
                with timed(metrics.SNAPSHOT_LATENCY) as t:
                    await asyncio.to_thread(self.snapshots.save, offsets, indexes)
            except Exception:
                # Not fatal: the previous snapshot + a longer local replay still recover.
                log.exception("index snapshot failed", extra={"shard": self._shard})
                return
            self._ops_since_snapshot = 0
            self._last_snapshot = time.monotonic()
            log.info("index snapshot written",
                     extra={"shard": self._shard, "seconds": round(t.duration or 0, 3),
                            "offsets": {p: o for p, (o, _h) in offsets.items()}})

    async def wait_snapshot(self) -> None:
        """Wait for a snapshot started in the background (used at shutdown)."""
        if self._snapshot_task is not None:
            await asyncio.gather(self._snapshot_task, return_exceptions=True)

    async def close(self) -> None:
        """Write a final snapshot, then refuse every later apply (the caller closes the stores next).

        An apply in progress finishes first (the lock); one that starts afterwards raises
        ``Unavailable`` before touching anything.
        """
        await self.wait_snapshot()
        await self.snapshot()
        async with self.lock:
            self.closed = True
