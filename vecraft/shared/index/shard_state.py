"""ShardState: one shard of every collection, in memory, fed by journal entries.

Query processors keep one per served shard as their cache (storage nodes keep
their own durable state: record file, SQLite and indexes, applied by the same
replay rules). The shared partition follower (``vecraft.shared.replica``)
feeds it the entries of the journal partitions it follows, in offset order per
partition, from the push stream and from pull-before-read, possibly from
different threads.

Replay rules (so a data partition alone rebuilds every collection):

- CREATE makes an empty collection; a CREATE of a known or already dropped
  collection_id is ignored (a retried DDL copy). The name (tenant, name)
  resolves to the incarnation with the highest ``ddl_offset`` (its position in
  the ``system`` partition), so incarnations that live in different partitions
  (a tenant moved while it had no collections) resolve the same whichever
  partition arrives first; an older incarnation leaves only through its DROP.
- DROP removes the collection and its records; ALTER sets hnsw.ef_search.
- Writes (insert and upsert alike) replace existing ids; deletes remove them;
  mutations of dropped collections are skipped; one of a collection never seen
  raises :class:`UnknownCollection` after applying every entry before it.
- ``applied[partition]`` moves only after an entry's effects are visible to
  searches, so a reader that checks it first never misses them.

Schemas are kept as the domain's :class:`CollectionSchema`, converted from the
entry's proto once, when a CREATE applies (snapshots store the proto form).
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from vecraft.shared.common.errors import NotFound
from vecraft.shared.index.collection import CollectionIndex
from vecraft.shared.index.journal_ops import ShardOp, UnknownCollection, decode_entry
from vecraft.shared.index.snapshot_dir import atomic_directory, existing_snapshot
from vecraft.shared.model.filters import Filter
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.convert import schema_from_proto, schema_to_proto
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

log = logging.getLogger(__name__)

# Rows apply_many merges into one upsert at most (bounds the copy it makes).
MAX_BATCH_ROWS = 65_536
_MANIFEST_FORMAT = 1


@dataclass(slots=True)
class _Collection:
    schema: CollectionSchema
    index: CollectionIndex
    documents: dict[str, str] = field(default_factory=dict)  # only non-empty documents


class ShardState:
    """In-memory state of one shard of every collection, built by applying journal entries.

    Thread-safe: appliers are serialised; searches and reads run concurrently
    with them (see :class:`CollectionIndex`).
    """

    def __init__(self, shard: int, *, keep_documents: bool = True) -> None:
        self.shard = shard
        self.keep_documents = keep_documents
        #: partition -> (offset, hlc) of the last entry applied.
        self.applied: dict[str, tuple[int, int]] = {}
        self._by_id: dict[str, _Collection] = {}
        self._by_name: dict[tuple[str, str], str] = {}  # (tenant, name) -> collection_id
        self._schemas: dict[str, CollectionSchema] = {}
        self._dropped: set[str] = set()
        self._apply_lock = threading.Lock()

    # --- applying the journal -------------------------------------------------------------------

    def apply(self, entry: journal_pb2.JournalEntry) -> None:
        """Apply one entry; ignored if its offset <= the applied offset of its partition."""
        self.apply_many([entry])

    def apply_many(self, entries: Sequence[journal_pb2.JournalEntry]) -> None:
        """Apply entries in order (idempotent like :meth:`apply`).

        Consecutive writes to one collection, across entries, become one
        upsert (up to MAX_BATCH_ROWS rows); ``applied`` advances after each
        flush for the entries it completed.
        """
        with self._apply_lock:
            batch: list[ShardOp] = []
            batch_rows = 0
            done: dict[str, tuple[int, int]] = {}
            for entry in entries:
                last = done.get(entry.partition) or self.applied.get(entry.partition)
                if last is not None and entry.offset <= last[0]:
                    continue
                if last is not None and entry.offset != last[0] + 1:
                    log.warning("journal gap: applying offset %d after %d", entry.offset, last[0],
                                extra={"partition": entry.partition})
                try:
                    ops = decode_entry(entry, self.shard, self._schemas, self._dropped)
                except UnknownCollection:
                    self._flush(batch, done)  # everything before the entry stays applied
                    raise
                for op in ops:
                    mergeable = op.kind == "upsert" and (not batch or (
                        batch[0].collection_id == op.collection_id
                        and batch_rows + len(op.ids) <= MAX_BATCH_ROWS))
                    if not mergeable:
                        self._flush(batch, done)
                        batch_rows = 0
                    if op.kind == "upsert":
                        batch.append(op)
                        batch_rows += len(op.ids)
                    else:
                        self._apply_op(op)
                done[entry.partition] = (entry.offset, entry.hlc)
            self._flush(batch, done)

    def _flush(self, batch: list[ShardOp], done: dict[str, tuple[int, int]]) -> None:
        """Apply the buffered upserts, then publish the offsets of the entries they completed."""
        if batch:
            coll = self._by_id[batch[0].collection_id]
            ids = [i for op in batch for i in op.ids]
            vectors = batch[0].upsert_vectors() if len(batch) == 1 else np.concatenate(
                [op.upsert_vectors() for op in batch])
            coll.index.upsert(ids, vectors, [m for op in batch for m in op.metadatas],
                              [t for op in batch for t in op.metadata_json])
            if self.keep_documents:
                for op in batch:
                    for id_, doc in zip(op.ids, op.documents, strict=True):
                        if doc:
                            coll.documents[id_] = doc
                        else:
                            coll.documents.pop(id_, None)
            batch.clear()
        self.applied.update(done)
        done.clear()

    def _apply_op(self, op: ShardOp) -> None:
        if op.kind == "delete":
            coll = self._by_id[op.collection_id]
            coll.index.delete(op.ids)
            for id_ in op.ids:
                coll.documents.pop(id_, None)
        elif op.kind == "drop":
            self._drop(op.collection_id)
        elif op.schema is not None:  # decode_entry gives every create/alter its schema
            if op.kind == "create":
                self._create(op.schema)
            else:
                self._alter(op.schema)

    def _create(self, msg: collection_pb2.CollectionSchema) -> None:
        cid = msg.collection_id
        if cid in self._by_id or cid in self._dropped:
            return
        # decode_entry validated the CREATE's schema: the conversion does not fail here.
        schema = schema_from_proto(msg)
        self._by_id[cid] = _Collection(schema, CollectionIndex.for_schema(msg))
        self._schemas[cid] = schema
        self._bind_name((schema.tenant, schema.name))

    def _bind_name(self, key: tuple[str, str]) -> None:
        """Point ``key`` at its live incarnation created last in the ``system`` order (or at none)."""
        live = [c.schema for c in self._by_id.values() if (c.schema.tenant, c.schema.name) == key]
        if live:
            self._by_name[key] = max(live, key=lambda sc: sc.ddl_offset).collection_id
        else:
            self._by_name.pop(key, None)

    def _alter(self, msg: collection_pb2.CollectionSchema) -> None:
        coll = self._by_id.get(msg.collection_id)
        ef = msg.hnsw.ef_search
        if coll is None or ef <= 0:
            return
        coll.index.set_ef_search(ef)
        old = coll.schema
        moved = msg.ddl_offset > 0  # the ALTER's position in `system`, when the entry has it
        coll.schema = dataclasses.replace(
            old, hnsw=dataclasses.replace(old.hnsw, ef_search=ef),
            ddl_offset=msg.ddl_offset if moved else old.ddl_offset,
            ddl_hlc=msg.ddl_hlc if moved else old.ddl_hlc)
        self._schemas[msg.collection_id] = coll.schema

    def _drop(self, collection_id: str) -> None:
        self._dropped.add(collection_id)
        coll = self._by_id.pop(collection_id, None)
        self._schemas.pop(collection_id, None)
        if coll is not None:
            # An older incarnation whose DROP has not arrived yet takes the name back.
            self._bind_name((coll.schema.tenant, coll.schema.name))

    # --- reading --------------------------------------------------------------------------------

    def _collection(self, tenant: str, name: str) -> _Collection:
        cid = self._by_name.get((tenant, name))
        coll = self._by_id.get(cid) if cid is not None else None
        if coll is None:
            raise NotFound(f"collection {name!r} of tenant {tenant!r} not found",
                           details={"tenant": tenant, "collection": name})
        return coll

    def schema(self, tenant: str, name: str) -> CollectionSchema:
        """Schema of a collection; NotFound if this shard does not know it."""
        return self._collection(tenant, name).schema

    def index(self, tenant: str, name: str) -> CollectionIndex:
        """This shard's index of a collection; NotFound if unknown."""
        return self._collection(tenant, name).index

    def collections(self) -> list[CollectionSchema]:
        return [coll.schema for coll in list(self._by_id.values())]

    def applied_offset(self, partition: str) -> int:
        """Offset applied in ``partition`` (0 when nothing was)."""
        last = self.applied.get(partition)
        return last[0] if last is not None else 0

    def search(self, tenant: str, collection: str, query: np.ndarray, k: int,
               flt: Filter | None = None, ef_search: int | None = None
               ) -> tuple[list[str], np.ndarray, list[str]]:
        """Top-k of this shard: ids, float32 scores (higher is better), metadata JSON per hit.

        Raises NotFound for an unknown collection, InvalidRequest for a query
        of the wrong dimension or k < 1.
        """
        index = self._collection(tenant, collection).index
        return index.search_records(query, k, flt, ef_search)

    def get(self, tenant: str, collection: str, ids: Sequence[str]
            ) -> tuple[list[str], np.ndarray, list[str], list[str]]:
        """Present ids (in the order asked), their vectors, metadata JSON and documents."""
        coll = self._collection(tenant, collection)
        found, vectors, metas = coll.index.get(ids)
        return found, vectors, metas, [coll.documents.get(i, "") for i in found]

    # --- snapshots ------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Snapshot every collection and the applied offsets atomically (appliers wait)."""
        with self._apply_lock, atomic_directory(Path(directory)) as tmp:
            manifest = {
                "format": _MANIFEST_FORMAT, "shard": self.shard,
                "applied": {p: list(v) for p, v in self.applied.items()},
                "dropped": sorted(self._dropped),
                "collections": [base64.b64encode(schema_to_proto(c.schema).SerializeToString()).decode()
                                for c in self._by_id.values()],
            }
            for cid, coll in self._by_id.items():
                coll.index.save(tmp / "collections" / cid)
                (tmp / "collections" / cid / "documents.json").write_bytes(orjson.dumps(coll.documents))
            (tmp / "manifest.json").write_bytes(orjson.dumps(manifest))

    @classmethod
    def load(cls, directory: Path, *, keep_documents: bool = True) -> ShardState:
        """Restore a snapshot written by :meth:`save`; replay continues after ``applied``."""
        source = existing_snapshot(Path(directory))
        manifest = orjson.loads((source / "manifest.json").read_bytes())
        if manifest.get("format") != _MANIFEST_FORMAT:
            raise ValueError(f"{source}: unsupported shard snapshot format {manifest.get('format')!r}")
        state = cls(manifest["shard"], keep_documents=keep_documents)
        state.applied = {p: (v[0], v[1]) for p, v in manifest["applied"].items()}
        state._dropped = set(manifest["dropped"])
        for encoded in manifest["collections"]:
            schema = schema_from_proto(collection_pb2.CollectionSchema.FromString(base64.b64decode(encoded)))
            cid = schema.collection_id
            folder = source / "collections" / cid
            documents = orjson.loads((folder / "documents.json").read_bytes()) if keep_documents else {}
            state._by_id[cid] = _Collection(schema, CollectionIndex.load(folder), documents)
            state._schemas[cid] = schema
        for key in {(c.schema.tenant, c.schema.name) for c in state._by_id.values()}:
            state._bind_name(key)
        return state
