"""Scanning one collection's live records in id order: the storage side of record listing.

The location index's primary key is ``(collection_id, id)``, so the rows after
a cursor come in id order from one range read of one committed state; each
record is then read from the record file. A page ends at the first of:
``limit`` records, :data:`MAX_SCAN_BYTES` of payload, or (with a filter)
:data:`MAX_SCANNED_ROWS` rows examined; ``scanned_to`` says how far it got, so
the caller continues after it and never misses or repeats an id.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from vecraft.services.storage_node.mmap import LocationIndex, RecordFile
from vecraft.shared.model.filters import Filter, matches
from vecraft.shared.rpc.v1 import storage_pb2

#: Payload bytes (vectors, metadata, documents) one page carries at most; at least one record.
MAX_SCAN_BYTES = 8 << 20
#: Rows a filtered page examines at most (a selective filter answers fewer records, not a slow call).
MAX_SCANNED_ROWS = 20_000


@dataclass(frozen=True, slots=True)
class ScanOptions:
    include_vectors: bool = False
    include_metadata: bool = True
    include_documents: bool = True
    filter: Filter | None = None


@dataclass(slots=True)
class ScanPage:
    records: list[storage_pb2.StoredRecord] = field(default_factory=list)
    #: No live record after ``scanned_to`` (or after the cursor when nothing was examined).
    exhausted: bool = True
    #: The last id examined ("" when none was).
    scanned_to: str = ""


def scan(locations: LocationIndex, records: RecordFile, collection_id: str, after: str, limit: int,
         options: ScanOptions) -> ScanPage:
    """Up to ``limit`` live records of ``collection_id`` with ids after ``after``, in id order.

    Runs in a worker thread (SQLite and the record file are read synchronously).
    """
    budget = limit if options.filter is None else max(limit, MAX_SCANNED_ROWS)
    # One row more than may be examined: whether it exists tells "exhausted" without another read.
    rows = locations.live_after(collection_id, after, budget + 1)
    page = ScanPage()
    size = 0
    for examined, loc in enumerate(rows):
        if len(page.records) >= limit or size >= MAX_SCAN_BYTES or examined >= budget:
            page.exhausted = False
            break
        page.scanned_to = loc.id
        view = records.read(loc.file_offset, loc.length)
        if options.filter is not None and not matches(
                options.filter, orjson.loads(view.metadata_json) if view.metadata_json else None):
            continue
        rec = storage_pb2.StoredRecord(id=loc.id, offset=view.entry_offset, hlc=view.hlc)
        if options.include_vectors:
            rec.vector = view.vector.tobytes()
        if options.include_metadata:
            rec.metadata_json = view.metadata_json
        if options.include_documents:
            rec.document = view.document
        size += rec.ByteSize()
        page.records.append(rec)
    return page
