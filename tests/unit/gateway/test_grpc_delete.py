"""The gRPC Delete answer reports what the HTTP delete answer does: deleted, deleted_ids, missing_ids."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.unit.gateway.fakes import FakeDownstream
from vecraft.services.api_gateway.gateway import Gateway
from vecraft.services.api_gateway.handlers.grpc_servicers import VectorServicer
from vecraft.services.api_gateway.handlers.http_app import create_app
from vecraft.services.api_gateway.schema_cache import SchemaCache
from vecraft.shared.rpc.v1 import gateway_pb2

pytestmark = pytest.mark.unit


class _Context:
    """The part of a grpc.aio.ServicerContext the servicers read."""

    def invocation_metadata(self) -> list[tuple[str, Any]]:
        return []


async def _seed(servicer: VectorServicer, ids: list[str]) -> gateway_pb2.WriteVectorsResponse:
    vectors = np.eye(len(ids), 4, dtype="<f4")
    return await servicer.Insert(gateway_pb2.WriteVectorsRequest(
        collection="default", ids=ids, dim=4, vectors=vectors.tobytes(), request_id="seed"), _Context())


async def test_delete_reports_existing_and_missing_ids_in_request_order() -> None:
    fake = FakeDownstream()
    servicer = VectorServicer(Gateway(fake, SchemaCache(fake)))
    written = await _seed(servicer, ["a", "b", "c"])
    assert not written.duplicate and not written.deleted_ids and not written.missing_ids

    answer = await servicer.Delete(gateway_pb2.DeleteVectorsRequest(ids=["zz", "c", "a"], request_id="d1"),
                                   _Context())
    assert answer.deleted is True
    assert list(answer.deleted_ids) == ["c", "a"] and list(answer.missing_ids) == ["zz"]
    assert list(answer.ids) == ["zz", "c", "a"] and answer.offset == written.offset + 1

    again = await servicer.Delete(gateway_pb2.DeleteVectorsRequest(ids=["a"], request_id="d2"), _Context())
    assert again.deleted is False and list(again.deleted_ids) == [] and list(again.missing_ids) == ["a"]


async def test_a_retried_write_says_duplicate() -> None:
    fake = FakeDownstream()
    servicer = VectorServicer(Gateway(fake, SchemaCache(fake)))
    first = await _seed(servicer, ["a"])
    retry = await _seed(servicer, ["a"])
    assert not first.duplicate and retry.duplicate and retry.offset == first.offset


async def test_grpc_and_http_delete_answers_agree() -> None:
    answers = []
    for transport in ("grpc", "http"):
        fake = FakeDownstream()
        gateway = Gateway(fake, SchemaCache(fake))
        servicer = VectorServicer(gateway)
        await _seed(servicer, ["a", "b"])
        if transport == "grpc":
            msg = await servicer.Delete(gateway_pb2.DeleteVectorsRequest(ids=["x", "b"]), _Context())
            answers.append((msg.deleted, list(msg.deleted_ids), list(msg.missing_ids)))
        else:
            with TestClient(create_app(gateway)) as http:
                r = http.post("/v1/vectors/delete", json={"ids": ["x", "b"]})
            assert r.status_code == 200, r.text
            body = r.json()
            answers.append((body["deleted"], body["deleted_ids"], body["missing_ids"]))
    assert answers[0] == answers[1] == (True, ["b"], ["x"])
