"""Record file + location index: blocks, CRC, statuses, commit atomicity, the start-up scan."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vecraft.services.storage_node.mmap import (
    STATUS_DELETED,
    STATUS_LIVE,
    CommitBatch,
    CorruptRecord,
    LocationIndex,
    RecordFile,
    check_consistency,
    encode_records,
)

pytestmark = pytest.mark.unit


def _append(records: RecordFile, index: LocationIndex, ids: list[str], offset: int,
            commit: bool = True) -> list[int]:
    vectors = np.arange(len(ids) * 4, dtype=np.float32).reshape(len(ids), 4) + offset
    data, lengths = encode_records("c1", ids, vectors, [f'{{"n": {offset}}}'] * len(ids),
                                   [f"doc {i}" for i in ids], offset, offset << 16)
    start = records.end
    pos = records.append(data)
    offsets = [int(o) for o in np.cumsum([pos, *lengths[:-1]])]
    if commit:
        records.flush(start, records.end)
        batch = CommitBatch(rows=[("c1", rid, STATUS_LIVE, off, length, "data-0", offset, offset << 16)
                                  for rid, off, length in zip(ids, offsets, lengths, strict=True)],
                            progress={"data-0": (offset, offset << 16)}, file_end=records.end)
        records.set_status(index.commit(batch), STATUS_DELETED)
    return [int(o) for o in offsets]


def test_blocks_round_trip_and_supersede(tmp_path: Path) -> None:
    records, index = RecordFile(tmp_path / "r.bin"), LocationIndex(tmp_path / "l.sqlite")
    first = _append(records, index, ["a", "b"], 1)
    second = _append(records, index, ["b"], 2)
    rows = index.lookup("c1", ["a", "b", "zz"])
    assert set(rows) == {"a", "b"}
    view = records.read(rows["b"].file_offset, rows["b"].length)
    assert (view.id, view.document, view.metadata_json, view.entry_offset) == ("b", "doc b", '{"n": 2}', 2)
    np.testing.assert_array_equal(view.vector, np.arange(4, dtype=np.float32) + 2)
    assert records.status(first[1]) == STATUS_DELETED  # the old version of b
    assert records.status(first[0]) == records.status(second[0]) == STATUS_LIVE
    assert index.progress() == {"data-0": (2, 2 << 16)}
    records.close()
    index.close()


def test_uncommitted_tail_is_discarded_and_statuses_repaired(tmp_path: Path) -> None:
    records, index = RecordFile(tmp_path / "r.bin"), LocationIndex(tmp_path / "l.sqlite")
    live = _append(records, index, ["a", "b"], 1)
    committed_end = records.end
    _append(records, index, ["c", "d"], 2, commit=False)  # "crash" before the commit
    records.set_status([live[0]], STATUS_DELETED)  # a status flip that the commit does not back
    records.close()
    index.close()

    records, index = RecordFile(tmp_path / "r.bin"), LocationIndex(tmp_path / "l.sqlite")
    report = check_consistency(records, index)
    assert records.end == committed_end
    assert report.truncated_bytes > 0 and report.live == 2 and report.repaired_status == 1
    assert records.status(live[0]) == STATUS_LIVE
    assert index.lookup("c1", ["c", "d"]) == {}
    # Appends continue at the committed end, over the discarded tail.
    assert _append(records, index, ["e"], 2)[0] == committed_end
    assert check_consistency(records, index).blocks == 3


def test_damaged_live_block_is_detected(tmp_path: Path) -> None:
    records, index = RecordFile(tmp_path / "r.bin"), LocationIndex(tmp_path / "l.sqlite")
    offsets = _append(records, index, ["a", "b"], 1)
    records.close()
    with open(tmp_path / "r.bin", "r+b") as f:
        f.seek(offsets[1] + 40)
        f.write(b"\xff\xff")
    records = RecordFile(tmp_path / "r.bin")
    with pytest.raises(CorruptRecord):
        check_consistency(records, index)
    with pytest.raises(CorruptRecord):
        records.read(offsets[1], index.lookup("c1", ["b"])["b"].length)


def test_file_grows_past_its_first_mapping(tmp_path: Path) -> None:
    records, index = RecordFile(tmp_path / "r.bin"), LocationIndex(tmp_path / "l.sqlite")
    ids = [f"id{i}" for i in range(3000)]  # ~3000 x (12 + 44 + 4*4) bytes... and a 1 MiB start
    for batch in range(8):
        _append(records, index, [f"{i}-{batch}" for i in ids], batch + 1)
    assert records.end > 1024 * 1024
    rows = index.lookup("c1", ["id2999-7"])
    assert records.read(rows["id2999-7"].file_offset, rows["id2999-7"].length).entry_offset == 8
    assert check_consistency(records, index).live == 3000 * 8
