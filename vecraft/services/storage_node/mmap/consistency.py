"""Startup consistency scan of the record file against the location index.

Run once at start-up, before anything reads or appends:

1. cut the file back to the committed end recorded in SQLite (bytes past it
   belong to a batch whose commit never happened);
2. walk every block in [0, committed end) checking header and CRC;
3. a block the index points to as LIVE must pass its CRC (else the local state
   cannot be trusted: :class:`CorruptRecord`, and the node rebuilds from the
   journal) and carry status LIVE; any other block must carry DELETED. Status
   bytes that disagree (a crash between a commit and its status flips) are
   repaired in place.

It also counts the file's dead bytes (blocks no live row points to), which the
applier keeps up to date from then on and a compaction reclaims.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from vecraft.services.storage_node.mmap.location_index import LocationIndex
from vecraft.services.storage_node.mmap.record_file import (
    STATUS_DELETED,
    STATUS_LIVE,
    CorruptRecord,
    RecordFile,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScanReport:
    blocks: int
    live: int
    truncated_bytes: int
    repaired_status: int


def check_consistency(records: RecordFile, index: LocationIndex) -> ScanReport:
    """Reconcile ``records`` with ``index``; raises CorruptRecord when a live block is damaged."""
    committed_end = index.file_end()
    cut = records.recover(committed_end)
    live = set(index.all_live_offsets())
    blocks = 0
    seen_live = 0
    to_live: list[int] = []
    to_deleted: list[int] = []
    live_bytes = 0
    last_end = records.base
    for block in records.scan(committed_end):
        blocks += 1
        if block.offset in live:
            if not block.crc_ok:
                raise CorruptRecord(f"live block at {block.offset} fails its CRC")
            seen_live += 1
            live_bytes += block.length
            if block.status != STATUS_LIVE:
                to_live.append(block.offset)
        elif block.status != STATUS_DELETED:
            to_deleted.append(block.offset)
        last_end = block.offset + block.length
    if blocks and last_end != committed_end:
        raise CorruptRecord(f"block chain ends at {last_end}, committed end is {committed_end}")
    if not blocks and committed_end != records.base:
        raise CorruptRecord(f"no readable block before the committed end {committed_end}")
    if seen_live != len(live):
        raise CorruptRecord(f"{len(live) - seen_live} live rows point at no block")
    records.set_status(to_live, STATUS_LIVE)
    records.set_status(to_deleted, STATUS_DELETED)
    records.dead_bytes = committed_end - records.base - live_bytes
    report = ScanReport(blocks, seen_live, cut, len(to_live) + len(to_deleted))
    if cut or report.repaired_status:
        log.warning("record file repaired", extra={"truncated_bytes": cut,
                                                   "repaired_status": report.repaired_status})
    return report
