"""Builders of journal entries for the index tests."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

PARTITION = "data-0"


def schema(collection_id: str, *, name: str = "docs", dim: int = 8, shards: int = 3,
           metric: str = "l2", tenant: str = "default", ef_search: int = 64
           ) -> collection_pb2.CollectionSchema:
    return collection_pb2.CollectionSchema(
        tenant=tenant, name=name, dim=dim, metric=metric, shards=shards, replicas=1,
        hnsw=collection_pb2.HnswParams(m=16, ef_construction=100, ef_search=ef_search),
        partition=PARTITION, collection_id=collection_id)


def ddl(kind: str, sch: collection_pb2.CollectionSchema) -> journal_pb2.Mutation:
    kinds = {"create": journal_pb2.CollectionDDL.CREATE, "drop": journal_pb2.CollectionDDL.DROP,
             "alter": journal_pb2.CollectionDDL.ALTER}
    return journal_pb2.Mutation(ddl=journal_pb2.CollectionDDL(kind=kinds[kind], schema=sch))


def write(sch: collection_pb2.CollectionSchema, ids: Sequence[str], vectors: np.ndarray,
          metadatas: Sequence[Mapping[str, Any] | None] | None = None,
          documents: Sequence[str] | None = None, *, upsert: bool = False) -> journal_pb2.Mutation:
    vectors = np.asarray(vectors, dtype="<f4")
    return journal_pb2.Mutation(write=journal_pb2.VectorWrite(
        collection=sch.name, collection_id=sch.collection_id, upsert=upsert, ids=list(ids),
        dim=vectors.shape[1], vectors=vectors.tobytes(),
        metadata_json=[json.dumps(m) if m else "" for m in metadatas]
        if metadatas is not None else [],
        documents=list(documents) if documents is not None else []))


def delete(sch: collection_pb2.CollectionSchema, ids: Sequence[str]) -> journal_pb2.Mutation:
    return journal_pb2.Mutation(delete=journal_pb2.VectorDelete(
        collection=sch.name, collection_id=sch.collection_id, ids=list(ids)))


def entry(offset: int, *mutations: journal_pb2.Mutation,
          partition: str = PARTITION) -> journal_pb2.JournalEntry:
    payload = journal_pb2.JournalPayload(mutations=list(mutations))
    return journal_pb2.JournalEntry(partition=partition, offset=offset, hlc=(1 << 20) + offset,
                                    request_id=f"req-{partition}-{offset}",
                                    payload=payload.SerializeToString())
