"""Proto <-> domain conversion: each pair inverts the other, defaults and validation hold on the way in."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings

from tests.unit.model.test_filters import filters
from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.consistency import ConsistencyLevel, ConsistencyReport
from vecraft.shared.model.filters import parse_filter
from vecraft.shared.model.records import ShardHits
from vecraft.shared.model.schema import CollectionSchema, HnswParams
from vecraft.shared.rpc import convert
from vecraft.shared.rpc.v1 import collection_pb2, search_pb2

pytestmark = pytest.mark.unit

MODEL = Path(convert.__file__).resolve().parents[1] / "model"


def test_schema_round_trips_through_its_wire_bytes() -> None:
    schema = CollectionSchema(tenant="acme", name="docs", dim=128, metric="l2", shards=3, replicas=2,
                              hnsw=HnswParams(m=32, ef_construction=100, ef_search=50),
                              partition="data-1", collection_id="c-42", ddl_offset=7,
                              ddl_hlc=(1_700_000_000_000 << 16) | 3, created_unix_ms=1_700_000_000_000)
    msg = convert.schema_to_proto(schema)
    assert msg.hnsw.m == 32 and msg.partition == "data-1"
    wire = collection_pb2.CollectionSchema.FromString(msg.SerializeToString())
    assert convert.schema_from_proto(wire) == schema


def test_schema_from_proto_validates_and_defaults() -> None:
    msg = collection_pb2.CollectionSchema(name="docs", dim=4, metric="IP", shards=1, replicas=1)
    schema = convert.schema_from_proto(msg)
    assert schema.tenant == "default" and schema.metric == "ip" and schema.hnsw == HnswParams()
    with pytest.raises(InvalidRequest, match="dim is 0"):
        convert.schema_from_proto(collection_pb2.CollectionSchema(name="docs", shards=1, replicas=1))


def test_schema_from_create_request() -> None:
    req = collection_pb2.CreateCollectionRequest(name="docs", dim=8,
                                                 hnsw=collection_pb2.HnswParams(ef_search=10))
    schema = convert.schema_from_create_request(req, default_shards=3, default_replicas=1)
    assert (schema.tenant, schema.metric, schema.shards, schema.replicas) == ("default", "cosine", 3, 1)
    assert schema.hnsw == HnswParams(ef_search=10)
    bad = collection_pb2.CreateCollectionRequest(name="docs", dim=8, shards=99)
    with pytest.raises(InvalidRequest, match="shards is 99"):
        convert.schema_from_create_request(bad, default_shards=3, default_replicas=1)


def test_hnsw_zeros_are_defaults_and_bad_values_refused() -> None:
    assert convert.hnsw_from_proto(None) == HnswParams()
    assert convert.hnsw_from_proto(collection_pb2.HnswParams(m=8)) == HnswParams(m=8)
    params = HnswParams(ef_search=64)
    assert convert.hnsw_from_proto(convert.hnsw_to_proto(params)) == params
    with pytest.raises(InvalidRequest, match=r"hnsw\.m is 3"):
        convert.hnsw_from_proto(collection_pb2.HnswParams(m=3))


def test_levels_are_the_proto_enum() -> None:
    for level in ConsistencyLevel:
        assert search_pb2.ConsistencyLevel.Name(convert.level_to_proto(level)) == level.name
        assert convert.level_from_proto(search_pb2.ConsistencyLevel.Value(level.name)) is level
    with pytest.raises(InvalidRequest, match="unknown consistency level 9"):
        convert.level_from_proto(9)


def test_consistency_report_round_trips() -> None:
    report = ConsistencyReport(level_requested=ConsistencyLevel.BOUNDED_STALENESS,
                               level_achieved=ConsistencyLevel.BOUNDED_STALENESS, staleness_ms=12,
                               max_allowed_staleness_ms=500, index_version=41, cache_hit=True,
                               sync_performed=False)
    info = convert.consistency_to_proto(report)
    assert info.index_version_used == 41 and info.level_achieved == search_pb2.BOUNDED_STALENESS
    assert convert.consistency_from_proto(search_pb2.ConsistencyInfo.FromString(info.SerializeToString())) \
        == report
    unbounded = ConsistencyReport(level_requested=ConsistencyLevel.EVENTUAL,
                                  level_achieved=ConsistencyLevel.EVENTUAL, staleness_ms=0,
                                  max_allowed_staleness_ms=None, index_version=0, cache_hit=False,
                                  sync_performed=True)
    assert convert.consistency_to_proto(unbounded).max_allowed_staleness_ms == 0


def test_hits_round_trip_in_order_and_keep_float32_scores() -> None:
    hits = ShardHits(ids=["b", "a"], scores=np.array([0.5, -1.25], dtype=np.float32),
                     metadata_json=['{"x":1}', ""], documents=["doc b", ""])
    wire = convert.hits_to_proto(hits)
    assert [(r.id, r.score, r.metadata_json, r.document) for r in wire] == \
        [("b", 0.5, '{"x":1}', "doc b"), ("a", -1.25, "", "")]
    back = convert.hits_from_proto(wire)
    assert back.ids == hits.ids and back.scores.dtype == np.float32
    assert back.scores.tolist() == hits.scores.tolist() and back.documents == hits.documents
    no_documents = ShardHits(ids=["c"], scores=np.array([1.0], dtype=np.float32), metadata_json=[""])
    assert convert.hits_to_proto(no_documents)[0].document == ""
    assert convert.hits_from_proto([]).ids == []


@settings(max_examples=200, deadline=None)
@given(filters)
def test_filter_text_parses_to_what_the_edge_validated(obj: dict[str, Any]) -> None:
    text = convert.filter_to_json(obj)
    assert convert.filter_from_json(text) == parse_filter(obj)


def test_filter_text_is_the_object_as_given_compact() -> None:
    obj = {"year": {"$gte": 2020}, "tags": {"$in": ["a", "b"]}, "ok": True}
    assert convert.filter_to_json(obj) == orjson.dumps(obj).decode()
    assert convert.filter_to_json(None) == convert.filter_to_json({}) == ""
    assert convert.filter_from_json("") is None and convert.filter_from_json("  ") is None
    with pytest.raises(InvalidRequest, match="filter_json is not valid JSON"):
        convert.filter_from_json("{not json")
    with pytest.raises(InvalidRequest, match="must be a JSON object"):
        convert.filter_from_json("[1, 2]")
    with pytest.raises(InvalidRequest, match=r"filters.year.\$gt"):
        convert.filter_from_json('{"year": {"$gt": "x"}}')


@pytest.mark.parametrize("module", ["schema", "records", "filters", "validation", "consistency"])
def test_the_domain_does_not_import_the_wire_at_run_time(module: str) -> None:
    tree = ast.parse((MODEL / f"{module}.py").read_text())
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                   and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                   for n in ast.walk(node)}
    imported = [n.module for n in ast.walk(tree)
                if isinstance(n, ast.ImportFrom) and n.module and id(n) not in typing_only]
    assert not [m for m in imported if m.startswith("vecraft.shared.rpc")]
