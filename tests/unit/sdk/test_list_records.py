"""``list_records`` (one page) and ``iter_records`` (every page), sync and async, over a mock server
that pages like the gateway."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import pytest

from tests.unit.sdk.mock_http import mock_sync_client
from vecraft.shared.rpc.v1 import gateway_pb2, search_pb2, storage_pb2
from vecraft_client import AsyncVecraftClient, RecordPage, VecraftClient, _listing, _session_token

pytestmark = pytest.mark.unit

IDS = [f"id{i:03d}" for i in range(23)]


class PagingServer:
    """GET /v1/collections/{name}/records over IDS; each page raises index_version by one."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        params = request.url.params
        after, limit = params.get("after", ""), int(params.get("limit", "100"))
        rest = [i for i in IDS if i > after]
        page = rest[:limit]
        return httpx.Response(200, json={
            "records": [{"id": i, "vector": [1.0, 2.0] if params.get("include_vectors") == "true" else None,
                         "metadata": {"n": i}, "document": None, "offset": 3, "hlc": 9} for i in page],
            "next_cursor": page[-1] if len(rest) > limit else None,
            "collection": "docs", "partition": "data-1", "index_version": 40 + len(self.requests)})


def _client(server: PagingServer) -> VecraftClient:
    return mock_sync_client(server)


def test_list_records_sends_every_option_as_a_query_parameter() -> None:
    server = PagingServer()
    page = _client(server).list_records("docs", after="id004", limit=5, include_vectors=True,
                                        include_documents=False, filters={"n": {"$gte": 2}},
                                        consistency_level="strong", min_required_offset=7)
    assert isinstance(page, RecordPage)
    assert [r.id for r in page.records] == IDS[5:10] and page.next_cursor == "id009"
    assert page.records[0].vector == [1.0, 2.0] and page.records[0].metadata == {"n": "id005"}
    assert (page.index_version, page.partition) == (41, "data-1")
    sent = server.requests[0]
    assert sent.url.path == "/v1/collections/docs/records"
    assert dict(sent.url.params) == {
        "after": "id004", "limit": "5", "include_vectors": "true", "include_metadata": "true",
        "include_documents": "false", "filter": '{"n":{"$gte":2}}', "consistency_level": "strong",
        "min_required_offset": "7"}


def test_iter_records_pages_on_and_never_reads_behind_the_previous_page() -> None:
    server = PagingServer()
    assert [r.id for r in _client(server).iter_records("docs", page_size=10)] == IDS
    assert len(server.requests) == 3
    afters = [r.url.params.get("after") for r in server.requests]
    assert afters == [None, "id009", "id019"]
    # Each page reads at least at the offset the page before it was read at.
    assert [r.url.params.get("min_required_offset") for r in server.requests] == [None, "41", "42"]


def test_iter_records_is_lazy() -> None:
    server = PagingServer()
    records = _client(server).iter_records("docs", page_size=10)
    assert server.requests == []
    assert next(records).id == "id000" and len(server.requests) == 1


def test_a_session_sends_its_token_with_every_page() -> None:
    server = PagingServer()
    token = _session_token.encode({"data-1": 12})
    session = _client(server).import_session(token)
    assert len(list(session.iter_records("docs", page_size=20, consistency_level="read_your_writes"))) == 23
    assert {r.headers.get("x-session-token") for r in server.requests} == {token}


def test_async_iter_records() -> None:
    server = PagingServer()

    async def run() -> tuple[list[str], RecordPage]:
        client = AsyncVecraftClient(endpoint="http://vecraft.test:8000")
        client._transport._client = httpx.AsyncClient(  # type: ignore[union-attr]
            base_url="http://vecraft.test:8000", transport=httpx.MockTransport(server))
        ids = [r.id async for r in client.iter_records("docs", page_size=7)]
        page = await client.create_session().list_records("docs", limit=3)
        await client.close()
        return ids, page

    ids, page = asyncio.run(run())
    assert ids == IDS and [r.id for r in page.records] == IDS[:3]


def test_page_size_out_of_range_is_refused_before_sending() -> None:
    server = PagingServer()
    with pytest.raises(ValueError, match="page_size"):
        next(_client(server).iter_records("docs", page_size=0))
    assert server.requests == []


def test_grpc_request_and_answer() -> None:
    call = _listing.list_records("docs", after="a", limit=0, include_vectors=True, include_metadata=False,
                                 include_documents=True, filters={"k": "v"}, consistency_level="strong",
                                 min_required_offset=None, session_token="tok")
    req = call.grpc_request
    assert isinstance(req, gateway_pb2.ListRecordsRequest)
    assert (req.collection, req.after, req.limit, req.include_vectors) == ("docs", "a", 0, True)
    assert req.HasField("include_metadata") and not req.include_metadata and req.include_documents
    assert req.consistency_level == search_pb2.STRONG and req.session_token == "tok"
    assert req.filter_json == '{"k":"v"}'
    assert call.parse_grpc is not None
    page = call.parse_grpc(gateway_pb2.ListRecordsResponse(
        records=[storage_pb2.StoredRecord(id="b", vector=np.array([1, 2], dtype="<f4").tobytes(),
                                          metadata_json='{"k": "v"}', document="d", offset=4, hlc=5),
                 storage_pb2.StoredRecord(id="c")],
        next_cursor="", index_version=8, partition="data-0"))
    assert page.next_cursor is None and page.index_version == 8
    first, second = page.records
    assert (first.vector, first.metadata, first.document) == ([1.0, 2.0], {"k": "v"}, "d")
    assert (second.vector, second.metadata, second.document) == (None, None, None)

