"""Issue 15 ("what a new user hits in the first hour"), the HTTP side: each test failed before its fix."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from tests.unit.gateway.fakes import FakeDownstream
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.merge import merge_top_k
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.rpc.v1 import query_pb2, search_pb2

pytestmark = pytest.mark.unit


@pytest.fixture
def fake() -> FakeDownstream:
    return FakeDownstream()


@pytest.fixture
def client(fake: FakeDownstream) -> Iterator[TestClient]:
    app = create_app(Gateway(fake, SchemaCache(fake)), max_body_bytes=1 << 20)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


# --- 16: scores stay in the metric's documented range ------------------------------------------------

def _unit_float32_vector_scoring_above_one() -> np.ndarray:
    """A normalized float32 vector whose float32 cosine similarity with itself rounds above 1."""
    v = np.array([0.1865168660879135, -0.1959734559059143, 0.9500470757484436, 0.15561605989933014],
                 dtype=np.float32)
    assert (v @ v) / (np.linalg.norm(v) * np.linalg.norm(v)) > 1  # the float error the fix is about
    return v


def test_cosine_score_of_a_vector_with_itself_is_at_most_one(client: TestClient) -> None:
    v = _unit_float32_vector_scoring_above_one()
    r = client.post("/v1/vectors", json={"id": "self", "vector": v.tolist()})
    assert r.status_code == 201, r.text
    r = client.post("/v1/vectors/search", json={"vector": v.tolist(), "k": 1})
    assert r.status_code == 200, r.text
    # Parsed from the raw bytes: the wire must say 1.0, not 1.0000001.
    assert orjson.loads(r.content)["results"][0] == {"id": "self", "score": 1.0, "metadata": None}


def _answer(*hits: tuple[str, float]) -> query_pb2.QuerySearchResponse:
    return query_pb2.QuerySearchResponse(results=[search_pb2.ScoredVector(id=i, score=s) for i, s in hits])


def test_merge_clamps_scores_per_metric_and_ties_fall_back_to_id() -> None:
    answers = [_answer(("b", 1.0000001), ("c", -1.0000001)), _answer(("a", 1.0))]
    cosine = merge_top_k(answers, 3, metric="cosine")
    assert [(h.id, h.score) for h in cosine] == [("a", 1.0), ("b", 1.0), ("c", -1.0)]
    l2 = merge_top_k([_answer(("x", 1e-7), ("y", -2.0))], 2, metric="l2")
    assert [(h.id, h.score) for h in l2] == [("x", 0.0), ("y", -2.0)]
    ip = merge_top_k([_answer(("x", 7.5), ("y", -3.0))], 2, metric="ip")
    assert [(h.id, h.score) for h in ip] == [("x", 7.5), ("y", -3.0)]
