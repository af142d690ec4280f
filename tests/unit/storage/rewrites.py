"""An upsert-heavy workload for record compaction tests: the same ids rewritten round after round.

Every record says which id and which round wrote it (vector[0] is the id's number, vector[1] the
round, the metadata and the document repeat both), so any record read back can be checked on its
own, and against the journal prefix a replica holds (:func:`expected_rounds`).

Run as a module it is the process the kill test kills while it compacts:
``python -m tests.unit.storage.rewrites DATA_DIR IDS`` applies rounds and compacts after each,
printing ``compacting <round>`` just before a compaction starts and ``compacted <round>`` once
it is done. Restarted on the same directory it regenerates the same entries: those the replica
holds already are skipped, as a replica skips what the journal delivers twice.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import orjson

from tests.unit.storage import payloads
from vecraft.services.storage_node.journal_replay.applier import Applier
from vecraft.services.storage_node.journal_replay.recovery import LocalState, open_local_state
from vecraft.services.storage_node.record_compaction import compact_record_file
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

DIM = 16
#: Ids per journal entry.
CHUNK = 1000


def rid(n: int) -> str:
    return f"id-{n:06d}"


def schema() -> collection_pb2.CollectionSchema:
    return payloads.schema(dim=DIM)


def round_rows(ids: range, round_: int) -> tuple[list[str], np.ndarray, list[dict], list[str]]:
    """The records round ``round_`` writes for ``ids``: (ids, vectors, metadata, documents)."""
    n = np.asarray(ids, dtype=np.float32)
    vectors = np.empty((len(n), DIM), dtype=np.float32)
    vectors[:, 0] = n
    vectors[:, 1] = round_
    vectors[:, 2:] = np.sin(n[:, None] * 0.37 + round_ * 1.3 + np.arange(DIM - 2))
    return ([rid(i) for i in ids], vectors, [{"n": i, "round": round_} for i in ids],
            [f"document of {rid(i)} from round {round_}" for i in ids])


def round_payloads(s: collection_pb2.CollectionSchema, count: int, round_: int) -> list[bytes]:
    """One round over ids 0..count-1, as journal payloads of CHUNK ids each."""
    out = []
    for start in range(0, count, CHUNK):
        ids, vectors, metas, docs = round_rows(range(start, min(count, start + CHUNK)), round_)
        out.append(payloads.write(s, ids, vectors, metas, docs))
    return out


def check(record_id: str, vector: np.ndarray, metadata_json: str, document: str) -> int:
    """Assert a record read back is one a round wrote for ``record_id``; returns that round."""
    n = int(record_id.split("-")[1])
    round_ = int(vector[1])
    ids, vectors, metas, docs = round_rows(range(n, n + 1), round_)
    assert ids[0] == record_id
    np.testing.assert_array_equal(vector, vectors[0])
    assert orjson.loads(metadata_json) == metas[0]
    assert document == docs[0]
    return round_


def expected_rounds(count: int, applied: int) -> dict[str, tuple[int, int]]:
    """id -> (round, entry offset) of its last write at or below journal offset ``applied``.

    Entry 1 creates the collection; round r's chunk c is entry 2 + (r - 1) * chunks + c.
    """
    chunks = -(-count // CHUNK)
    out: dict[str, tuple[int, int]] = {}
    for n in range(count):
        c = n // CHUNK
        rounds_done = (applied - 2 - c) // chunks + 1 if applied >= 2 + c else 0
        if rounds_done:
            out[rid(n)] = (rounds_done, 2 + (rounds_done - 1) * chunks + c)
    return out


def stored(state: LocalState, count: int) -> dict[str, tuple[int, int, int]]:
    """id -> (round, entry offset, hlc) of every live record, read like a Get (location, then block)."""
    s = schema()
    found = state.locations.lookup(s.collection_id, [rid(n) for n in range(count)])
    out = {}
    for record_id, loc in found.items():
        if loc.status != 1:
            continue
        view = state.records.read(loc.file_offset, loc.length)
        assert view.id == record_id
        out[record_id] = (check(record_id, view.vector, view.metadata_json, view.document),
                          view.entry_offset, view.hlc)
    return out


def main(data_dir: Path, count: int) -> None:
    """Rewrite ids 0..count-1 round after round, compacting after each round (until killed)."""
    state = open_local_state(data_dir, 0)
    applier = Applier(0, state.records, state.locations, state.registry, state.applied)
    log = payloads.EntryLog()
    s = schema()
    entries: list[journal_pb2.JournalEntry] = [log.entry(payloads.ddl(s))]
    round_ = 0
    while True:
        round_ += 1
        entries += [log.entry(p) for p in round_payloads(s, count, round_)]
        applier.apply("data-0", entries)
        entries = []
        print(f"compacting {round_}", flush=True)
        compact_record_file(state.records, state.locations)
        state.records.release_previous()
        print(f"compacted {round_}", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
