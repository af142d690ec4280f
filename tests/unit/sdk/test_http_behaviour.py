"""SDK behaviour against a real local HTTP server that answers as scripted.

The server is a small Starlette app under uvicorn in a thread: each test
queues the answers it wants (status, body, headers) and reads back the
requests the SDK sent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

import vecraft_client
from tests.support.procs import free_port
from vecraft_client import (
    AsyncVecraftClient,
    ConsistencyLevel,
    RetryConfig,
    VecraftClient,
    _session_token,
)

pytestmark = pytest.mark.unit

SEARCH_OK = {
    "results": [{"id": "doc_123", "score": 0.95, "metadata": {"title": "ML Paper"}}],
    "consistency_info": {"level_requested": "bounded", "level_achieved": "bounded", "staleness_ms": 150,
                         "max_allowed_staleness_ms": 500, "index_version": 1245, "cache_hit": True,
                         "sync_performed": False},
}


class ScriptedServer:
    def __init__(self) -> None:
        self.answers: deque[tuple[int, Any, dict[str, str]]] = deque()
        self.requests: list[dict[str, Any]] = []
        self.port = free_port()

        async def handle(request: Request) -> Response:
            body = await request.body()
            self.requests.append({"method": request.method, "path": request.url.path,
                                  "query": dict(request.query_params), "headers": dict(request.headers),
                                  "json": orjson.loads(body) if body else None})
            status, payload, headers = self.answers.popleft() if self.answers else (200, {}, {})
            return Response(orjson.dumps(payload), status_code=status, headers=headers,
                            media_type="application/json")

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        app = Starlette(routes=[Route("/{path:path}", handle, methods=methods)])
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.answers.append((status, payload, headers or {}))


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    srv.thread.start()
    # Generous: uvicorn starts in a thread of a busy process on a shared machine.
    deadline = time.monotonic() + 60
    while not srv.server.started:
        assert srv.thread.is_alive() and time.monotonic() < deadline, "the scripted server did not start"
        time.sleep(0.01)
    yield srv
    srv.server.should_exit = True
    srv.thread.join(5)


@pytest.fixture(autouse=True)
def _reset(server: ScriptedServer) -> None:
    server.answers.clear()
    server.requests.clear()


def fast_retry(attempts: int = 4) -> RetryConfig:
    return RetryConfig(max_attempts=attempts, initial_backoff=0.001, max_backoff=0.01)


def test_search_sends_the_spec_body_and_parses_the_spec_response(server: ScriptedServer) -> None:
    server.answer(200, SEARCH_OK)
    client = VecraftClient(endpoint=server.endpoint)
    response = client.vector_search(vector=np.array([0.1, 0.2, 0.3, 0.4], dtype=np.float32), k=10,
                                    consistency_level=ConsistencyLevel.BOUNDED_STALENESS,
                                    max_staleness_ms=500, filters={"category": "documents"})
    sent = server.requests[0]
    assert sent["method"] == "POST" and sent["path"] == "/v1/vectors/search"
    assert sent["json"]["consistency_level"] == "bounded"
    assert sent["json"]["max_staleness_ms"] == 500
    assert sent["json"]["filters"] == {"category": "documents"}
    assert sent["json"]["vector"] == pytest.approx([0.1, 0.2, 0.3, 0.4])
    info = response.consistency_info
    assert info.level_requested is ConsistencyLevel.BOUNDED_STALENESS
    assert (info.staleness_ms, info.max_allowed_staleness_ms, info.index_version) == (150, 500, 1245)
    assert info.cache_hit is True and info.sync_performed is False
    assert response.results[0].id == "doc_123" and response.results[0].metadata == {"title": "ML Paper"}


def test_retries_429_then_succeeds_and_honours_retry_after(server: ScriptedServer) -> None:
    server.answer(429, {"error": {"code": "rate_limited", "message": "back-pressure", "details": {}}},
                  {"Retry-After": "0.2"})
    server.answer(200, SEARCH_OK)
    client = VecraftClient(endpoint=server.endpoint, retry=fast_retry())
    started = time.monotonic()
    response = client.vector_search(vector=[0.1, 0.2, 0.3, 0.4], k=1)
    assert response.results[0].id == "doc_123"
    assert len(server.requests) == 2
    assert time.monotonic() - started >= 0.2, "Retry-After must be honoured"


def test_write_retry_reuses_its_request_id(server: ScriptedServer) -> None:
    server.answer(503, {"error": {"code": "unavailable", "message": "journal restarting", "details": {}}})
    server.answer(201, {"id": "a", "ids": ["a"], "partition": "data-0", "offset": 7, "hlc": 99,
                        "request_id": "x", "session_token": _session_token.encode({"data-0": 7})})
    client = VecraftClient(endpoint=server.endpoint, retry=fast_retry())
    result = client.insert_vector(vector=[1.0, 2.0], id="a")
    assert result.offset == 7 and result.partition == "data-0"
    ids = {r["headers"]["x-request-id"] for r in server.requests}
    assert len(server.requests) == 2 and len(ids) == 1


def test_gives_up_after_max_attempts(server: ScriptedServer) -> None:
    for _ in range(3):
        server.answer(503, {"error": {"code": "unavailable", "message": "down", "details": {}}})
    client = VecraftClient(endpoint=server.endpoint, retry=fast_retry(3))
    with pytest.raises(vecraft_client.Unavailable, match="down"):
        client.vector_search(vector=[0.1], k=1)
    assert len(server.requests) == 3


def test_collection_create_is_not_retried(server: ScriptedServer) -> None:
    server.answer(503, {"error": {"code": "unavailable", "message": "meta down", "details": {}}})
    client = VecraftClient(endpoint=server.endpoint, retry=fast_retry())
    with pytest.raises(vecraft_client.Unavailable):
        client.create_collection("docs", dim=4)
    assert len(server.requests) == 1


@pytest.mark.parametrize(("status", "code", "cls"), [
    (400, "invalid_request", vecraft_client.InvalidRequest),
    (404, "not_found", vecraft_client.NotFound),
    (409, "conflict", vecraft_client.Conflict),
    (413, "payload_too_large", vecraft_client.PayloadTooLarge),
    (429, "rate_limited", vecraft_client.RateLimited),
    (503, "unavailable", vecraft_client.Unavailable),
    (504, "deadline_exceeded", vecraft_client.Timeout),
    (500, "internal", vecraft_client.VecraftError),
])
def test_every_error_class_for_its_status(server: ScriptedServer, status: int, code: str,
                                          cls: type[Exception]) -> None:
    server.answer(status, {"error": {"code": code, "message": f"server says {code}", "details": {"x": 1}}})
    client = VecraftClient(endpoint=server.endpoint, retry=RetryConfig(max_attempts=1))
    with pytest.raises(cls, match=f"server says {code}") as info:
        client.get_vector("some-id")
    assert type(info.value) is cls
    assert info.value.details == {"x": 1}


def test_error_without_json_body_maps_by_status(server: ScriptedServer) -> None:
    server.answer(404, "not json at all")
    client = VecraftClient(endpoint=server.endpoint)
    with pytest.raises(vecraft_client.NotFound):
        client.get_collection("nope")


def test_session_sends_merged_token_of_its_writes(server: ScriptedServer) -> None:
    client = VecraftClient(endpoint=server.endpoint)
    session = client.create_session()
    server.answer(201, {"id": "a", "ids": ["a"], "partition": "data-0", "offset": 5, "hlc": 1,
                        "session_token": _session_token.encode({"data-0": 5})})
    server.answer(201, {"id": "b", "ids": ["b"], "partition": "data-1", "offset": 9, "hlc": 2,
                        "session_token": _session_token.encode({"data-1": 9})})
    server.answer(200, SEARCH_OK)
    session.insert_vector(vector=[0.5, 0.6, 0.7, 0.8], metadata={"user": "alice"})
    session.insert_vector(vector=[0.5, 0.6, 0.7, 0.8], collection="other")
    session.vector_search(vector=[0.5, 0.6, 0.7, 0.8], k=5,
                          consistency_level=ConsistencyLevel.READ_YOUR_WRITES)
    assert session.offsets == {"data-0": 5, "data-1": 9}
    sent_token = server.requests[-1]["json"]["session_token"]
    assert _session_token.decode(sent_token) == {"data-0": 5, "data-1": 9}
    resumed = client.import_session(session.export_token())
    assert resumed.offsets == session.offsets


def test_numpy_batch_travels_as_float32_base64(server: ScriptedServer) -> None:
    server.answer(201, {"ids": ["a", "b"], "partition": "data-0", "offset": 3, "hlc": 1})
    client = VecraftClient(endpoint=server.endpoint)
    matrix = np.arange(8, dtype=np.float64).reshape(2, 4)
    result = client.insert_vectors(matrix, ids=["a", "b"], metadatas=[{"i": 0}, {"i": 1}])
    body = server.requests[0]["json"]
    import base64
    decoded = np.frombuffer(base64.b64decode(body["vectors_b64"]), dtype="<f4").reshape(2, body["dim"])
    assert np.array_equal(decoded, matrix.astype(np.float32))
    assert result.ids == ["a", "b"] and result.id == "a"


def test_async_client_has_the_same_behaviour(server: ScriptedServer) -> None:
    server.answer(429, {"error": {"code": "rate_limited", "message": "slow down", "details": {}}})
    server.answer(200, SEARCH_OK)

    async def run() -> Any:
        async with AsyncVecraftClient(endpoint=server.endpoint, retry=fast_retry()) as client:
            return await client.vector_search(vector=[0.1, 0.2, 0.3, 0.4], k=10, consistency_level="bounded",
                                              max_staleness_ms=500)

    response = asyncio.run(run())
    assert response.consistency_info.index_version == 1245
    assert len(server.requests) == 2


def test_public_surface_is_pinned() -> None:
    assert vecraft_client.__all__ == sorted(vecraft_client.__all__)
    assert set(vecraft_client.__all__) >= {"VecraftClient", "AsyncVecraftClient", "ConsistencyLevel",
                                           "VecraftError", "InvalidRequest", "NotFound", "Conflict",
                                           "RateLimited", "Unavailable", "Timeout"}
    for name in vecraft_client.__all__:
        assert getattr(vecraft_client, name) is not None
