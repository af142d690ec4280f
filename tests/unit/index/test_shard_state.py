"""ShardState: journal replay yields exactly each shard's records; replay is idempotent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from vecraft.shared.common.errors import InvalidRequest, NotFound
from vecraft.shared.index import ShardState, UnknownCollection, decode_entry
from vecraft.shared.model.filters import parse_filter
from vecraft.shared.model.routing import shard_of
from vecraft.shared.model.schema import CollectionSchema
from vecraft.shared.rpc.convert import schema_from_proto
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2

from .journal_builders import PARTITION, ddl, delete, entry, schema, write

pytestmark = pytest.mark.unit

SHARDS, DIM = 3, 8
OLD = schema("coll-1", shards=SHARDS, dim=DIM)
NEW = schema("coll-2", shards=SHARDS, dim=DIM)
OTHER = schema("coll-o", name="other", shards=2, dim=4, metric="cosine")

Model = dict[str, tuple[np.ndarray, dict[str, Any] | None, str]]


def _rows(prefix: str, n: int, seed: int) -> tuple[list[str], np.ndarray, list[Any], list[str]]:
    rng = np.random.default_rng(seed)
    ids = [f"{prefix}{i}" for i in range(n)]
    metas = [{"i": i, "p": prefix} if i % 4 else None for i in range(n)]
    return ids, rng.standard_normal((n, DIM)).astype(np.float32), metas, \
        [f"doc {prefix}{i}" if i % 2 else "" for i in range(n)]


def _history() -> tuple[list[journal_pb2.JournalEntry], Model, Model]:
    """Entries of one data partition and the expected records before and after the DROP."""
    model: Model = {}
    entries = [entry(1, ddl("create", OLD), ddl("create", OTHER))]

    def put(ids: list[str], vecs: np.ndarray, metas: list[Any], docs: list[str]) -> None:
        for i, v, m, d in zip(ids, vecs, metas, docs, strict=True):
            model[i] = (v, m, d)

    a = _rows("a", 200, 1)
    entries.append(entry(2, write(OLD, *a)))
    put(*a)
    b = _rows("b", 60, 2)
    other = _rows("o", 5, 9)
    entries.append(entry(3, write(OLD, *b, upsert=True),
                         write(OTHER, other[0], other[1][:, :4], other[2], other[3])))
    put(*b)
    entries.append(entry(4, delete(OLD, [f"a{i}" for i in range(0, 200, 3)] + ["never"])))
    for i in range(0, 200, 3):
        model.pop(f"a{i}")
    # Replace: new vectors, metadata and documents for ids that exist, plus one deleted earlier.
    r = _rows("a", 40, 3)
    entries.append(entry(5, write(OLD, r[0], r[1], [{"re": True}] * 40, ["new"] * 40)))
    put(r[0], r[1], [{"re": True}] * 40, ["new"] * 40)
    # A collection created and dropped in one entry: its later writes are skipped.
    ghost = schema("ghost", dim=DIM)
    entries.append(entry(6, ddl("create", ghost), ddl("drop", ghost), write(ghost, *_rows("g", 5, 4)),
                         delete(ghost, ["a1"])))
    altered = schema("coll-1", shards=SHARDS, dim=DIM, ef_search=321)
    entries.append(entry(7, ddl("alter", altered)))
    before_drop = dict(model)
    # Same-entry write then delete of the same id.
    c = _rows("c", 10, 5)
    entries.append(entry(8, write(OLD, *c), delete(OLD, ["c0", "c1"])))
    entries.append(entry(9, ddl("drop", OLD)))
    model.clear()
    # Re-create under the same name with a new collection_id, in one entry with its first write.
    d = _rows("d", 80, 6)
    entries.append(entry(10, ddl("create", NEW), write(NEW, *d)))
    put(*d)
    entries.append(entry(11, write(OLD, *_rows("late", 5, 7))))  # the dropped incarnation: skipped
    return entries, before_drop, model


def _expected(model: Model, shard: int) -> Model:
    return {i: rec for i, rec in model.items() if shard_of(i, SHARDS) == shard}


def _check(state: ShardState, model: Model) -> None:
    expected = _expected(model, state.shard)
    index = state.index("default", "docs")
    assert sorted(index.ids()) == sorted(expected)
    ids = sorted(expected)
    found, vectors, metadata_json, documents = state.get("default", "docs", [*ids, "missing"])
    assert found == ids
    for i, v, m, d in zip(found, vectors, metadata_json, documents, strict=True):
        np.testing.assert_array_equal(v, expected[i][0])
        assert (orjson.loads(m) if m else None) == expected[i][1]
        assert d == expected[i][2]
    if expected:
        query = next(iter(expected.values()))[0]
        got, _scores, metas = state.search("default", "docs", query, 5)
        brute = sorted(expected, key=lambda i: float(np.sum((expected[i][0] - query) ** 2)))[:5]
        assert got == brute and len(metas) == len(got)


@pytest.mark.parametrize("shard", range(SHARDS))
def test_replay_yields_exactly_the_shards_records(shard: int) -> None:
    entries, before_drop, after = _history()
    state = ShardState(shard)
    for e in entries[:7]:
        state.apply(e)
    _check(state, before_drop)
    assert state.schema("default", "docs").hnsw.ef_search == 321
    assert state.index("default", "docs").ef_search == 321
    for e in entries[7:]:
        state.apply(e)
    _check(state, after)
    assert state.schema("default", "docs").collection_id == "coll-2"
    assert sorted(s.collection_id for s in state.collections()) == ["coll-2", "coll-o"]
    assert state.applied == {PARTITION: (11, entries[-1].hlc)}
    assert state.applied_offset(PARTITION) == 11 and state.applied_offset("data-9") == 0
    other = [i for i in (f"o{j}" for j in range(5)) if shard_of(i, 2) == shard]
    assert sorted(state.index("default", "other").ids()) == sorted(other)


@pytest.mark.parametrize("shard", range(SHARDS))
def test_apply_many_equals_one_by_one_and_replay_is_idempotent(shard: int) -> None:
    entries, _, after = _history()
    one = ShardState(shard)
    for e in entries:
        one.apply(e)
    many = ShardState(shard)
    many.apply_many(entries[:5])
    many.apply_many(entries)  # overlaps: the first five are ignored
    many.apply_many(entries)
    for e in entries:
        many.apply(e)
    _check(many, after)
    assert many.applied == one.applied
    assert sorted(many.index("default", "docs").ids()) == sorted(one.index("default", "docs").ids())
    # A re-delivered CREATE of a live or dropped incarnation changes nothing.
    many.apply(entry(12, ddl("create", NEW), ddl("create", OLD)))
    _check(many, after)


def test_search_errors() -> None:
    entries, _, _ = _history()
    state = ShardState(0)
    state.apply_many(entries)
    with pytest.raises(NotFound):
        state.search("default", "nope", np.zeros(DIM, np.float32), 3)
    with pytest.raises(NotFound):
        state.schema("other-tenant", "docs")
    with pytest.raises(InvalidRequest):
        state.search("default", "docs", np.zeros(DIM + 1, np.float32), 3)
    with pytest.raises(InvalidRequest):
        state.search("default", "docs", np.zeros(DIM, np.float32), 0)


def test_filtered_search_returns_metadata_json() -> None:
    state = ShardState(0)
    sch = schema("c", shards=1, dim=2)
    state.apply(entry(1, ddl("create", sch),
                      write(sch, ["x", "y"], np.eye(2), [{"t": "a", "n": 2**70}, {"t": "b"}])))
    ids, scores, metas = state.search("default", "docs", np.array([1, 0], np.float32), 5,
                                      parse_filter({"t": "a"}))
    assert ids == ["x"] and scores.shape == (1,)
    assert json.loads(metas[0]) == {"t": "a", "n": 2**70}  # beyond 64 bits survives


def test_decode_entry_keeps_this_shards_rows_and_all_ddl() -> None:
    ids, vecs, metas, docs = _rows("z", 90, 8)
    e = entry(1, ddl("create", OLD), write(OLD, ids, vecs, metas, docs), delete(OLD, ids[:30]))
    seen: list[str] = []
    for shard in range(SHARDS):
        ops = decode_entry(e, shard, {})
        assert ops[0].kind == "create"
        upsert = next(op for op in ops if op.kind == "upsert")
        assert all(shard_of(i, SHARDS) == shard for i in upsert.ids)
        rows = [ids.index(i) for i in upsert.ids]
        np.testing.assert_array_equal(upsert.vectors, vecs[rows])
        assert upsert.metadatas == [metas[r] for r in rows] and upsert.documents == [docs[r] for r in rows]
        dels = [op for op in ops if op.kind == "delete"]
        assert all(shard_of(i, SHARDS) == shard for op in dels for i in op.ids)
        seen += upsert.ids
    assert sorted(seen) == sorted(ids)
    # Without the CREATE in the entry and unknown to the caller: raised, never skipped.
    with pytest.raises(UnknownCollection, match="never saw created"):
        decode_entry(entry(2, write(OLD, ids, vecs)), 0, {})
    # Known as dropped: skipped.
    assert decode_entry(entry(2, write(OLD, ids, vecs)), 0, {}, {OLD.collection_id}) == []
    # Garbage payload: skipped, not raised.
    bad = journal_pb2.JournalEntry(partition=PARTITION, offset=3, payload=b"\xff\xff\xff")
    assert decode_entry(bad, 0, {"coll-1": OLD}) == []


def test_malformed_writes_are_skipped_not_raised() -> None:
    sch = schema("m", shards=1, dim=2)
    state = ShardState(0)
    wrong_dim = write(sch, ["a"], np.ones((1, 3)))
    nan_row = write(sch, ["b", "c"], np.array([[np.nan, 1], [1, 1]]))
    bad_json = journal_pb2.Mutation(write=journal_pb2.VectorWrite(
        collection="docs", collection_id="m", ids=["d"], dim=2,
        vectors=np.ones((1, 2), "<f4").tobytes(), metadata_json=["{not json"]))
    state.apply(entry(1, ddl("create", sch), wrong_dim, nan_row, bad_json))
    assert sorted(state.index("default", "docs").ids()) == ["c", "d"]
    assert state.index("default", "docs").metadata("d") is None


def test_save_load_round_trip(tmp_path: Path) -> None:
    entries, _, after = _history()
    state = ShardState(1)
    state.apply_many(entries)
    state.save(tmp_path / "shard-1")
    loaded = ShardState.load(tmp_path / "shard-1")
    assert loaded.shard == 1 and loaded.applied == state.applied
    _check(loaded, after)
    # Replay continues after the snapshot; the dropped incarnation stays dropped.
    loaded.apply_many(entries)
    loaded.apply(entry(12, ddl("create", OLD)))
    _check(loaded, after)
    assert loaded.applied_offset(PARTITION) == 12


def test_a_write_to_a_never_created_collection_stops_the_replica_after_the_entries_before_it() -> None:
    state = ShardState(0)
    sch, ghost = schema("s", shards=1, dim=2), schema("ghost", name="g", shards=1, dim=2)
    with pytest.raises(UnknownCollection):
        state.apply_many([entry(1, ddl("create", sch)), entry(2, write(sch, ["a"], np.eye(1, 2))),
                          entry(3, write(ghost, ["b"], np.eye(1, 2))),
                          entry(4, write(sch, ["c"], np.eye(1, 2)))])
    assert state.applied_offset(PARTITION) == 2
    assert state.get("default", "docs", ["a", "c"])[0] == ["a"]
    # It stays stopped there: retrying fails the same way and applies nothing after it.
    with pytest.raises(UnknownCollection):
        state.apply(entry(3, write(ghost, ["b"], np.eye(1, 2))))
    assert state.applied_offset(PARTITION) == 2


def test_the_name_resolves_to_the_latest_created_incarnation_whatever_the_arrival_order() -> None:
    old, new = schema("inc-1", shards=1, dim=2), schema("inc-2", shards=1, dim=2)
    old.ddl_offset, new.ddl_offset = 1, 3
    # The tenant moved partitions between the two incarnations: new's CREATE arrives first.
    state = ShardState(0)
    state.apply(journal_pb2.JournalEntry(partition="data-1", offset=1, hlc=5,
                                         payload=entry(1, ddl("create", new)).payload))
    state.apply(entry(1, ddl("create", old)))
    assert state.schema("default", "docs").collection_id == "inc-2"
    state.apply(entry(2, ddl("drop", old)))
    assert state.schema("default", "docs").collection_id == "inc-2"


def test_schemas_are_the_domain_type_altered_and_snapshotted_as_such(tmp_path: Path) -> None:
    sch = schema("dom", shards=1, dim=4, metric="cosine", ef_search=0)
    state = ShardState(0)
    state.apply(entry(1, ddl("create", sch)))
    got = state.schema("default", "docs")
    assert isinstance(got, CollectionSchema) and got == schema_from_proto(sch)
    altered = collection_pb2.CollectionSchema()
    altered.CopyFrom(sch)
    altered.hnsw.ef_search, altered.ddl_offset, altered.ddl_hlc = 77, 9, 99
    state.apply(entry(2, ddl("alter", altered)))
    now = state.schema("default", "docs")
    assert (now.hnsw.ef_search, now.ddl_offset, now.ddl_hlc) == (77, 9, 99)
    assert got.hnsw.ef_search == 0  # the schema read before the ALTER is not changed under its reader
    state.save(tmp_path / "s")
    assert ShardState.load(tmp_path / "s").schema("default", "docs") == now


@pytest.mark.parametrize("change", [{"metric": "hamming"}, {"name": "9bad"}, {"replicas": 0}, {"dim": 0}])
def test_a_create_the_model_refuses_is_skipped_by_every_replica_alike(change: dict[str, Any]) -> None:
    bad = schema("bad", shards=1, dim=4)
    for field, value in change.items():
        setattr(bad, field, value)
    e = entry(1, ddl("create", bad), ddl("alter", schema("huge-ef", ef_search=4097)))
    # decode_entry is what storage nodes apply too: no op, so no replica creates it.
    assert decode_entry(e, 0, {}) == []
    state = ShardState(0)
    state.apply(e)
    assert state.collections() == [] and state.applied_offset(PARTITION) == 1


def test_metadata_is_kept_as_its_json_text_through_snapshots(tmp_path: Path) -> None:
    """Rows keep the text they arrived as (exact: a parse would turn 2**70 into a float), and so
    does a snapshot; a loaded one answers with the same text and filters on it."""
    state = ShardState(0)
    sch = schema("c", shards=1, dim=2)
    metas = [{"t": "a", "n": 2**70}, None, {"t": "b"}]
    state.apply(entry(1, ddl("create", sch), write(sch, ["x", "y", "z"], np.eye(3)[:, :2], metas)))
    before = state.get("default", "docs", ["x", "y", "z"])[2]
    assert [json.loads(m) if m else None for m in before] == metas
    state.save(tmp_path / "snap")
    records = [json.loads(p.read_text()) for p in (tmp_path / "snap").rglob("records.json")]
    assert len(records) == 1 and records[0]["metadata_json"] == before
    loaded = ShardState.load(tmp_path / "snap")
    assert loaded.get("default", "docs", ["x", "y", "z"])[2] == before
    flt = parse_filter({"t": "b"})
    ids, _, found = loaded.search("default", "docs", np.array([1, 0], np.float32), 5, flt)
    assert ids == ["z"] and found == [before[2]]
