"""Collection schema validation and proto conversion; consistency level names; record batches."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from vecraft.shared.common.errors import InvalidRequest, PayloadTooLarge
from vecraft.shared.model.consistency import ACCEPTED_NAMES, ConsistencyLevel
from vecraft.shared.model.records import Record, RecordBatch
from vecraft.shared.model.schema import CollectionSchema, HnswParams
from vecraft.shared.rpc.v1 import collection_pb2, search_pb2

pytestmark = pytest.mark.unit


def test_schema_defaults_and_metric_lowercased() -> None:
    schema = CollectionSchema(name="docs", dim=4, metric="COSINE")
    assert schema.metric == "cosine" and schema.tenant == "default"
    assert schema.hnsw == HnswParams(m=16, ef_construction=200, ef_search=0)  # 0: dynamic ef
    assert schema.qualified_name == "default/docs"


@pytest.mark.parametrize("kwargs, fragment", [
    ({"name": "9x"}, "collection name '9x' starts with '9'"),
    ({"name": ""}, "collection name '' is empty"),
    ({"tenant": "bad tenant"}, "tenant name 'bad tenant' contains ' '"),
    ({"dim": 0}, "dim is 0; it must be between 1 and 65536"),
    ({"dim": 65_537}, "between 1 and 65536"),
    ({"dim": True}, "dim must be an integer"),
    ({"dim": 4.0}, "dim must be an integer"),
    ({"metric": "hamming"}, "metric 'hamming' is not supported; use one of cosine, l2, ip"),
    ({"shards": 0}, "shards is 0; it must be between 1 and 64"),
    ({"shards": 65}, "between 1 and 64"),
    ({"replicas": 6}, "replicas is 6; it must be between 1 and 5"),
    ({"hnsw": {"m": 16}}, "hnsw must be HnswParams"),
])
def test_schema_rejected(kwargs: dict[str, Any], fragment: str) -> None:
    base: dict[str, Any] = {"name": "docs", "dim": 4}
    with pytest.raises(InvalidRequest) as err:
        CollectionSchema(**{**base, **kwargs})
    assert fragment in err.value.message


@pytest.mark.parametrize("kwargs, fragment", [
    ({"m": 3}, "hnsw.m is 3; it must be between 4 and 128"),
    ({"m": 129}, "hnsw.m is 129"),
    ({"ef_construction": 7}, "hnsw.ef_construction is 7; it must be between 8 and 2000"),
    ({"ef_search": -1}, "hnsw.ef_search is -1; it must be between 1 and 4096"),
    ({"ef_search": 4097}, "hnsw.ef_search is 4097"),
])
def test_hnsw_rejected(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidRequest) as err:
        HnswParams(**kwargs)
    assert fragment in err.value.message


def test_schema_proto_round_trip() -> None:
    schema = CollectionSchema(tenant="acme", name="docs", dim=128, metric="l2", shards=3, replicas=2,
                              hnsw=HnswParams(m=32, ef_construction=100, ef_search=50),
                              partition="data-1", collection_id="c-42", ddl_offset=7,
                              ddl_hlc=(1_700_000_000_000 << 16) | 3, created_unix_ms=1_700_000_000_000)
    msg = schema.to_proto()
    assert msg.hnsw.m == 32 and msg.partition == "data-1"
    back = CollectionSchema.from_proto(collection_pb2.CollectionSchema.FromString(msg.SerializeToString()))
    assert back == schema
    assert dataclasses.replace(schema, partition="data-2").partition == "data-2"


def test_schema_from_proto_validates_and_defaults() -> None:
    msg = collection_pb2.CollectionSchema(name="docs", dim=4, metric="IP", shards=1, replicas=1)
    schema = CollectionSchema.from_proto(msg)
    assert schema.tenant == "default" and schema.metric == "ip" and schema.hnsw == HnswParams()
    with pytest.raises(InvalidRequest, match="dim is 0"):
        CollectionSchema.from_proto(collection_pb2.CollectionSchema(name="docs", shards=1, replicas=1))


def test_schema_from_create_request() -> None:
    req = collection_pb2.CreateCollectionRequest(name="docs", dim=8,
                                                 hnsw=collection_pb2.HnswParams(ef_search=10))
    schema = CollectionSchema.from_create_request(req, default_shards=3, default_replicas=1)
    assert (schema.tenant, schema.metric, schema.shards, schema.replicas) == ("default", "cosine", 3, 1)
    assert schema.hnsw == HnswParams(ef_search=10)
    bad = collection_pb2.CreateCollectionRequest(name="docs", dim=8, shards=99)
    with pytest.raises(InvalidRequest, match="shards is 99"):
        CollectionSchema.from_create_request(bad, default_shards=3, default_replicas=1)


# --- consistency levels --------------------------------------------------------------------------

@pytest.mark.parametrize("text, level", [
    ("eventual", ConsistencyLevel.EVENTUAL), ("EVENTUAL", ConsistencyLevel.EVENTUAL),
    ("bounded", ConsistencyLevel.BOUNDED_STALENESS),
    ("Bounded_Staleness", ConsistencyLevel.BOUNDED_STALENESS),
    ("bounded-staleness", ConsistencyLevel.BOUNDED_STALENESS),
    ("read_your_writes", ConsistencyLevel.READ_YOUR_WRITES), ("RYW", ConsistencyLevel.READ_YOUR_WRITES),
    ("READ_YOUR_WRITES", ConsistencyLevel.READ_YOUR_WRITES), (" strong ", ConsistencyLevel.STRONG),
    ("linearizable", ConsistencyLevel.STRONG), (3, ConsistencyLevel.STRONG),
    (ConsistencyLevel.EVENTUAL, ConsistencyLevel.EVENTUAL),
])
def test_consistency_parse(text: Any, level: ConsistencyLevel) -> None:
    assert ConsistencyLevel.parse(text) is level


@pytest.mark.parametrize("bad", ["", "weak", "bounded staleness", 4, -1, True, None, 1.0])
def test_consistency_parse_rejects(bad: Any) -> None:
    with pytest.raises(InvalidRequest) as err:
        ConsistencyLevel.parse(bad)
    assert "unknown consistency level" in err.value.message
    if isinstance(bad, str):
        assert all(name in err.value.message for name in ACCEPTED_NAMES)


def test_consistency_wire_names_and_proto() -> None:
    assert [lv.wire_name for lv in ConsistencyLevel] == ["eventual", "bounded", "read_your_writes", "strong"]
    for level in ConsistencyLevel:
        assert search_pb2.ConsistencyLevel.Name(level.to_proto()) == level.name
        assert ConsistencyLevel.from_proto(search_pb2.ConsistencyLevel.Value(level.name)) is level
        assert ConsistencyLevel.parse(level.wire_name) is level
    req = search_pb2.SearchRequest(consistency_level=ConsistencyLevel.READ_YOUR_WRITES)
    assert ConsistencyLevel(req.consistency_level) is ConsistencyLevel.READ_YOUR_WRITES


# --- records -------------------------------------------------------------------------------------

def test_record_batch_validates_columns() -> None:
    batch = RecordBatch.validate(["a", "b"], [[1, 2], [3, 4]], metadata=[{"k": 1}, None],
                                 documents=["text", None], dim=2)
    assert len(batch) == 2 and batch.dim == 2 and batch.vectors.dtype == np.float32
    assert batch.metadata_json == ('{"k":1}', None)
    records = list(batch)
    assert isinstance(records[0], Record) and records[0].metadata == {"k": 1}
    np.testing.assert_array_equal(records[1].vector, np.array([3, 4], dtype=np.float32))


@pytest.mark.parametrize("kwargs, fragment, error", [
    ({"ids": ["a"], "vectors": [[1, 2], [3, 4]]}, "vectors has 2 rows but there are 1 ids", InvalidRequest),
    ({"ids": ["a", "a"], "vectors": [[1, 2], [3, 4]]}, "'a' appears more than once", InvalidRequest),
    ({"ids": ["a"], "vectors": [[1, 2]], "metadata": [{}, {}]}, "metadata has 2 entries", InvalidRequest),
    ({"ids": ["a"], "vectors": [[1, 2]], "metadata": [{"x": float("nan")}]}, "metadata[0].x is nan",
     InvalidRequest),
    ({"ids": ["a"], "vectors": [[1, 2]], "documents": [7]}, "documents[0] must be a string", InvalidRequest),
    ({"ids": ["a"], "vectors": [[1, 2]], "metadata": [{"b": "x" * 70_000}]}, "metadata[0] is",
     PayloadTooLarge),
])
def test_record_batch_rejects(kwargs: dict[str, Any], fragment: str, error: type[Exception]) -> None:
    with pytest.raises(error) as err:
        RecordBatch.validate(**kwargs)
    assert fragment in str(err.value)
