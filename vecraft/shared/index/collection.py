"""CollectionIndex: the vectors and metadata of one shard of one collection, in memory.

Rows get int64 *labels* in insertion order. A faiss ``IndexHNSWFlat`` holds
every label's vector (L2-normalised for cosine), read in place for exact search,
``get`` and snapshots; a :class:`MetadataIndex` maps metadata to labels, and each
row keeps its metadata as the compact JSON text it travels as
(:mod:`.metadata_text`). Labels are never reused: an upsert of an existing id
adds a new label and tombstones the old one, a delete only tombstones. Searches
exclude tombstones with a faiss ``IDSelectorBitmap`` evaluated inside the graph
traversal, so k results come back after any number of deletes;
:meth:`CollectionIndex.optimize` rebuilds without the dead rows while reads and
writes go on (see its docstring and docs/indexes.md).

Planner: a filter is first evaluated to a candidate mask. When at most
``EXACT_SEARCH_MAX_CANDIDATES`` rows are candidates (measured crossover, see
docs/indexes.md and ``vecraft bench calibrate``) an exact numpy scan
of their vectors answers; otherwise HNSW runs with the candidates as selector.

Concurrency: any number of searches run at once (faiss releases the GIL);
mutations are serialised and take the write side of a phase-fair
:class:`RWLock` in short sections (one chunk of ``add`` each), so a search
waits for at most one chunk. New rows become visible together in one final
section, so a batch is atomic for readers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.index import persistence
from vecraft.shared.index.metadata_index import MetadataIndex
from vecraft.shared.index.metadata_text import metadata_to_json, parse_metadata
from vecraft.shared.index.rwlock import RWLock
from vecraft.shared.model.filters import Filter
from vecraft.shared.model.limits import (
    DYNAMIC_EF_MIN,
    DYNAMIC_EF_SEARCH,
    HNSW_DEFAULT_EF_CONSTRUCTION,
    HNSW_DEFAULT_M,
    dynamic_ef,
)
from vecraft.shared.rpc.v1 import collection_pb2

METRICS = ("cosine", "l2", "ip")
_FAISS_METRIC = {"cosine": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2,
                 "ip": faiss.METRIC_INNER_PRODUCT}

# Candidate count at or below which an exact scan beats filtered HNSW in a
# shard of EXACT_SEARCH_REFERENCE_SIZE rows, scaled by sqrt(size) for other
# sizes, never below EXACT_SEARCH_MIN_CANDIDATES (measured on 128-d vectors,
# k=10: docs/indexes.md, `vecraft bench calibrate crossover`).
EXACT_SEARCH_MAX_CANDIDATES = 10_000
EXACT_SEARCH_REFERENCE_SIZE = 50_000
EXACT_SEARCH_MIN_CANDIDATES = 2000
# Target length of one write section while adding to the graph: bounds how long
# a search waits behind a big apply.
ADD_SECTION_SECONDS = 0.01
_MIN_CHUNK, _MAX_CHUNK = 16, 8192
# Filtered HNSW retries with a 4x larger ef this many times before falling back
# to an exact scan, when the graph walk found fewer than k candidates.
_EF_RETRIES = 3
# Widest beam a graph walk gets; a filter that would need more is scanned exactly.
MAX_EF = 4096
# Rows per block of the exact scan (256 KB of float32 at dim 128: stays in cache).
_EXACT_BLOCK = 512
# Rows a rebuild adds to its new graph per call (a stop request is checked between them).
_BUILD_CHUNK = 4096
# A rebuild replays the changes that arrived meanwhile in rounds outside the writer
# lock until at most this many ids are pending; those it replays in its final,
# write-locked section (so writes wait for at most ~that many graph inserts).
FINAL_CATCH_UP_ROWS = 256
# ... or after this many rounds (writes outpacing the replay: the final section takes the rest).
_MAX_CATCH_UP_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class OptimizeResult:
    """What one :meth:`CollectionIndex.optimize` did."""

    #: Graph nodes (labels) removed: tombstones, plus rows superseded during the rebuild.
    dropped: int
    #: Graph nodes before and after the swap.
    nodes_before: int
    nodes_after: int
    #: Ids replayed from the changes that arrived during the rebuild, and in how many rounds.
    replayed: int
    rounds: int
    #: Wall time of the whole rebuild, and of its final write-locked section.
    seconds: float
    final_section_seconds: float


class CollectionIndex:
    """Vectors + metadata of one shard of one collection (faiss HNSW + inverted metadata index).

    Thread-safe: searches run concurrently with each other and with one
    mutation at a time (mutations are serialised internally).
    """

    def __init__(self, *, dim: int, metric: str, m: int = HNSW_DEFAULT_M,
                 ef_construction: int = HNSW_DEFAULT_EF_CONSTRUCTION, ef_search: int = DYNAMIC_EF_SEARCH,
                 add_threads: int = 1) -> None:
        """``ef_search``: the default ef of a search; 0 = ``dynamic_ef(k)``.

        ``add_threads``: OpenMP threads faiss may use per graph insertion. One by
        default: adds run in ~10 ms chunks where threads gain little, and on a
        shared machine OpenMP barriers under CPU contention make a 2-thread add
        4x slower than a single-threaded one (docs/indexes.md)."""
        if metric not in METRICS:
            raise InvalidRequest(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")
        if dim < 1 or m < 2 or ef_construction < 1 or ef_search < 0:
            raise InvalidRequest(f"invalid index parameters: dim={dim} m={m} "
                                 f"ef_construction={ef_construction} ef_search={ef_search}")
        self.dim, self.metric, self.m, self.ef_construction = dim, metric, m, ef_construction
        self._ef_search = ef_search
        self.add_threads = max(1, add_threads)
        self._graph = self._new_graph()
        self._norms = np.empty(0, dtype=np.float32)  # label -> original norm (cosine only)
        self._alive = np.empty(0, dtype=bool)
        self._ids: list[str | None] = []  # label -> id (None once dead)
        self._metas: list[str | None] = []  # label -> metadata JSON ("" for none; None once dead)
        self._label_of: dict[str, int] = {}
        self._meta_index = MetadataIndex()
        self._size = 0  # labels in use == graph.ntotal
        self._rw = RWLock()
        self._writer = threading.Lock()
        self._chunk = 256
        # Planner threshold override (None = the measured rule); benchmarks and
        # tests set it to force a path.
        self.exact_search_max_candidates: int | None = None
        self._alive_bits: np.ndarray | None = None  # packed alive mask, rebuilt lazily
        # Ids upserted or deleted since a rebuild copied the rows (None: no rebuild runs).
        # Written under self._writer only.
        self._touched: set[str] | None = None
        self._optimizing = threading.Lock()  # one rebuild at a time

    # --- introspection --------------------------------------------------------------------------


    @classmethod
    def for_schema(cls, schema: collection_pb2.CollectionSchema) -> CollectionIndex:
        """An empty index with a collection schema's dimension, metric and HNSW parameters (a 0 in the
        schema: the default; ef_search 0 stays 0, the dynamic ef). Storage nodes and query caches
        build their indexes with it, so both search a collection alike."""
        hnsw = schema.hnsw
        return cls(dim=schema.dim, metric=schema.metric or "cosine", m=hnsw.m or HNSW_DEFAULT_M,
                   ef_construction=hnsw.ef_construction or HNSW_DEFAULT_EF_CONSTRUCTION,
                   ef_search=hnsw.ef_search)
    def __len__(self) -> int:
        return len(self._label_of)

    def __contains__(self, id: object) -> bool:
        return id in self._label_of

    @property
    def ef_search(self) -> int:
        return self._ef_search

    @property
    def dead_fraction(self) -> float:
        """Share of graph nodes that are tombstones (the compactor rebuilds above a threshold)."""
        return 1.0 - len(self._label_of) / self._size if self._size else 0.0

    @property
    def dead_rows(self) -> int:
        """Graph nodes that are tombstones (deleted or superseded rows)."""
        return max(0, self._size - len(self._label_of))

    @property
    def graph_nodes(self) -> int:
        """Nodes in the HNSW graph, tombstones included (labels in use)."""
        return self._size

    def memory_bytes(self) -> int:
        """Approximate bytes held by the vector store and the graph (vectors, norms, links)."""
        with self._rw.read():
            # The vectors (held once, in the graph's flat storage) and ~2*M neighbours (int32)
            # on level 0 per node.
            graph = self._size * (self.dim * 4 + 2 * self.m * 4)
            return int(self._norms.nbytes + self._alive.nbytes + graph)

    def set_ef_search(self, ef: int) -> None:
        """Default ef for searches that do not pass one (ALTER of hnsw.ef_search); 0 = dynamic."""
        if ef < 0:
            raise InvalidRequest(f"ef_search must be >= 0, got {ef}")
        self._ef_search = ef

    def ids(self) -> list[str]:
        """Every present id (unordered snapshot)."""
        with self._rw.read():
            return list(self._label_of)

    def metadata(self, id: str) -> Mapping[str, Any] | None:
        """Metadata of an id; None when the id has none or is absent (tell apart with ``in``)."""
        with self._rw.read():
            label = self._label_of.get(id)
            text = self._metas[label] if label is not None else None
        return parse_metadata(text) if text else None

    def get(self, ids: Sequence[str]) -> tuple[list[str], np.ndarray, list[str]]:
        """(present ids in the order asked, their original vectors (n, dim), their metadata JSON)."""
        with self._rw.read():
            found = [i for i in ids if i in self._label_of]
            labels = np.fromiter((self._label_of[i] for i in found), dtype=np.int64, count=len(found))
            vectors = self._stored_vectors()[labels]
            if self.metric == "cosine":
                vectors *= self._norms[labels, None]
            return found, vectors, [self._metas[label] or "" for label in labels.tolist()]

    # --- mutations ------------------------------------------------------------------------------

    def upsert(self, ids: Sequence[str], vectors: np.ndarray,
               metadatas: Sequence[Mapping[str, Any] | None],
               metadata_json: Sequence[str] | None = None) -> None:
        """Insert or replace records; the whole batch becomes visible to searches at once.

        ``vectors`` is (len(ids), dim) float32. ``metadata_json``, when the caller has it,
        is the text each of ``metadatas`` was parsed from (:func:`metadata_to_json`'s form),
        kept instead of encoding the objects again. When an id repeats in the batch
        the last row wins. Raises InvalidRequest on a shape mismatch or a
        non-finite value (nothing is changed then).
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        n = len(ids)
        if (vectors.ndim != 2 or vectors.shape != (n, self.dim) or len(metadatas) != n
                or (metadata_json is not None and len(metadata_json) != n)):
            raise InvalidRequest(f"upsert of {n} ids needs vectors of shape ({n}, {self.dim}) and "
                                 f"{n} metadata entries, got {vectors.shape} and {len(metadatas)}")
        if n == 0:
            return
        if not np.isfinite(vectors).all():
            raise InvalidRequest("vectors must be finite (no NaN or infinity)")
        ids = list(ids)
        if metadata_json is not None:  # "" where the text did not parse to an object
            texts = [text if meta is not None else ""
                     for text, meta in zip(metadata_json, metadatas, strict=True)]
        else:
            texts = [metadata_to_json(m) for m in metadatas]
        if len(set(ids)) != n:
            keep = sorted({id_: row for row, id_ in enumerate(ids)}.values())
            ids = [ids[row] for row in keep]
            vectors, metadatas = vectors[keep], [metadatas[row] for row in keep]
            texts = [texts[row] for row in keep]
        norms = np.ones(len(ids), dtype=np.float32)
        if self.metric == "cosine":
            norms = np.linalg.norm(vectors, axis=1).astype(np.float32)
            vectors = vectors / np.where(norms > 0, norms, 1)[:, None]
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self._writer:
            if self._touched is not None:
                self._touched.update(ids)
            self._upsert_prepared(ids, vectors, norms, texts, metadatas)

    def _upsert_prepared(self, ids: list[str], vectors: np.ndarray, norms: np.ndarray, texts: list[str],
                         metadatas: Sequence[Mapping[str, Any] | None] | None = None) -> None:
        """Upsert validated, unique, indexed-form rows (caller holds ``self._writer``).

        ``texts`` is each row's metadata JSON; ``metadatas`` the same parsed (parsed here if None).
        """
        if metadatas is None:
            metadatas = [parse_metadata(text) for text in texts]
        first = self._size
        start = 0
        while start < len(ids):
            stop = min(len(ids), start + self._chunk)
            with self._rw.write():
                began = time.perf_counter()  # the section itself, not the wait for readers
                self._append_rows(ids[start:stop], vectors[start:stop], norms[start:stop],
                                  texts[start:stop], metadatas[start:stop])
                held = time.perf_counter() - began
            self._tune_chunk(stop - start, held)
            start = stop
        with self._rw.write():
            old = [self._label_of[i] for i in ids if i in self._label_of]
            self._kill(np.asarray(old, dtype=np.int64))
            self._alive[first:self._size] = True
            self._label_of.update(zip(ids, range(first, self._size), strict=True))
            self._alive_bits = None

    def delete(self, ids: Sequence[str]) -> int:
        """Remove the given ids; absent ids are ignored. Returns how many were present."""
        with self._writer:
            if self._touched is not None:
                self._touched.update(ids)
            return self._delete_locked(ids)

    def _delete_locked(self, ids: Sequence[str]) -> int:
        with self._rw.write():
            labels = [self._label_of.pop(i) for i in set(ids) if i in self._label_of]
            self._kill(np.asarray(labels, dtype=np.int64))
            self._alive_bits = None
            return len(labels)

    def _append_rows(self, ids: list[str], vectors: np.ndarray, norms: np.ndarray, texts: list[str],
                     metadatas: Sequence[Mapping[str, Any] | None]) -> None:
        """Add rows as new, not yet alive labels (caller holds the write lock)."""
        first, end = self._size, self._size + len(ids)
        if end > len(self._alive):
            self._grow(end)
        self._norms[first:end] = norms
        # OpenMP's thread count is per calling thread: set it where the add runs.
        faiss.omp_set_num_threads(self.add_threads)
        self._graph.add(vectors)
        self._ids.extend(ids)
        self._metas.extend(texts)
        self._meta_index.add(range(first, end), metadatas)
        self._size = end

    def _grow(self, needed: int) -> None:
        capacity = max(needed, 2 * len(self._alive), 1024)
        norms = np.empty(capacity, dtype=np.float32)
        norms[: self._size] = self._norms[: self._size]
        alive = np.zeros(capacity, dtype=bool)
        alive[: self._size] = self._alive[: self._size]
        self._norms, self._alive = norms, alive

    def _stored_vectors(self) -> np.ndarray:
        """label -> indexed vector: a view of the graph's own flat storage, not a second copy.

        faiss moves that storage when an add grows it, so the view is valid only while no add
        can run: under the read lock or ``self._writer``, and never kept past it.
        """
        if self._size == 0:
            return np.empty((0, self.dim), dtype=np.float32)
        storage = faiss.downcast_index(self._graph.storage)
        xb = storage.get_xb()  # type: ignore[attr-defined]  # IndexFlat's, missing from faiss's .pyi
        return faiss.rev_swig_ptr(xb, self._size * self.dim).reshape(self._size, self.dim)

    def _kill(self, labels: np.ndarray) -> None:
        self._alive[labels] = False
        for label in labels.tolist():
            self._ids[label] = None
            self._metas[label] = None

    def _tune_chunk(self, rows: int, seconds: float) -> None:
        # Add cost per row grows with the graph, ef_construction and dim: size the
        # next chunk from the last one so each write section lasts ~ADD_SECTION_SECONDS.
        per_row = max(seconds / rows, 1e-7)
        self._chunk = int(min(_MAX_CHUNK, max(_MIN_CHUNK, ADD_SECTION_SECONDS / per_row)))

    def compact(self) -> int:
        """Rebuild without the dead rows (:meth:`optimize`); returns the graph nodes dropped."""
        result = self.optimize()
        assert result is not None  # only a stop request ends a rebuild early
        return result.dropped

    def optimize(self, *, stop: threading.Event | None = None,
                 on_phase: Callable[[str], None] | None = None,
                 catch_up_rows: int = FINAL_CATCH_UP_ROWS) -> OptimizeResult | None:
        """Rebuild the graph, vector store and metadata index from the alive rows, then swap them in.

        Reads and writes go on meanwhile, on the current structures:

        1. *copy*: under the writer lock (no graph work), take the row count and
           references to the alive mask, ids and metadata, and start recording
           the ids every upsert and delete touches from now on. Rows below
           that count never change (labels are never reused), so the vectors
           are read later without any lock.
        2. *build*: a new index of the copied alive rows, in label order, with
           no lock of this index held.
        3. *replay*: under the writer lock, take the recorded ids and read their
           current rows (or their absence); release it; apply them to the new
           index. Repeated while more than ``catch_up_rows`` ids arrived during
           the previous round (at most a few rounds).
        4. *swap*: under the writer lock, replay the last few ids, then one
           short write section replaces every structure at once.

        Searches before the swap use the old structures, after it the new ones;
        a snapshot (:meth:`save`, which takes the writer lock) sees one or the
        other, never a mix. The answers afterwards are those of a fresh index
        of the same rows (same vectors and metadata; a different graph).

        ``stop``: set it to abandon the rebuild between chunks (returns None,
        nothing changed). ``on_phase(name)`` is called, without any lock held,
        after ``"copied"``, ``"built"`` and each ``"replayed"`` round (tests use
        it to interleave writes deterministically). One rebuild runs at a time
        per index (a second call waits).
        """
        began = time.perf_counter()
        with self._optimizing:
            with self._writer:
                size = self._size
                alive = self._alive[:size].copy()
                ids = self._ids[:size]
                metas = self._metas[:size]
                # A copy: the graph's storage moves when a write grows it during the rebuild
                # (norm rows < size are never rewritten, the array itself is replaced).
                vectors, norms = self._stored_vectors().copy(), self._norms
                self._touched = set()
            try:
                return self._rebuild(size, alive, ids, metas, vectors, norms, began, stop,
                                     on_phase or (lambda _phase: None), catch_up_rows)
            finally:
                with self._writer:
                    self._touched = None

    def _rebuild(self, size: int, alive: np.ndarray, ids: list[str | None],
                 metas: list[str | None], vectors: np.ndarray, norms: np.ndarray,
                 began: float, stop: threading.Event | None, on_phase: Callable[[str], None],
                 catch_up_rows: int) -> OptimizeResult | None:
        on_phase("copied")
        fresh = CollectionIndex(dim=self.dim, metric=self.metric, m=self.m,
                                ef_construction=self.ef_construction, ef_search=self._ef_search,
                                add_threads=self.add_threads)
        labels = np.flatnonzero(alive)
        fresh._grow(len(labels))  # sized for the alive rows, not for the tombstones
        for start in range(0, len(labels), _BUILD_CHUNK):
            if stop is not None and stop.is_set():
                return None
            part = labels[start:start + _BUILD_CHUNK]
            rows = part.tolist()
            fresh._upsert_prepared([ids[label] for label in rows],
                                   vectors[part], norms[part], [metas[label] or "" for label in rows])
        on_phase("built")
        replayed = rounds = 0
        while True:
            if stop is not None and stop.is_set():
                return None
            with self._writer:
                assert self._touched is not None
                pending, self._touched = self._touched, set()
                if len(pending) <= catch_up_rows or rounds >= _MAX_CATCH_UP_ROUNDS:
                    final_began = time.perf_counter()
                    fresh._apply_changes(self._current_rows(pending))
                    nodes_before = self._size
                    self._swap_in(fresh)
                    final = time.perf_counter() - final_began
                    break
                changes = self._current_rows(pending)
            fresh._apply_changes(changes)
            replayed += len(pending)
            rounds += 1
            on_phase("replayed")
        return OptimizeResult(dropped=nodes_before - fresh._size, nodes_before=nodes_before,
                              nodes_after=fresh._size, replayed=replayed + len(pending), rounds=rounds + 1,
                              seconds=time.perf_counter() - began, final_section_seconds=final)

    def _current_rows(self, ids: set[str]) -> tuple[list[str], np.ndarray, np.ndarray,
                                                      list[str], list[str]]:
        """(present ids, their indexed vectors, norms, metadata; absent ids). Caller holds the writer lock."""
        present = sorted(i for i in ids if i in self._label_of)
        gone = sorted(i for i in ids if i not in self._label_of)
        labels = np.fromiter((self._label_of[i] for i in present), dtype=np.int64, count=len(present))
        return (present, self._stored_vectors()[labels], self._norms[labels],
                [self._metas[label] or "" for label in labels.tolist()], gone)

    def _apply_changes(self, changes: tuple[list[str], np.ndarray, np.ndarray,
                                            list[str], list[str]]) -> None:
        present, vectors, norms, metas, gone = changes
        if gone:
            self._delete_locked(gone)
        if present:
            self._upsert_prepared(present, vectors, norms, metas)

    def _swap_in(self, fresh: CollectionIndex) -> None:
        """Take every structure of ``fresh`` in one write section (caller holds the writer lock)."""
        with self._rw.write():
            fresh._graph.hnsw.efSearch = self._ef_search or DYNAMIC_EF_MIN
            self._graph, self._meta_index, self._size = fresh._graph, fresh._meta_index, fresh._size
            self._norms, self._alive = fresh._norms, fresh._alive
            self._ids, self._metas, self._label_of = fresh._ids, fresh._metas, fresh._label_of
            self._alive_bits = None

    def _new_graph(self) -> faiss.IndexHNSWFlat:
        graph = faiss.IndexHNSWFlat(self.dim, self.m, _FAISS_METRIC[self.metric])
        graph.hnsw.efConstruction = self.ef_construction
        # Searches pass their ef (SearchParametersHNSW); this is only the graph's own default.
        graph.hnsw.efSearch = self._ef_search or DYNAMIC_EF_MIN
        return graph

    # --- search ---------------------------------------------------------------------------------

    def search(self, query: np.ndarray, k: int, flt: Filter | None = None,
               ef_search: int | None = None) -> tuple[list[str], np.ndarray]:
        """Top-k ids best first and their float32 scores (higher is better).

        Scores: cosine similarity, inner product, or minus the squared L2
        distance. Fewer than k results only when fewer than k records match.
        Raises InvalidRequest for a query of the wrong dimension or with
        non-finite values, k < 1 or ef_search < 1.
        """
        ids, scores, _ = self.search_records(query, k, flt, ef_search)
        return ids, scores

    def search_records(self, query: np.ndarray, k: int, flt: Filter | None = None,
                       ef_search: int | None = None
                       ) -> tuple[list[str], np.ndarray, list[str]]:
        """Like :meth:`search`, plus each hit's metadata JSON read under the same lock."""
        q, ef = self._search_arguments(query, k, ef_search)
        with self._rw.read():
            return self._search_records_locked(q, k, flt, ef)

    def search_records_now(self, query: np.ndarray, k: int, flt: Filter | None = None,
                           ef_search: int | None = None
                           ) -> tuple[list[str], np.ndarray, list[str]] | None:
        """:meth:`search_records` if no write holds or waits for the index, else None at once.

        For a caller on an event loop: a search takes a fraction of a millisecond, a
        thread hand-off more; but waiting for a write section would stall the loop.
        """
        q, ef = self._search_arguments(query, k, ef_search)
        if not self._rw.try_acquire_read():
            return None
        try:
            return self._search_records_locked(q, k, flt, ef)
        finally:
            self._rw.release_read()

    def _search_arguments(self, query: np.ndarray, k: int, ef_search: int | None) -> tuple[np.ndarray, int]:
        q = self._prepare_query(query)
        if k < 1:
            raise InvalidRequest(f"k must be >= 1, got {k}")
        if ef_search is not None and ef_search < 1:
            raise InvalidRequest(f"ef_search must be >= 1, got {ef_search}")
        return q, max(ef_search or self._ef_search or dynamic_ef(k), k)

    def _search_records_locked(self, q: np.ndarray, k: int, flt: Filter | None, ef: int
                               ) -> tuple[list[str], np.ndarray, list[str]]:
        labels, scores = self._search_labels(q, k, flt, ef)
        label_list = labels.tolist()
        return ([self._ids[label] for label in label_list], scores,
                [self._metas[label] or "" for label in label_list])

    def _prepare_query(self, query: np.ndarray) -> np.ndarray:
        q = np.asarray(query, dtype=np.float32)
        if q.ndim == 2 and q.shape[0] == 1:
            q = q[0]
        if q.shape != (self.dim,):
            raise InvalidRequest(f"query vector has dimension {q.shape[-1] if q.ndim else 0}, "
                                 f"collection has {self.dim}")
        if not np.isfinite(q).all():
            raise InvalidRequest("query vector must be finite (no NaN or infinity)")
        if self.metric == "cosine":
            norm = float(np.linalg.norm(q))
            if norm > 0:
                q = q / norm
        return np.ascontiguousarray(q.reshape(1, self.dim), dtype=np.float32)

    def _search_labels(self, q: np.ndarray, k: int, flt: Filter | None,
                       ef: int) -> tuple[np.ndarray, np.ndarray]:
        """Caller holds the read lock."""
        alive_count = len(self._label_of)
        alive = self._alive[: self._size]
        mask: np.ndarray | None = None
        count = alive_count
        if flt is not None:
            mask = self._meta_index.evaluate(flt, self._size)
            mask &= alive
            count = int(np.count_nonzero(mask))
            if count == alive_count:
                mask = None  # the filter keeps everything: plain search
        if count == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        if count <= self._exact_threshold():
            return self._exact(q, alive if mask is None else mask, k)
        # The walk's beam also fills with tombstones and filtered-out nodes; widen
        # it by 1 / (share of nodes that qualify) so it holds ~ef qualifying ones
        # and filtered recall matches unfiltered recall at the same ef.
        ef = -(-ef * self._size // count)
        if ef > MAX_EF:
            return self._exact(q, alive if mask is None else mask, k)
        bits = self._packed_alive() if mask is None else np.packbits(mask, bitorder="little")
        return self._hnsw(q, k, bits, min(k, count), ef, mask)

    def _exact_threshold(self) -> int:
        if self.exact_search_max_candidates is not None:
            return self.exact_search_max_candidates
        # Filtered HNSW costs ~ ef * size / count, an exact scan ~ count: the
        # crossover grows with sqrt(size) (measured at 50K and 200K).
        scale = math.sqrt(max(self._size, 1) / EXACT_SEARCH_REFERENCE_SIZE)
        return max(EXACT_SEARCH_MIN_CANDIDATES, int(EXACT_SEARCH_MAX_CANDIDATES * scale))

    def _packed_alive(self) -> np.ndarray | None:
        """Packed alive mask, or None when every label is alive (no selector needed)."""
        if len(self._label_of) == self._size:
            return None
        bits = self._alive_bits
        if bits is None:
            # Benign race: concurrent readers compute the same value.
            bits = self._alive_bits = np.packbits(self._alive[: self._size], bitorder="little")
        return bits

    def _hnsw(self, q: np.ndarray, k: int, bits: np.ndarray | None, want: int, ef: int,
              mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        for _ in range(_EF_RETRIES + 1):
            params = faiss.SearchParametersHNSW(efSearch=ef)  # type: ignore[attr-defined]  # missing from faiss's .pyi
            if bits is not None:
                # `selector` and `bits` must stay referenced until search returns.
                selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
                params.sel = selector
            distances, labels = self._graph.search(q, k, params=params)
            found = labels[0] >= 0
            if int(np.count_nonzero(found)) >= want:
                scores = distances[0][found]
                return labels[0][found], (np.subtract(0, scores) if self.metric == "l2" else scores)
            if ef >= MAX_EF:
                break
            # The walk still ran out of qualifying nodes (a clustered filter): widen it.
            ef = min(MAX_EF, ef * 4)
        return self._exact(q, self._alive[: self._size] if mask is None else mask, k)

    def _exact(self, q: np.ndarray, mask: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k over the labels set in ``mask``.

        Scans in blocks through one small reused buffer: a single gather of
        every candidate allocates fresh pages and a big matrix-vector product
        wakes BLAS threads, both of which cost 10x under CPU contention.
        """
        labels = np.flatnonzero(mask)
        scores = np.empty(len(labels), dtype=np.float32)
        buffer = np.empty((min(_EXACT_BLOCK, len(labels)), self.dim), dtype=np.float32)
        query = q[0]
        stored = self._stored_vectors()
        for start in range(0, len(labels), _EXACT_BLOCK):
            block = labels[start:start + _EXACT_BLOCK]
            rows = buffer[: len(block)]
            np.take(stored, block, axis=0, out=rows, mode="clip")  # clip: no out copy
            out = scores[start:start + len(block)]
            if self.metric == "l2":
                np.subtract(rows, query, out=rows)
                np.einsum("ij,ij->i", rows, rows, out=out)
                np.negative(out, out=out)
                out += 0.0  # -0.0 -> 0.0 for an exact match
            else:
                np.matmul(rows, query, out=out)
        if len(labels) > k:
            top = np.argpartition(-scores, k - 1)[:k]
            labels, scores = labels[top], scores[top]
        order = np.argsort(-scores, kind="stable")
        return labels[order], scores[order]

    # --- persistence ----------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Snapshot to ``directory`` atomically (temp dir, fsync, rename); searches keep running."""
        with self._writer, self._rw.read():
            persistence.save_collection(
                Path(directory), graph=self._graph,
                norms=self._norms[: self._size], alive=self._alive[: self._size],
                ids=self._ids, metas=self._metas,
                params={"dim": self.dim, "metric": self.metric, "m": self.m,
                        "ef_construction": self.ef_construction, "ef_search": self._ef_search})

    @classmethod
    def load(cls, directory: Path) -> CollectionIndex:
        """Restore a snapshot written by :meth:`save`; answers are identical to the saved index."""
        loaded = persistence.load_collection(Path(directory))
        params = loaded.params
        index = cls(dim=params["dim"], metric=params["metric"], m=params["m"],
                    ef_construction=params["ef_construction"], ef_search=params["ef_search"])
        size = len(loaded.alive)
        index._graph, index._size = loaded.graph, size
        index._norms, index._alive = loaded.norms, loaded.alive
        live = np.flatnonzero(loaded.alive).tolist()
        index._ids, index._metas = loaded.ids, loaded.metas
        index._label_of = {loaded.ids[label]: label for label in live}  # type: ignore[misc]
        index._meta_index.add(live, [parse_metadata(loaded.metas[label] or "") for label in live])
        return index
