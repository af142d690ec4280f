"""Journal payloads of client writes, and their audit summaries.

One client request becomes one :class:`journal_pb2.JournalPayload` (one
journal entry), so a batch touching several shards - or a transaction
touching several collections - applies atomically. The
payload names the collection and its incarnation id, so storage nodes never
apply a write meant for a dropped collection to its successor.

:func:`summarize_entry` is the inverse for audit and lineage reads: what an
entry did, to which collection and ids, never the vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from vecraft.shared.model.records import RecordBatch
from vecraft.shared.model.routing import shards_of
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.v1 import journal_pb2

#: Audit summaries list at most this many ids per mutation (the count is exact).
MAX_SUMMARY_IDS = 100

_DDL_KINDS = {journal_pb2.CollectionDDL.CREATE: "create_collection",
              journal_pb2.CollectionDDL.DROP: "drop_collection",
              journal_pb2.CollectionDDL.ALTER: "alter_collection"}


def write_mutation(schema: CollectionSchema, batch: RecordBatch, *, upsert: bool) -> journal_pb2.Mutation:
    """An insert/upsert of ``batch`` into ``schema``'s collection."""
    return journal_pb2.Mutation(write=journal_pb2.VectorWrite(
        collection=schema.name, collection_id=schema.collection_id, upsert=upsert,
        ids=batch.ids, dim=batch.dim,
        # Row-major little-endian float32 is the journal's vector layout on every platform.
        vectors=np.ascontiguousarray(batch.vectors, dtype="<f4").tobytes(),
        metadata_json=[m or "" for m in batch.metadata_json],
        documents=[d or "" for d in batch.documents]))


def delete_mutation(schema: CollectionSchema, ids: Sequence[str]) -> journal_pb2.Mutation:
    """A delete of ``ids`` from ``schema``'s collection."""
    return journal_pb2.Mutation(delete=journal_pb2.VectorDelete(
        collection=schema.name, collection_id=schema.collection_id, ids=list(ids)))


def encode_payload(mutations: Sequence[journal_pb2.Mutation]) -> bytes:
    """One entry's payload: its mutations apply atomically, in order."""
    return journal_pb2.JournalPayload(mutations=mutations).SerializeToString()


def touched_shards(ids: Sequence[str], shards: int) -> list[int]:
    """Sorted unique shards of ``ids`` (the entry's ``shards`` for ack tracking)."""
    return [int(s) for s in np.unique(shards_of(list(ids), shards))]


def summarize_entry(payload: bytes) -> dict[str, Any]:
    """``{"mutations": [...]}`` describing an entry's payload without vectors.

    A payload that does not decode (written by a newer version) is reported
    as ``{"mutations": [], "undecodable_bytes": n}`` rather than failing the read.
    """
    try:
        decoded = journal_pb2.JournalPayload.FromString(payload)
    except DecodeError:
        return {"mutations": [], "undecodable_bytes": len(payload)}
    return {"mutations": [_summarize_mutation(m) for m in decoded.mutations]}


def _summarize_mutation(mutation: journal_pb2.Mutation) -> dict[str, Any]:
    kind = mutation.WhichOneof("kind")
    if kind == "write":
        w = mutation.write
        return {"kind": "upsert" if w.upsert else "insert", "collection": w.collection,
                "collection_id": w.collection_id, "count": len(w.ids), "dim": w.dim,
                "ids": list(w.ids[:MAX_SUMMARY_IDS])}
    if kind == "delete":
        d = mutation.delete
        return {"kind": "delete", "collection": d.collection, "collection_id": d.collection_id,
                "count": len(d.ids), "ids": list(d.ids[:MAX_SUMMARY_IDS])}
    if kind == "ddl":
        s = mutation.ddl.schema
        return {"kind": _DDL_KINDS.get(mutation.ddl.kind, "ddl"), "collection": s.name,
                "tenant": s.tenant, "collection_id": s.collection_id, "dim": s.dim,
                "metric": s.metric, "shards": s.shards, "partition": s.partition}
    if kind == "audit":  # an admin action (docs/audit.md): who, never a key
        a = mutation.audit
        return {"kind": "audit", "action": a.action, "tenant": a.tenant, "target": a.target,
                "outcome": a.outcome, "actor_key_id": a.actor_key_id}
    return {"kind": "unknown"}
