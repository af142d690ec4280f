"""The engines of the peers benchmark behind one small interface.

Each engine is driven the way its users drive it on one machine: Vecraft as a
local cluster through its HTTP gateway with the SDK (``VecraftClient``), Chroma embedded in the benchmark's
process (``PersistentClient``, HNSW), Milvus Lite through ``pymilvus`` (milvus-lite
3.x is a Python engine serving gRPC from a thread of this process). All get the same vectors,
ids, metadata, HNSW parameters (M, ef_construction, ef_search) and queries,
and are called one request at a time from the same thread, so the figures
compare the engines, not the clients' concurrency.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from vecraft.bench._cluster import ClusterSpec, LocalCluster
from vecraft.bench._http import BenchHttp, load_dataset
from vecraft.local.process import free_port
from vecraft_client import VecraftClient


class Engine(ABC):
    """One vector store under test. ``setup`` before anything, ``close`` always."""

    name: str
    #: Read consistency levels the engine offers beyond its default (timed separately).
    levels: tuple[str, ...] = ()
    #: Whether the engine runs inside the benchmark's process (its memory is the process's growth)
    #: or as processes of its own, reached by a client (its memory is those processes').
    in_process: bool = True

    @abstractmethod
    def setup(self, dim: int, *, m: int, ef_construction: int, ef_search: int) -> None:
        """Start the engine and create an empty cosine collection with these HNSW parameters."""

    @abstractmethod
    def ingest(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, int]],
               batch: int) -> None:
        """Write every row; returns when every batch is acknowledged."""

    @abstractmethod
    def search(self, vector: np.ndarray, k: int, category: int | None = None,
               level: str | None = None) -> list[str]:
        """Ids of the ``k`` nearest rows (only rows of ``category`` when given), at ``level`` (one of
        :attr:`levels`; None = the engine's default)."""

    @abstractmethod
    def close(self) -> None:
        """Stop the engine and remove its data."""

    def wait_searchable(self, vector: np.ndarray, expected_id: str, timeout_s: float = 300.0) -> None:
        """Return once a search for ``vector`` finds ``expected_id`` first."""
        deadline = time.monotonic() + timeout_s
        while self.search(vector, 1) != [expected_id]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {expected_id} not searchable after {timeout_s:.0f} s")
            time.sleep(0.02)


class VecraftEngine(Engine):
    """A local Vecraft cluster (``vecraft up``) through its HTTP API and the SDK; reads are eventual
    unless a level is asked. ``distributed``: one process per service instead of standalone mode
    (the default)."""

    collection = "bench_peers"
    levels = ("strong",)
    in_process = False

    def __init__(self, shards: int = 3, *, distributed: bool = False) -> None:
        self.name = "vecraft-distributed" if distributed else "vecraft"
        self._work = Path(tempfile.mkdtemp(prefix="vecraft-bench-peers-"))
        self._spec = ClusterSpec(data_dir=self._work / "cluster", shards=shards, apply_delay_ms=0,
                                 http_port=free_port(), grpc_port=free_port(),
                                 extra_args=("--distributed",) if distributed else ("--no-distributed",))
        self._cluster = LocalCluster(self._spec)
        self._started = False
        # One SDK client per calling thread (the throughput run searches from many threads).
        self._local = threading.local()
        self._clients: list[VecraftClient] = []
        self._clients_lock = threading.Lock()
        self.throttled = 0

    def setup(self, dim: int, *, m: int, ef_construction: int, ef_search: int) -> None:
        async def start() -> None:
            await self._cluster.start()
            async with BenchHttp(self._spec.base_url) as http:
                await http.create_collection(self.collection, dim, metric="cosine",
                                             shards=self._spec.shards,
                                             hnsw={"m": m, "ef_construction": ef_construction,
                                                   "ef_search": ef_search})

        asyncio.run(start())
        self._started = True

    def _client(self) -> VecraftClient:
        client: VecraftClient | None = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = VecraftClient(self._spec.base_url, timeout=60.0)
            with self._clients_lock:
                self._clients.append(client)
        return client

    def ingest(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, int]],
               batch: int) -> None:
        async def load() -> None:
            async with BenchHttp(self._spec.base_url) as http:
                await load_dataset(http, self.collection, vectors, ids, metadatas, batch=batch,
                                   ack="all", concurrency=1)
                self.throttled += http.throttled

        asyncio.run(load())

    def search(self, vector: np.ndarray, k: int, category: int | None = None,
               level: str | None = None) -> list[str]:
        assert self._started, "setup() first"
        answer = self._client().vector_search(
            vector, k=k, consistency_level=level or "eventual", collection=self.collection,
            filters={"category": category} if category is not None else None)
        return [hit.id for hit in answer.results]

    def gateway_pid(self) -> int | None:
        pid = self._cluster.pids().get("gateway")
        return int(pid) if pid else None

    def close(self) -> None:
        for client in self._clients:
            client.close()
        asyncio.run(self._cluster.stop())
        shutil.rmtree(self._work, ignore_errors=True)


class ChromaEngine(Engine):
    """Chroma embedded in this process (``PersistentClient``, HNSW index)."""

    name = "chroma"

    def __init__(self) -> None:
        self._work = Path(tempfile.mkdtemp(prefix="vecraft-bench-chroma-"))
        self._col: Any = None

    def setup(self, dim: int, *, m: int, ef_construction: int, ef_search: int) -> None:
        import chromadb

        client = chromadb.PersistentClient(path=str(self._work))
        self._col = client.create_collection(
            "bench_peers", embedding_function=None,
            configuration={"hnsw": {"space": "cosine", "max_neighbors": m,
                                    "ef_construction": ef_construction, "ef_search": ef_search}})
        # Chroma caps one add() at its own maximum batch size.
        self.max_batch = int(client.get_max_batch_size())

    def ingest(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, int]],
               batch: int) -> None:
        step = min(batch, self.max_batch)
        for lo in range(0, len(ids), step):
            self._col.add(ids=ids[lo:lo + step], embeddings=vectors[lo:lo + step],
                          metadatas=metadatas[lo:lo + step])

    def search(self, vector: np.ndarray, k: int, category: int | None = None,
               level: str | None = None) -> list[str]:
        where = {"category": category} if category is not None else None
        res = self._col.query(query_embeddings=vector[None, :], n_results=k, where=where, include=[])
        return list(res["ids"][0])

    def close(self) -> None:
        self._col = None
        shutil.rmtree(self._work, ignore_errors=True)


class MilvusLiteEngine(Engine):
    """Milvus Lite through ``pymilvus.MilvusClient`` on a local database file, HNSW index."""

    name = "milvus-lite"

    def __init__(self) -> None:
        self._work = Path(tempfile.mkdtemp(prefix="vecraft-bench-milvus-"))
        self._client: Any = None
        self._ef = 64

    def setup(self, dim: int, *, m: int, ef_construction: int, ef_search: int) -> None:
        from pymilvus import DataType, MilvusClient

        self._client = MilvusClient(str(self._work / "milvus.db"))
        schema = self._client.create_schema(auto_id=False)
        schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=64)
        schema.add_field("vec", DataType.FLOAT_VECTOR, dim=dim)
        schema.add_field("category", DataType.INT64)
        schema.add_field("num", DataType.INT64)
        index = self._client.prepare_index_params()
        index.add_index(field_name="vec", index_type="HNSW", metric_type="COSINE",
                        params={"M": m, "efConstruction": ef_construction})
        self._client.create_collection("bench_peers", schema=schema, index_params=index)
        self._ef = ef_search

    def ingest(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, int]],
               batch: int) -> None:
        for lo in range(0, len(ids), batch):
            rows = [{"id": i, "vec": v, "category": md["category"], "num": md["num"]}
                    for i, v, md in zip(ids[lo:lo + batch], vectors[lo:lo + batch],
                                        metadatas[lo:lo + batch], strict=True)]
            self._client.insert("bench_peers", rows)
        # A bulk load is followed by flush(): it seals the in-memory rows into segments with
        # the HNSW index; without it every search scans the unindexed memtable.
        self._client.flush("bench_peers")

    def search(self, vector: np.ndarray, k: int, category: int | None = None,
               level: str | None = None) -> list[str]:
        res = self._client.search("bench_peers", data=[vector.tolist()], limit=k,
                                  filter=f"category == {category}" if category is not None else "",
                                  search_params={"params": {"ef": max(self._ef, k)}})
        return [hit["id"] for hit in res[0]]

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        shutil.rmtree(self._work, ignore_errors=True)


ENGINE_NAMES = ("vecraft", "vecraft-distributed", "chroma", "milvus-lite")


def make_engine(name: str, *, vecraft_shards: int) -> Engine:
    """The engine called ``name`` (one of :data:`ENGINE_NAMES`)."""
    if name in ("vecraft", "vecraft-distributed"):
        return VecraftEngine(vecraft_shards, distributed=name == "vecraft-distributed")
    if name == "chroma":
        return ChromaEngine()
    if name == "milvus-lite":
        return MilvusLiteEngine()
    raise ValueError(f"unknown engine {name!r} (known: {', '.join(ENGINE_NAMES)})")
