"""``vector_search(include_documents=True)`` asks for documents over HTTP and gRPC; the default
leaves the spec's request body as it is."""

from __future__ import annotations

import pytest

from vecraft.shared.rpc.v1 import search_pb2
from vecraft_client import _calls

pytestmark = pytest.mark.unit


def test_include_documents_is_sent_over_both_transports() -> None:
    call = _calls.search([0.1, 0.2], 3, None, None, None, "docs", None, None, None, None,
                         include_documents=True)
    assert call.json["include_documents"] is True
    assert isinstance(call.grpc_request, search_pb2.SearchRequest) and call.grpc_request.include_documents


def test_default_search_body_has_no_include_documents() -> None:
    call = _calls.search([0.1, 0.2], 3, None, None, None, None, None, None, None, None)
    assert "include_documents" not in call.json
    assert isinstance(call.grpc_request, search_pb2.SearchRequest)
    assert not call.grpc_request.include_documents


def test_grpc_hits_carry_their_documents() -> None:
    call = _calls.search([0.1], 2, None, None, None, None, None, None, None, None, include_documents=True)
    assert call.parse_grpc is not None
    response = call.parse_grpc(search_pb2.SearchResponse(results=[
        search_pb2.ScoredVector(id="a", score=1.0, document="text"), search_pb2.ScoredVector(id="b")]))
    assert [(h.id, h.document) for h in response.results] == [("a", "text"), ("b", None)]
