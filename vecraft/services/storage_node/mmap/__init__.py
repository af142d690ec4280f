"""Durable record storage: the append-only mmap block file and its SQLite location index."""

from vecraft.services.storage_node.mmap.consistency import ScanReport, check_consistency
from vecraft.services.storage_node.mmap.location_index import CommitBatch, Location, LocationIndex
from vecraft.services.storage_node.mmap.record_file import (
    STATUS_DELETED,
    STATUS_LIVE,
    CorruptRecord,
    RecordFile,
    RecordView,
    encode_records,
)

__all__ = [
    "STATUS_DELETED",
    "STATUS_LIVE",
    "CommitBatch",
    "CorruptRecord",
    "Location",
    "LocationIndex",
    "RecordFile",
    "RecordView",
    "ScanReport",
    "check_consistency",
    "encode_records",
]
