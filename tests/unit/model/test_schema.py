"""Collection schema validation; consistency level names; record batches (proto forms: rpc/test_convert)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from vecraft.shared.common.errors import InvalidRequest, PayloadTooLarge
from vecraft.shared.model.consistency import ACCEPTED_NAMES, ConsistencyLevel
from vecraft.shared.model.records import Record, RecordBatch
from vecraft.shared.model.schema import CollectionSchema, HnswParams

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


def test_replace_keeps_the_schema_valid() -> None:
    schema = CollectionSchema(name="docs", dim=4)
    assert dataclasses.replace(schema, partition="data-2").partition == "data-2"
    with pytest.raises(InvalidRequest, match="dim is 0"):
        dataclasses.replace(schema, dim=0)


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


def test_consistency_wire_names_and_values() -> None:
    # The values are the proto enum's (tests/unit/rpc/test_convert.py checks them against it).
    assert [lv.wire_name for lv in ConsistencyLevel] == ["eventual", "bounded", "read_your_writes", "strong"]
    assert [int(lv) for lv in ConsistencyLevel] == [0, 1, 2, 3]
    for level in ConsistencyLevel:
        assert ConsistencyLevel.from_int(int(level)) is level
        assert ConsistencyLevel.parse(level.wire_name) is level
    with pytest.raises(InvalidRequest, match="unknown consistency level 7"):
        ConsistencyLevel.from_int(7)


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
