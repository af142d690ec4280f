"""Journal payloads and entries for storage-node tests (what the gateway and meta manager append)."""

from __future__ import annotations

import numpy as np
import orjson

from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2


def schema(name: str = "docs", *, dim: int = 8, metric: str = "cosine", shards: int = 1,
           partition: str = "data-0", collection_id: str | None = None, tenant: str = "default",
           m: int = 16, ef_construction: int = 100, ef_search: int = 64) -> collection_pb2.CollectionSchema:
    return collection_pb2.CollectionSchema(
        tenant=tenant, name=name, dim=dim, metric=metric, shards=shards, replicas=1,
        hnsw=collection_pb2.HnswParams(m=m, ef_construction=ef_construction, ef_search=ef_search),
        partition=partition, collection_id=collection_id or f"{name}-id")


def ddl(s: collection_pb2.CollectionSchema, kind: int = journal_pb2.CollectionDDL.CREATE) -> bytes:
    mutation = journal_pb2.Mutation(ddl=journal_pb2.CollectionDDL(kind=kind, schema=s))
    return journal_pb2.JournalPayload(mutations=[mutation]).SerializeToString()


def write(s: collection_pb2.CollectionSchema, ids: list[str], vectors: np.ndarray,
          metadata: list[dict | None] | None = None, documents: list[str] | None = None,
          upsert: bool = True) -> bytes:
    vectors = np.ascontiguousarray(vectors, dtype="<f4")
    metas = [orjson.dumps(m).decode() if m else "" for m in (metadata or [None] * len(ids))]
    w = journal_pb2.VectorWrite(collection=s.name, collection_id=s.collection_id, upsert=upsert,
                                ids=ids, dim=s.dim, vectors=vectors.tobytes(), metadata_json=metas,
                                documents=documents or [""] * len(ids))
    return journal_pb2.JournalPayload(mutations=[journal_pb2.Mutation(write=w)]).SerializeToString()


def delete(s: collection_pb2.CollectionSchema, ids: list[str]) -> bytes:
    d = journal_pb2.VectorDelete(collection=s.name, collection_id=s.collection_id, ids=ids)
    return journal_pb2.JournalPayload(mutations=[journal_pb2.Mutation(delete=d)]).SerializeToString()


class EntryLog:
    """Builds consecutive JournalEntry objects of one partition (for in-process tests)."""

    def __init__(self, partition: str = "data-0") -> None:
        self.partition = partition
        self.offset = 0
        self.hlc = 1_700_000_000_000 << 16

    def entry(self, payload: bytes) -> journal_pb2.JournalEntry:
        self.offset += 1
        self.hlc += 1 << 16
        return journal_pb2.JournalEntry(partition=self.partition, offset=self.offset, hlc=self.hlc,
                                        request_id=f"r{self.offset}", payload=payload)
