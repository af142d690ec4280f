"""Start-up: open the local stores, check them, and rebuild the in-memory indexes.

Order (each step assumes the previous one):

1. open the SQLite location index and the record file it names (deleting any
   other record file, left by an interrupted compaction); refuse a data dir
   that belongs to another shard;
2. the consistency scan (:func:`check_consistency`) cuts an uncommitted tail
   and repairs status bytes; if a live block is damaged the local state cannot
   be trusted and the node starts empty (it then rebuilds from the journal);
3. register every collection the index knows, load the index snapshot, and
   re-apply from the LOCAL record file the rows committed after the snapshot's
   offsets (each row is the latest version of its id, so order does not
   matter): live rows are upserted, tombstones deleted. Collections absent
   from the snapshot are rebuilt from all their live rows.

The result equals the state at the committed applied offsets; the caller then
resubscribes from applied + 1.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vecraft.services.storage_node.indexes.registry import CollectionRegistry
from vecraft.services.storage_node.indexes.snapshots import SnapshotStore
from vecraft.services.storage_node.layout import LayoutError, remove_stale_checkpoints
from vecraft.services.storage_node.mmap import (
    STATUS_LIVE,
    CorruptRecord,
    Location,
    LocationIndex,
    RecordFile,
    check_consistency,
)
from vecraft.services.storage_node.record_compaction import open_record_file, record_files
from vecraft.shared.index.collection import CollectionIndex
from vecraft.shared.index.metadata_text import parse_metadata
from vecraft.shared.rpc.v1 import collection_pb2

log = logging.getLogger(__name__)

_REPLAY_CHUNK = 4096


@dataclass(slots=True)
class LocalState:
    records: RecordFile
    locations: LocationIndex
    registry: CollectionRegistry
    snapshots: SnapshotStore
    applied: dict[str, tuple[int, int]]
    replayed_rows: int
    seconds: float

    def close(self) -> None:
        self.locations.close()
        self.records.close()


def _open_stores(data_dir: Path, shard: int) -> tuple[RecordFile, LocationIndex]:
    data_dir.mkdir(parents=True, exist_ok=True)
    locations = LocationIndex(data_dir / "locations.sqlite")
    owner = locations.get_meta("shard")
    if owner is None:
        locations.set_meta("shard", str(shard))
    elif int(owner) != shard:
        locations.close()
        raise LayoutError(f"data dir {data_dir} belongs to shard {owner}, not {shard}")
    return open_record_file(data_dir, locations), locations


def open_local_state(data_dir: Path, shard: int) -> LocalState:
    """Open, check and rebuild the node's local state (see the module docstring)."""
    began = time.perf_counter()
    remove_stale_checkpoints(data_dir)
    records, locations = _open_stores(data_dir, shard)
    try:
        report = check_consistency(records, locations)
        log.info("record file checked", extra={"blocks": report.blocks, "live": report.live})
    except CorruptRecord:
        log.exception("local state damaged; discarding it and rebuilding from the journal")
        locations.close()
        records.close()
        for name in ("locations.sqlite", "locations.sqlite-wal", "locations.sqlite-shm"):
            (data_dir / name).unlink(missing_ok=True)
        for path in record_files(data_dir):
            path.unlink()
        shutil.rmtree(data_dir / "snapshot", ignore_errors=True)
        records, locations = _open_stores(data_dir, shard)
    snapshots = SnapshotStore(data_dir / "snapshot")
    registry = CollectionRegistry()
    schemas = {cid: collection_pb2.CollectionSchema.FromString(blob)
               for cid, blob in locations.schemas().items()}
    snapshot = snapshots.load(set(schemas))
    replayed = 0
    for cid, schema in schemas.items():
        if snapshot is not None and cid in snapshot.indexes:
            coll = registry.add(schema, snapshot.indexes[cid])
            after = {p: o for p, (o, _h) in snapshot.offsets.items()}
            rows = list(locations.rows_after(cid, after))
        else:
            coll = registry.add(schema)
            rows = list(locations.live_rows(cid))
        if schema.hnsw.ef_search > 0:
            coll.index.set_ef_search(schema.hnsw.ef_search)
        replayed += replay_rows(coll.index, records, rows)
    applied = locations.progress()
    seconds = time.perf_counter() - began
    log.info("local state open", extra={"collections": len(schemas), "replayed_rows": replayed,
                                        "from_snapshot": snapshot is not None, "seconds": round(seconds, 3),
                                        "applied": {p: o for p, (o, _h) in applied.items()}})
    return LocalState(records, locations, registry, snapshots, applied, replayed, seconds)


def replay_rows(index: CollectionIndex, records: RecordFile, rows: list[Location]) -> int:
    """Upsert the live rows (read from the record file) and delete the tombstoned ids."""
    dead = [r.id for r in rows if r.status != STATUS_LIVE]
    live = [r for r in rows if r.status == STATUS_LIVE]
    if dead:
        index.delete(dead)
    for start in range(0, len(live), _REPLAY_CHUNK):
        chunk = live[start:start + _REPLAY_CHUNK]
        views = [records.read(r.file_offset, r.length) for r in chunk]
        vectors = np.stack([v.vector for v in views])
        texts = [v.metadata_json for v in views]
        index.upsert([v.id for v in views], vectors, [parse_metadata(t) for t in texts], texts)
    return len(rows)
