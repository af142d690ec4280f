"""SDK fixes from a new user's first hour (issue 15): each test failed before its fix.

The HTTP tests run the real client over ``httpx.MockTransport``: no network, and
the handler sees the exact request (raw path, headers, JSON body).
"""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import httpx
import numpy as np
import orjson
import pytest

from tests.support.procs import free_port
from tests.unit.sdk.mock_http import Handler, mock_sync_client
from vecraft.shared.model.limits import MAX_BATCH_ROWS
from vecraft.shared.rpc.convert import level_to_proto
from vecraft.shared.rpc.v1 import gateway_pb2, search_pb2
from vecraft_client import (
    AsyncVecraftClient,
    ConsistencyLevel,
    InvalidRequest,
    RetryConfig,
    Unavailable,
    VecraftClient,
    VecraftError,
    _calls,
    _session_token,
)

pytestmark = pytest.mark.unit



def _rows(body: dict[str, Any]) -> int:
    if "vectors_b64" not in body:
        return 1
    return len(base64.b64decode(body["vectors_b64"])) // 4 // int(body["dim"])


class Recorder:
    """Answers every request with the next scripted answer (default: a write answer) and keeps it."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.answers: list[tuple[int, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.answers:
            status, body = self.answers.pop(0)
            return httpx.Response(status, json=body)
        sent = orjson.loads(request.content) if request.content else {}
        n = len(sent.get("ids") or []) or _rows(sent)
        offset = len(self.requests)
        return httpx.Response(201, json={
            "ids": sent.get("ids") or [f"gen{offset}-{i}" for i in range(n)], "partition": "data-0",
            "offset": offset, "hlc": 100 + offset, "request_id": request.headers.get("x-request-id", ""),
            "replicas_acked": 1, "replicas_expected": 1,
            "session_token": _session_token.encode({"data-0": offset})})

    def body(self, i: int) -> Any:
        return orjson.loads(self.requests[i].content)


def mock_client(handler: Handler, **kwargs: Any) -> VecraftClient:
    return mock_sync_client(handler, **kwargs)


def mock_async_client(handler: Handler) -> AsyncVecraftClient:
    client = AsyncVecraftClient(endpoint="http://vecraft.test:8000")
    client._transport._client = httpx.AsyncClient(  # type: ignore[union-attr]
        base_url="http://vecraft.test:8000", transport=httpx.MockTransport(handler))
    return client


# ---- item 2: ids with "/" (and other reserved characters) are quoted in the path ------------------

@pytest.mark.parametrize(("record_id", "segment"), [
    ("a/b", "a%2Fb"), ("doc:1@x.y", "doc%3A1%40x.y"), ("a b?c#d%", "a%20b%3Fc%23d%25"),
])
def test_get_and_replace_by_id_quote_the_id_in_the_path(record_id: str, segment: str) -> None:
    rec = Recorder()
    rec.answers = [(200, {"id": record_id, "vector": [1.0, 2.0], "metadata": None}),
                   (200, {"ids": [record_id]})]
    client = mock_client(rec)
    assert client.get_vector(record_id).id == record_id
    client.upsert_vector(record_id, [1.0, 2.0])
    get, put = rec.requests
    assert (get.method, get.url.raw_path.split(b"?")[0]) == ("GET", f"/v1/vectors/{segment}".encode())
    assert (put.method, put.url.raw_path) == ("PUT", f"/v1/vectors/{segment}".encode())


def test_delete_by_id_sends_the_id_in_the_body_unchanged() -> None:
    rec = Recorder()
    mock_client(rec).delete_vector("a/b")
    assert rec.requests[0].url.path == "/v1/vectors/delete"
    assert rec.body(0)["ids"] == ["a/b"]


def test_operation_and_collection_paths_are_quoted_too() -> None:
    assert _calls.get_operation("req/1").path == "/v1/operations/req%2F1"
    assert _calls.get_collection("docs").path == "/v1/collections/docs"


# ---- item 6: consistency_info prints HTTP names; max_allowed_staleness_ms agrees ----------------

def _search_answer(level: str, max_allowed: int | None) -> dict[str, Any]:
    return {"results": [], "consistency_info": {
        "level_requested": level, "level_achieved": level, "staleness_ms": 0,
        "max_allowed_staleness_ms": max_allowed, "index_version": 3, "cache_hit": True,
        "sync_performed": False}}


def test_levels_print_as_the_http_api_names_and_still_compare_as_the_enum() -> None:
    rec = Recorder()
    rec.answers = [(200, _search_answer("bounded", 500))]
    info = mock_client(rec).vector_search([0.1, 0.2], k=1, consistency_level="bounded",
                                          max_staleness_ms=500).consistency_info
    assert str(info.level_achieved) == "bounded" and f"{info.level_requested}" == "bounded"
    assert info.level_achieved is ConsistencyLevel.BOUNDED_STALENESS
    assert info.level_achieved == ConsistencyLevel.BOUNDED_STALENESS == 1
    assert [str(level) for level in ConsistencyLevel] == ["eventual", "bounded", "read_your_writes", "strong"]


@pytest.mark.parametrize(("level", "http_value", "expected"), [
    ("eventual", None, None), ("read_your_writes", None, None), ("bounded", 500, 500), ("strong", 0, 0),
])
def test_max_allowed_staleness_is_the_same_over_http_and_grpc(level: str, http_value: int | None,
                                                              expected: int | None) -> None:
    rec = Recorder()
    rec.answers = [(200, _search_answer(level, http_value))]
    over_http = mock_client(rec).vector_search([0.1], k=1, consistency_level=level).consistency_info
    proto_level = level_to_proto(ConsistencyLevel.parse(level))
    msg = search_pb2.SearchResponse(consistency_info=search_pb2.ConsistencyInfo(
        level_requested=proto_level, level_achieved=proto_level, max_allowed_staleness_ms=http_value or 0))
    call = _calls.search([0.1], 1, level, None, None, None, None, None, None, None)
    assert call.parse_grpc is not None
    over_grpc = call.parse_grpc(msg).consistency_info
    assert over_http.max_allowed_staleness_ms == over_grpc.max_allowed_staleness_ms == expected


# ---- item 7: delete results keep deleted / deleted_ids / missing_ids ----------------------------

def test_delete_result_has_the_fields_http_returns() -> None:
    rec = Recorder()
    rec.answers = [(200, {"ids": ["a", "b"], "partition": "data-0", "offset": 4, "hlc": 9, "request_id": "r",
                          "deleted": True, "deleted_ids": ["a"], "missing_ids": ["b"]})]
    result = mock_client(rec).delete_vectors(["a", "b"])
    assert (result.deleted, result.deleted_ids, result.missing_ids) == (True, ["a"], ["b"])
    assert result.offset == 4 and result.ids == ["a", "b"]


def test_delete_result_over_grpc_says_unknown_rather_than_false() -> None:
    call = _calls.delete(["a"], None, session_token=None, ack=None, request_id="r")
    assert call.parse_grpc is not None
    result = call.parse_grpc(gateway_pb2.WriteVectorsResponse(ids=["a"], partition="data-0", offset=2))
    assert result.offset == 2 and result.deleted is None and result.deleted_ids is None


# ---- item 8: inputs above the server limit are split into batches -------------------------------

def test_insert_above_the_server_limit_is_split_with_the_default_batch_size() -> None:
    rec = Recorder()
    rows = MAX_BATCH_ROWS + 1
    result = mock_client(rec).insert_vectors(np.zeros((rows, 2), dtype=np.float32),
                                             ids=[f"v{i}" for i in range(rows)])
    assert [len(rec.body(i)["ids"]) for i in range(len(rec.requests))] == [MAX_BATCH_ROWS, 1]
    assert len(result.ids) == rows and result.ids[-1] == f"v{rows - 1}"


def test_split_insert_request_ids_progress_and_merged_result() -> None:
    rec = Recorder()
    seen: list[tuple[int, int]] = []
    matrix = np.arange(14, dtype=np.float32).reshape(7, 2)
    result = mock_client(rec).insert_vectors(matrix, ids=[f"v{i}" for i in range(7)],
                                             metadatas=[{"i": i} for i in range(7)], request_id="load-1",
                                             batch_size=3,
                                             progress=lambda done, total: seen.append((done, total)))
    assert [r.headers["x-request-id"] for r in rec.requests] == ["load-1-0", "load-1-1", "load-1-2"]
    assert [rec.body(i)["ids"] for i in range(3)] == [["v0", "v1", "v2"], ["v3", "v4", "v5"], ["v6"]]
    assert rec.body(2)["metadatas"] == [{"i": 6}]
    assert seen == [(3, 7), (6, 7), (7, 7)]
    assert result.ids == [f"v{i}" for i in range(7)] and result.id == "v0"
    assert (result.offset, result.hlc, result.request_id) == (3, 103, "load-1")
    assert [b.request_id for b in result.batches] == ["load-1-0", "load-1-1", "load-1-2"]
    assert _session_token.decode(result.session_token) == {"data-0": 3}


def test_a_retried_batch_keeps_its_request_id() -> None:
    rec = Recorder()
    rec.answers = [(201, {"ids": ["a", "b"], "partition": "data-0", "offset": 1, "hlc": 1}),
                   (503, {"error": {"code": "unavailable", "message": "restarting", "details": {}}})]
    client = mock_client(rec, retry=RetryConfig(max_attempts=3, initial_backoff=0.001, max_backoff=0.01))
    client.upsert_vectors([[1.0], [2.0], [3.0]], ids=["a", "b", "c"], request_id="u", batch_size=2)
    assert [r.headers["x-request-id"] for r in rec.requests] == ["u-0", "u-1", "u-1"]


def test_small_inputs_stay_one_request_with_the_given_request_id() -> None:
    rec = Recorder()
    result = mock_client(rec).insert_vectors([[1.0], [2.0]], ids=["a", "b"], request_id="one")
    assert [r.headers["x-request-id"] for r in rec.requests] == ["one"]
    assert result.batches == () and result.request_id == "one"


def test_split_delete_merges_per_id_outcomes() -> None:
    rec = Recorder()
    rec.answers = [(200, {"ids": ["a", "b"], "offset": 1, "deleted": True, "deleted_ids": ["a"],
                          "missing_ids": ["b"]}),
                   (200, {"ids": ["c"], "offset": 2, "deleted": False, "deleted_ids": [],
                          "missing_ids": ["c"]})]
    result = mock_client(rec).delete_vectors(["a", "b", "c"], batch_size=2)
    assert len(rec.requests) == 2
    assert (result.deleted, result.deleted_ids, result.missing_ids) == (True, ["a"], ["b", "c"])
    assert result.offset == 2


@pytest.mark.parametrize("bad", [0, -1, MAX_BATCH_ROWS + 1, 2.5])
def test_batch_size_out_of_range_is_refused_before_sending(bad: Any) -> None:
    rec = Recorder()
    with pytest.raises(InvalidRequest, match="batch_size"):
        mock_client(rec).insert_vectors([[1.0]], batch_size=bad)
    assert rec.requests == []


def test_mismatched_columns_are_refused_before_the_first_batch() -> None:
    rec = Recorder()
    with pytest.raises(InvalidRequest, match="metadatas has 2 entries for 3 vectors"):
        mock_client(rec).insert_vectors([[1.0], [2.0], [3.0]], metadatas=[{}, {}], batch_size=1)
    assert rec.requests == []


def test_async_client_and_sessions_split_too() -> None:
    rec = Recorder()
    seen: list[int] = []

    async def run() -> Any:
        client = mock_async_client(rec)
        session = client.create_session()
        result = await session.insert_vectors([[1.0], [2.0], [3.0]], batch_size=2,
                                               progress=lambda done, _total: seen.append(done))
        await client.close()
        return session, result

    session, result = asyncio.run(run())
    assert len(rec.requests) == 2 and seen == [2, 3] and len(result.ids) == 3
    assert session.offsets == {"data-0": 2}


# ---- item 9: numpy scalars in metadata; unserializable values are a VecraftError ----------------

def test_numpy_scalars_in_metadata_become_json_numbers() -> None:
    rec = Recorder()
    meta = {"n": np.int64(3), "x": np.float32(1.5), "ok": np.bool_(True), "nested": {"k": np.int32(2)}}
    mock_client(rec).insert_vector([0.1, 0.2], metadata=meta, id="a")
    assert rec.body(0)["metadata"] == {"n": 3, "x": 1.5, "ok": True, "nested": {"k": 2}}
    call = _calls.write_one([0.1], "a", meta, None, None, upsert=False, session_token=None, ack=None,
                            request_id="r")
    assert isinstance(call.grpc_request, gateway_pb2.WriteVectorsRequest)
    assert orjson.loads(call.grpc_request.metadata_json[0]) == {"n": 3, "x": 1.5, "ok": True,
                                                               "nested": {"k": 2}}


def test_unserializable_metadata_is_an_invalid_request_not_a_type_error() -> None:
    rec = Recorder()
    with pytest.raises(InvalidRequest, match="not JSON serializable") as info:
        mock_client(rec).insert_vector([0.1], metadata={"tags": {"a", "b"}})
    assert isinstance(info.value, VecraftError) and rec.requests == []
    with pytest.raises(InvalidRequest, match="metadata is not JSON serializable"):
        _calls.write_one([0.1], "a", {"when": object()}, None, None, upsert=False, session_token=None,
                         ack=None, request_id="r")


# ---- item 10: a malformed endpoint fails at once; connection failures name the URL --------------

@pytest.mark.parametrize("endpoint", ["127.0.0.1:8000", "localhost", "grpc://127.0.0.1:50051", "http://"])
def test_http_endpoint_without_scheme_fails_at_once_naming_the_form(endpoint: str) -> None:
    with pytest.raises(ValueError, match="http://host:port"):
        VecraftClient(endpoint=endpoint)
    with pytest.raises(ValueError, match="http://host:port"):
        AsyncVecraftClient(endpoint=endpoint)


def test_grpc_endpoint_forms() -> None:
    assert VecraftClient(endpoint="127.0.0.1:50051", transport="grpc").endpoint == "grpc://127.0.0.1:50051"
    assert VecraftClient(endpoint="grpc://h:1", transport="grpc").endpoint == "grpc://h:1"
    with pytest.raises(ValueError, match="grpc://host:port"):
        VecraftClient(endpoint="h:port", transport="grpc")


def test_connection_refused_names_the_url() -> None:
    port = free_port()
    client = VecraftClient(endpoint=f"http://127.0.0.1:{port}", retry=RetryConfig(max_attempts=1))
    with pytest.raises(Unavailable, match=f"http://127.0.0.1:{port} \\(GET /v1/collections\\)"):
        client.list_collections()


# ---- item 17: repr shows endpoint and transport ------------------------------------------------

def test_repr_shows_endpoint_and_transport() -> None:
    assert repr(VecraftClient(endpoint="http://127.0.0.1:8000")) == \
        "VecraftClient(endpoint='http://127.0.0.1:8000', transport='http')"
    assert repr(VecraftClient(endpoint="127.0.0.1:50051", transport="grpc")) == \
        "VecraftClient(endpoint='grpc://127.0.0.1:50051', transport='grpc')"
    assert repr(AsyncVecraftClient(endpoint="http://h:1")) == \
        "AsyncVecraftClient(endpoint='http://h:1', transport='http')"
    session = VecraftClient(endpoint="http://h:1").create_session()
    assert repr(session) == \
        "Session(client=VecraftClient(endpoint='http://h:1', transport='http'), offsets={})"
