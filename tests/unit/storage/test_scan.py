"""The storage node's scan: live records in id order after a cursor, filter budget, byte budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vecraft.services.storage_node import scan as scan_module
from vecraft.services.storage_node.mmap import (
    STATUS_DELETED,
    STATUS_LIVE,
    CommitBatch,
    LocationIndex,
    RecordFile,
    encode_records,
)
from vecraft.services.storage_node.scan import ScanOptions, scan
from vecraft.shared.model.filters import parse_filter

pytestmark = pytest.mark.unit


def _store(tmp_path: Path, ids: list[str], *, deleted: tuple[str, ...] = (),
           collection_id: str = "c1") -> tuple[RecordFile, LocationIndex]:
    records, index = RecordFile(tmp_path / "r.bin"), LocationIndex(tmp_path / "l.sqlite")
    vectors = np.arange(len(ids) * 2, dtype=np.float32).reshape(len(ids), 2)
    metas = [f'{{"n": {i}}}' for i in range(len(ids))]
    data, lengths = encode_records(collection_id, ids, vectors, metas, [f"doc {rid}" for rid in ids], 1, 7)
    pos = records.append(data)
    offsets = [int(o) for o in np.cumsum([pos, *lengths[:-1]])]
    records.flush(0, records.end)
    rows = [(collection_id, rid, STATUS_LIVE, off, length, "data-0", 1, 7)
            for rid, off, length in zip(ids, offsets, lengths, strict=True)]
    rows += [(collection_id, rid, STATUS_DELETED, -1, 0, "data-0", 2, 8) for rid in deleted]
    # Another collection's rows never show up.
    rows += [("other", rid, STATUS_LIVE, offsets[0], lengths[0], "data-0", 1, 7) for rid in ids]
    index.commit(CommitBatch(rows=rows, progress={"data-0": (2, 8)}, file_end=records.end))
    return records, index


def test_pages_in_id_order_with_exhaustion_known_without_an_extra_read(tmp_path: Path) -> None:
    ids = [f"k{i:02d}" for i in range(10)]
    records, index = _store(tmp_path, list(reversed(ids)), deleted=("k03",))
    live = [i for i in ids if i != "k03"]
    first = scan(index, records, "c1", "", 4, ScanOptions())
    assert [r.id for r in first.records] == live[:4] and not first.exhausted and first.scanned_to == live[3]
    rec = first.records[0]
    assert rec.vector == b"" and rec.metadata_json and rec.document == "doc k00" and rec.offset == 1
    rest = scan(index, records, "c1", first.scanned_to, 5, ScanOptions(include_vectors=True,
                                                                       include_documents=False))
    assert [r.id for r in rest.records] == live[4:] and rest.exhausted
    assert all(len(r.vector) == 8 and r.document == "" for r in rest.records)
    assert scan(index, records, "c1", "k09", 5, ScanOptions()).records == []
    assert scan(index, records, "missing", "", 5, ScanOptions()).exhausted


def test_filter_stops_at_the_scan_budget_and_says_how_far(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ids = [f"k{i:02d}" for i in range(10)]
    records, index = _store(tmp_path, ids)
    monkeypatch.setattr(scan_module, "MAX_SCANNED_ROWS", 4)
    only_last = ScanOptions(filter=parse_filter({"n": {"$gte": 8}}))
    page = scan(index, records, "c1", "", 2, only_last)
    assert page.records == [] and not page.exhausted and page.scanned_to == "k03"
    page = scan(index, records, "c1", "k07", 2, only_last)
    assert [r.id for r in page.records] == ["k08", "k09"] and page.exhausted


def test_byte_budget_ends_a_page_after_at_least_one_record(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    records, index = _store(tmp_path, ["a", "b", "c"])
    monkeypatch.setattr(scan_module, "MAX_SCAN_BYTES", 1)
    page = scan(index, records, "c1", "", 3, ScanOptions())
    assert [r.id for r in page.records] == ["a"] and not page.exhausted and page.scanned_to == "a"
