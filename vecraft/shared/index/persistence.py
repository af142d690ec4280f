"""On-disk form of a CollectionIndex snapshot.

One directory, replaced atomically (:mod:`vecraft.shared.index.snapshot_dir`)::

    graph.faiss     faiss.write_index of the HNSW graph (tombstoned nodes included); it holds
                    the indexed vectors (unit length for cosine) in its flat storage
    norms.npy       float32 (labels,): original norms (cosine), else ones
    alive.npy       bool (labels,): which labels are records, not tombstones
    records.json    {"format": 2, "params", "labels", "ids", "metadata_json"} of alive labels
                    only: each row's metadata as the JSON text the index keeps ("" for none)

The graph is saved as is, tombstones included, so a loaded index walks the
same graph and gives exactly the same answers. Snapshots written before the
vectors were held once also have a ``vectors.npy``, the same rows again; it is
not read. Format 1 (before the index kept metadata as text) stored the objects
under ``"metadata"``; it still loads. The text is exact where a parse is not:
orjson reads an integer beyond 64 bits as a float.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import orjson

from vecraft.shared.index.metadata_text import metadata_to_json
from vecraft.shared.index.snapshot_dir import atomic_directory, existing_snapshot

FORMAT = 2
_READABLE_FORMATS = (1, 2)


@dataclass(slots=True)
class LoadedCollection:
    params: dict[str, Any]
    graph: faiss.IndexHNSWFlat
    norms: np.ndarray
    alive: np.ndarray
    ids: list[str | None]
    metas: list[str | None]  #: label -> metadata JSON of alive labels ("" for none), None for dead


def save_collection(directory: Path, *, graph: faiss.Index, norms: np.ndarray,
                    alive: np.ndarray, ids: Sequence[str | None],
                    metas: Sequence[str | None], params: dict[str, Any]) -> None:
    """Write one snapshot; replaces ``directory`` only once everything is durable.

    ``metas`` is each label's metadata JSON ("" for none).
    """
    live = np.flatnonzero(alive).tolist()
    records = {"format": FORMAT, "params": params, "labels": live, "ids": [ids[label] for label in live],
               "metadata_json": [metas[label] or "" for label in live]}
    with atomic_directory(directory) as tmp:
        faiss.write_index(graph, str(tmp / "graph.faiss"))
        np.save(tmp / "norms.npy", norms)
        np.save(tmp / "alive.npy", alive)
        (tmp / "records.json").write_bytes(orjson.dumps(records))


def load_collection(directory: Path) -> LoadedCollection:
    """Read a snapshot written by :func:`save_collection`.

    Raises FileNotFoundError when there is no complete snapshot and ValueError
    when its parts disagree.
    """
    source = existing_snapshot(directory)
    records = orjson.loads((source / "records.json").read_bytes())
    if records.get("format") not in _READABLE_FORMATS:
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
    metas: list[str | None] = [None] * size
    texts = (records["metadata_json"] if records["format"] == 2
             else [metadata_to_json(meta) for meta in records["metadata"]])
    for label, id_, text in zip(records["labels"], records["ids"], texts, strict=True):
        ids[label], metas[label] = id_, text
    return LoadedCollection(params=records["params"], graph=graph, norms=norms,
                            alive=alive, ids=ids, metas=metas)
