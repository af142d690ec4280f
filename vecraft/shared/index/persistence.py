"""On-disk form of a CollectionIndex snapshot.

One directory, replaced atomically (:mod:`vecraft.shared.index.snapshot_dir`)::

    graph.faiss     faiss.write_index of the HNSW graph (tombstoned nodes included); it holds
                    the indexed vectors (unit length for cosine) in its flat storage
    norms.npy       float32 (labels,): original norms (cosine), else ones
    alive.npy       bool (labels,): which labels are records, not tombstones
    records.json    {"format", "params", "labels", "ids", "metadata"} of alive labels only

The graph is saved as is, tombstones included, so a loaded index walks the
same graph and gives exactly the same answers. Snapshots written before the
vectors were held once also have a ``vectors.npy``, the same rows again; it is
not read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import orjson

from vecraft.shared.index.snapshot_dir import atomic_directory, existing_snapshot

FORMAT = 1


@dataclass(slots=True)
class LoadedCollection:
    params: dict[str, Any]
    graph: faiss.IndexHNSWFlat
    norms: np.ndarray
    alive: np.ndarray
    ids: list[str | None]
    metas: list[Mapping[str, Any] | None]


def save_collection(directory: Path, *, graph: faiss.Index, norms: np.ndarray,
                    alive: np.ndarray, ids: Sequence[str | None],
                    metas: Sequence[Mapping[str, Any] | None], params: dict[str, Any]) -> None:
    """Write one snapshot; replaces ``directory`` only once everything is durable."""
    live = np.flatnonzero(alive).tolist()
    records = {"format": FORMAT, "params": params, "labels": live,
               "ids": [ids[label] for label in live], "metadata": [metas[label] for label in live]}
    with atomic_directory(directory) as tmp:
        faiss.write_index(graph, str(tmp / "graph.faiss"))
        np.save(tmp / "norms.npy", norms)
        np.save(tmp / "alive.npy", alive)
        (tmp / "records.json").write_bytes(_dumps(records))


def _dumps(obj: Any) -> bytes:
    try:
        return orjson.dumps(obj)
    except TypeError:  # an integer beyond 64 bits in some metadata: the slow encoder takes it
        return json.dumps(obj, separators=(",", ":")).encode()


def load_collection(directory: Path) -> LoadedCollection:
    """Read a snapshot written by :func:`save_collection`.

    Raises FileNotFoundError when there is no complete snapshot and ValueError
    when its parts disagree.
    """
    source = existing_snapshot(directory)
    records = orjson.loads((source / "records.json").read_bytes())
    if records.get("format") != FORMAT:
        raise ValueError(f"{source}: unsupported snapshot format {records.get('format')!r}")
    norms = np.load(source / "norms.npy")
    alive = np.load(source / "alive.npy")
    graph = faiss.read_index(str(source / "graph.faiss"))
    if not isinstance(graph, faiss.IndexHNSWFlat):
        raise ValueError(f"{source}: graph is a {type(graph).__name__}, not an IndexHNSWFlat")
    size = len(alive)
    if graph.ntotal != size or len(norms) != size:
        raise ValueError(f"{source}: graph has {graph.ntotal} nodes, norms {len(norms)}, alive {size}")
    ids: list[str | None] = [None] * size
    metas: list[Mapping[str, Any] | None] = [None] * size
    for label, id_, meta in zip(records["labels"], records["ids"], records["metadata"], strict=True):
        ids[label], metas[label] = id_, meta
    return LoadedCollection(params=records["params"], graph=graph, norms=norms,
                            alive=alive, ids=ids, metas=metas)
