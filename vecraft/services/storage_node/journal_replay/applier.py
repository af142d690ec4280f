"""Apply journal entries to this shard: record file, location index, in-memory indexes.

:meth:`Applier.apply` takes a run of consecutive entries of one partition and
makes them durable and visible in four steps:

1. decode this shard's part of each entry (``decode_entry``) and append the
   new record versions to the mmap file as one contiguous run of blocks;
2. msync that run, then commit ONE SQLite transaction with their location
   rows, the tombstones, collection DDL, the partition's applied offset and
   the file's committed end;
3. flip the status byte of the blocks the batch superseded;
4. update the in-memory collection indexes (searches keep running: each index
   takes its write lock in short sections).

A crash before step 2 leaves blocks past the committed end, which start-up
discards; a crash after it is covered by the start-up scan (status bytes) and
the index rebuild (snapshot + rows after it). Either way the node's state is
"every entry <= applied offset, nothing after". The applier is not
thread-safe: one call at a time (the engine holds the apply lock).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from vecraft.services.storage_node.indexes.registry import CollectionRegistry
from vecraft.services.storage_node.mmap import (
    STATUS_DELETED,
    STATUS_LIVE,
    CommitBatch,
    LocationIndex,
    RecordFile,
    encode_records,
)
from vecraft.shared.index import ShardOp, UnknownCollection, decode_entry
from vecraft.shared.replica.follower import JournalGap
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

log = logging.getLogger(__name__)


class PostCommitFailure(Exception):
    """The in-memory indexes failed after the durable commit: memory no longer matches disk."""


@dataclass(slots=True)
class ApplyResult:
    partition: str
    entries: int = 0
    upserted: int = 0
    deleted: int = 0
    ddl: int = 0
    applied_offset: int = 0
    applied_hlc: int = 0
    seconds: float = 0.0
    touched: set[str] = field(default_factory=set)


class Applier:
    """Applies entries to the durable stores and the in-memory registry of one shard."""

    def __init__(self, shard: int, records: RecordFile, locations: LocationIndex,
                 registry: CollectionRegistry, applied: dict[str, tuple[int, int]]) -> None:
        self.shard = shard
        self.records = records
        self.locations = locations
        self.registry = registry
        #: partition -> (applied offset, applied hlc), as committed.
        self.applied = applied
        #: ids of dropped collections, as committed.
        self.dropped = locations.dropped()

    def applied_offset(self, partition: str) -> int:
        return self.applied.get(partition, (0, 0))[0]

    def apply(self, partition: str, entries: Sequence[journal_pb2.JournalEntry]) -> ApplyResult:
        """Apply the entries past the applied offset; entries at or below it are skipped.

        Raises JournalGap when the first new entry is not applied + 1 (nothing
        is changed then). Entries must be in offset order without gaps.
        Raises UnknownCollection (after committing every entry before it) when an
        entry writes to a collection this shard never saw created.
        """
        began = time.perf_counter()
        applied, applied_hlc = self.applied.get(partition, (0, 0))
        fresh = [e for e in entries if e.offset > applied]
        result = ApplyResult(partition, applied_offset=applied, applied_hlc=applied_hlc)
        if not fresh:
            return result
        if fresh[0].offset != applied + 1:
            raise JournalGap(partition, applied, fresh[0].offset)
        known = self.registry.schemas()
        batch = CommitBatch()
        # What goes to the in-memory indexes after the commit, in order.
        staged: list[ShardOp] = []
        start = self.records.end
        # (collection_id, id) -> block offset written earlier in this batch.
        written: dict[tuple[str, str], int] = {}
        superseded: list[int] = []
        expected = applied + 1
        dropped = set(self.dropped)
        stopped: UnknownCollection | None = None
        try:
            for entry in fresh:
                if entry.offset != expected:
                    raise JournalGap(partition, expected - 1, entry.offset)
                expected += 1
                try:
                    ops = self._decode(entry, known, dropped)
                except UnknownCollection as exc:
                    stopped = exc
                    break
                for op in ops:
                    self._stage(op, entry, partition, known, dropped, batch, staged, written, superseded,
                                result)
                result.applied_offset, result.applied_hlc = entry.offset, entry.hlc
                result.entries += 1
            self.records.flush(start, self.records.end)
            batch.progress[partition] = (result.applied_offset, result.applied_hlc)
            batch.file_end = self.records.end
            superseded += self.locations.commit(batch)
        except BaseException:
            # Nothing committed: the blocks appended so far are overwritten by the next batch.
            self.records.end = start
            raise
        self.dropped = dropped
        try:
            self.records.set_status(superseded, STATUS_DELETED)
            self._apply_to_indexes(staged)
        except Exception as exc:
            raise PostCommitFailure(f"{partition} up to {result.applied_offset}") from exc
        # Only now: readers on the event loop take this offset as what searches see
        # (index_version, min_offset checks) while this runs in a worker thread.
        self.applied[partition] = (result.applied_offset, result.applied_hlc)
        result.seconds = time.perf_counter() - began
        if stopped is not None:
            log.error("replica stopped: %s", stopped.message, extra=stopped.details)
            raise stopped
        return result

    def _decode(self, entry: journal_pb2.JournalEntry, known: dict[str, collection_pb2.CollectionSchema],
                dropped: set[str]) -> list[ShardOp]:
        try:
            return decode_entry(entry, self.shard, known, dropped)
        except UnknownCollection:
            raise
        except Exception:
            # A malformed entry cannot become well-formed by retrying; skipping it
            # (loudly) keeps the replica moving. The gateway validates writes, so
            # this means a bug or a foreign writer.
            log.exception("skipping undecodable journal entry",
                          extra={"partition": entry.partition, "offset": entry.offset})
            return []

    def _stage(self, op: ShardOp, entry: journal_pb2.JournalEntry, partition: str,
               known: dict[str, collection_pb2.CollectionSchema], dropped: set[str], batch: CommitBatch,
               staged: list[ShardOp], written: dict[tuple[str, str], int], superseded: list[int],
               result: ApplyResult) -> None:
        cid = op.collection_id
        if op.kind in ("create", "alter"):
            if cid in dropped or (op.kind == "create" and cid in known):
                return  # a retried DDL copy: a dropped collection stays dropped
            if op.kind == "alter" and cid not in known:
                return
            schema = op.ddl_schema()
            known[cid] = schema
            batch.schemas[cid] = schema.SerializeToString()
            batch.dropped.discard(cid)
            result.ddl += 1
        elif op.kind == "drop":
            known.pop(cid, None)
            dropped.add(cid)
            batch.schemas.pop(cid, None)
            batch.dropped.add(cid)
            # Rows this batch wrote before the drop must not outlive it.
            batch.rows = [r for r in batch.rows if r[0] != cid]
            for key in [k for k in written if k[0] == cid]:
                superseded.append(written.pop(key))
            result.ddl += 1
        elif op.kind == "upsert":
            # decode_entry already dropped non-finite rows (journal_ops).
            if op.vectors is None or not len(op.ids):
                return
            data, lengths = encode_records(cid, op.ids, op.vectors, op.metadata_json, op.documents,
                                           entry.offset, entry.hlc)
            pos = self.records.append(data)
            for rid, length in zip(op.ids, lengths, strict=True):
                prev = written.get((cid, rid))
                if prev is not None:
                    superseded.append(prev)
                written[(cid, rid)] = pos
                batch.rows.append((cid, rid, STATUS_LIVE, pos, length, partition, entry.offset, entry.hlc))
                pos += length
            result.upserted += len(op.ids)
        elif op.kind == "delete":
            for rid in op.ids:
                prev = written.pop((cid, rid), None)
                if prev is not None:
                    superseded.append(prev)
                batch.rows.append((cid, rid, STATUS_DELETED, -1, 0, partition, entry.offset, entry.hlc))
            result.deleted += len(op.ids)
        else:
            return
        result.touched.add(cid)
        staged.append(op)

    def _apply_to_indexes(self, ops: list[ShardOp]) -> None:
        """Replay the committed ops on the in-memory indexes, merging runs of upserts."""
        i = 0
        while i < len(ops):
            op = ops[i]
            if op.kind == "create":
                if self.registry.by_id(op.collection_id) is None:
                    self.registry.add(op.ddl_schema())
            elif op.kind == "alter":
                self.registry.alter(op.ddl_schema())
            elif op.kind == "drop":
                self.registry.drop(op.collection_id)
            elif op.kind == "delete":
                coll = self.registry.by_id(op.collection_id)
                if coll is not None:
                    coll.index.delete(op.ids)
            elif op.kind == "upsert":
                j = i + 1
                while j < len(ops) and ops[j].kind == "upsert" and ops[j].collection_id == op.collection_id:
                    j += 1
                run = ops[i:j]
                coll = self.registry.by_id(op.collection_id)
                if coll is not None:
                    ids = [rid for o in run for rid in o.ids]
                    vectors = (run[0].upsert_vectors() if len(run) == 1
                               else np.concatenate([o.upsert_vectors() for o in run]))
                    coll.index.upsert(ids, vectors, [m for o in run for m in o.metadatas],
                                      [t for o in run for t in o.metadata_json])
                i = j
                continue
            i += 1
