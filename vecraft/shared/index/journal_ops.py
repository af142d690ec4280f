"""Decoding journal entries into the operations one shard applies.

A journal entry carries a ``JournalPayload`` of mutations for every shard of
its collections. :func:`decode_entry` keeps what one shard needs: DDL always
(every shard group holds a shard of every collection), and of each write or
delete only the rows whose id hashes to this shard, selected with one numpy
mask per mutation.

What a replica does with an entry depends only on the entry and the replica's
state (docs/journal.md, "Order across partitions"):

- a write or delete of a collection the replica knows applies;
- one of a collection the replica saw dropped is skipped: the DROP came first in
  the collection's partition, so every replica skips it the same way;
- one of a collection the replica never saw raises :class:`UnknownCollection`:
  a collection's CREATE precedes its writes in its partition, so this means a
  journal or replica that is not what it should be, and applying past it would
  silently lose the write. The replica stops there, loudly.

Malformed mutations (wrong vector size, bad metadata, a CREATE whose schema
the model refuses, an ALTER of ef_search out of range) are logged and skipped:
the gateway and the meta manager refuse them, so they can only come from a
foreign writer, and every replica skips them alike. DDL ops carry the schema
as the entry has it (its proto: storage nodes persist that form); a CREATE's
passed :func:`~vecraft.shared.rpc.convert.schema_from_proto`, so a replica
that keeps the domain schema converts it without fail.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Container, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import orjson

from vecraft.shared.common.errors import InvalidRequest, Unavailable
from vecraft.shared.model.limits import HNSW_EF_SEARCH_RANGE
from vecraft.shared.model.routing import shards_of
from vecraft.shared.rpc.convert import schema_from_proto
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

log = logging.getLogger(__name__)

OpKind = Literal["create", "drop", "alter", "upsert", "delete"]
_DDL_KINDS: dict[int, OpKind] = {
    journal_pb2.CollectionDDL.CREATE: "create",
    journal_pb2.CollectionDDL.DROP: "drop",
    journal_pb2.CollectionDDL.ALTER: "alter",
}


class SchemaShape(Protocol):
    """What decoding needs of a known collection: the domain schema and its proto both have it."""

    @property
    def dim(self) -> int: ...

    @property
    def shards(self) -> int: ...


class UnknownCollection(Unavailable):
    """A journal entry writes to a collection this replica never saw created (nor dropped)."""

    def __init__(self, entry: journal_pb2.JournalEntry, collection: str, collection_id: str) -> None:
        super().__init__(
            f"journal entry {entry.partition}:{entry.offset} writes to collection {collection!r} "
            f"({collection_id}), which this replica never saw created; it stops applying "
            f"{entry.partition} here instead of losing the write",
            details={"partition": entry.partition, "offset": entry.offset,
                     "collection": collection, "collection_id": collection_id})


@dataclass(slots=True)
class ShardOp:
    """One shard's part of one mutation.

    ``create``/``drop``/``alter`` carry ``schema``; ``upsert`` carries ``ids``,
    ``vectors`` (len(ids), dim) float32, ``metadatas`` (parsed, None for "")
    with their source ``metadata_json`` and ``documents``; ``delete`` carries
    ``ids``.
    """

    kind: OpKind
    collection_id: str
    schema: collection_pb2.CollectionSchema | None = None
    ids: list[str] = field(default_factory=list)
    vectors: np.ndarray | None = None
    metadatas: list[dict[str, Any] | None] = field(default_factory=list)
    metadata_json: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)

    def ddl_schema(self) -> collection_pb2.CollectionSchema:
        """``schema`` of a ``create``/``drop``/``alter`` op; ValueError if it carries none."""
        if self.schema is None:
            raise ValueError(f"{self.kind} op of {self.collection_id} carries no schema")
        return self.schema

    def upsert_vectors(self) -> np.ndarray:
        """``vectors`` of an ``upsert`` op; ValueError if it carries none."""
        if self.vectors is None:
            raise ValueError(f"{self.kind} op of {self.collection_id} carries no vectors")
        return self.vectors


def decode_payload(entry: journal_pb2.JournalEntry) -> journal_pb2.JournalPayload | None:
    """The entry's payload, or None (logged) when it does not parse."""
    payload = journal_pb2.JournalPayload()
    try:
        payload.ParseFromString(entry.payload)
    except Exception:  # noqa: BLE001 - protobuf raises DecodeError; be safe against any parser failure
        log.error("undecodable journal payload skipped",
                  extra={"partition": entry.partition, "offset": entry.offset})
        return None
    return payload


def decode_entry(entry: journal_pb2.JournalEntry, shard: int,
                 known: Mapping[str, SchemaShape],
                 dropped: Container[str] = ()) -> list[ShardOp]:
    """This shard's operations of one entry, in order.

    ``known`` maps collection_id -> schema (for the shard count), ``dropped``
    holds the ids of dropped collections; a CREATE earlier in the same entry
    counts, a DROP earlier in it removes. Writes and deletes of dropped
    collections, and malformed writes, are skipped with a log line. Writes and
    deletes with no row in this shard yield no op.

    Raises:
        UnknownCollection: a write or delete of a collection neither known nor dropped.
    """
    payload = decode_payload(entry)
    if payload is None:
        return []
    schemas: Mapping[str, SchemaShape] = known
    dropped_here: set[str] = set()
    ops: list[ShardOp] = []
    where = {"partition": entry.partition, "offset": entry.offset}
    for mutation in payload.mutations:
        kind = mutation.WhichOneof("kind")
        if kind == "ddl":
            op = _ddl_op(mutation.ddl, where)
            if op is None:
                continue
            if op.kind in ("create", "drop"):
                updated = dict(schemas)  # copy on write: `known` belongs to the caller
                if op.kind == "create" and op.schema is not None:
                    updated[op.collection_id] = op.schema
                else:
                    updated.pop(op.collection_id, None)
                    dropped_here.add(op.collection_id)
                schemas = updated
            ops.append(op)
        elif kind == "write":
            schema = _schema_for(entry, schemas, dropped, dropped_here, mutation.write.collection_id,
                                 mutation.write.collection)
            if schema is not None:
                op = _write_op(mutation.write, schema, shard, where)
                if op is not None:
                    ops.append(op)
        elif kind == "delete":
            delete = mutation.delete
            schema = _schema_for(entry, schemas, dropped, dropped_here, delete.collection_id,
                                 delete.collection)
            if schema is not None:
                ids = list(delete.ids)
                keep = np.flatnonzero(shards_of(ids, schema.shards) == shard)
                if len(keep):
                    ops.append(ShardOp("delete", delete.collection_id,
                                       ids=[ids[i] for i in keep.tolist()]))
    return ops


def _ddl_op(ddl: journal_pb2.CollectionDDL, where: dict[str, Any]) -> ShardOp | None:
    kind = _DDL_KINDS.get(ddl.kind)
    if kind is None or not ddl.schema.collection_id:
        log.warning("DDL without a kind or collection_id skipped", extra=where)
        return None
    if kind == "create":
        try:
            schema_from_proto(ddl.schema)
        except InvalidRequest as err:
            log.warning("CREATE with an invalid schema skipped",
                        extra={**where, "collection_id": ddl.schema.collection_id, "error": err.message})
            return None
    if kind == "alter" and ddl.schema.hnsw.ef_search > HNSW_EF_SEARCH_RANGE[1]:
        log.warning("ALTER with ef_search above the limit skipped",
                    extra={**where, "collection_id": ddl.schema.collection_id,
                           "ef_search": ddl.schema.hnsw.ef_search})
        return None
    schema = collection_pb2.CollectionSchema()
    schema.CopyFrom(ddl.schema)
    return ShardOp(kind, schema.collection_id, schema=schema)


def _schema_for(entry: journal_pb2.JournalEntry, schemas: Mapping[str, SchemaShape],
                dropped: Container[str], dropped_here: set[str], collection_id: str,
                name: str) -> SchemaShape | None:
    """The schema of a written collection; None (logged) if it was dropped. Raises UnknownCollection."""
    schema = schemas.get(collection_id)
    if schema is not None:
        return schema
    if collection_id in dropped or collection_id in dropped_here:
        log.info("mutation of a dropped collection skipped",
                 extra={"partition": entry.partition, "offset": entry.offset, "collection": name,
                        "collection_id": collection_id})
        return None
    raise UnknownCollection(entry, name, collection_id)


def _write_op(write: journal_pb2.VectorWrite, schema: SchemaShape, shard: int,
              where: dict[str, Any]) -> ShardOp | None:
    ids = list(write.ids)
    n = len(ids)
    context = {**where, "collection_id": write.collection_id}
    if write.dim != schema.dim or len(write.vectors) != 4 * n * schema.dim:
        log.error("write with a wrong vector size skipped",
                  extra={**context, "dim": write.dim, "schema_dim": schema.dim,
                         "rows": n, "bytes": len(write.vectors)})
        return None
    if len(write.metadata_json) not in (0, n) or len(write.documents) not in (0, n):
        log.error("write with mismatched metadata/document counts skipped", extra=context)
        return None
    all_vectors = np.frombuffer(write.vectors, dtype="<f4").reshape(n, schema.dim)
    in_shard = shards_of(ids, schema.shards) == shard
    finite = np.isfinite(all_vectors).all(axis=1)
    if not finite.all():
        # The gateway refuses these; skipping the rows keeps one bad row from
        # failing a whole batched apply.
        log.error("non-finite vectors skipped", extra={**context, "rows": int(np.sum(~finite))})
        in_shard &= finite
    keep = np.flatnonzero(in_shard)
    if not len(keep):
        return None
    rows = keep.tolist()
    vectors = all_vectors[keep]
    metadata_json = [write.metadata_json[i] for i in rows] if write.metadata_json else [""] * len(rows)
    documents = [write.documents[i] for i in rows] if write.documents else [""] * len(rows)
    return ShardOp("upsert", write.collection_id, ids=[ids[i] for i in rows],
                   vectors=vectors.astype(np.float32, copy=False),
                   metadatas=[_parse_metadata(text, context) for text in metadata_json],
                   metadata_json=metadata_json, documents=documents)


def _parse_metadata(text: str, context: dict[str, Any]) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:  # orjson refuses integers beyond 64 bits; the standard parser takes them
            value = json.loads(text)
        except ValueError:
            log.warning("unparseable metadata JSON indexed as none", extra=context)
            return None
    if not isinstance(value, dict):
        log.warning("metadata that is not a JSON object indexed as none", extra=context)
        return None
    return value or None
