"""The SDK's default read level: read-your-writes over the client's own writes.

``_read_level.resolve`` is the rule; the client tests run every read call with a
transport that records the Call it was given (both wire forms: the HTTP body,
query and headers, and the gRPC request) and answers as the gateway would.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from vecraft.shared.rpc.v1 import search_pb2
from vecraft_client import AsyncVecraftClient, ConsistencyLevel, VecraftClient, _read_level, _session_token
from vecraft_client._calls import Call

pytestmark = pytest.mark.unit

EV, RYW = ConsistencyLevel.EVENTUAL, ConsistencyLevel.READ_YOUR_WRITES
TOKEN = _session_token.encode({"data-0": 7}, "sid-a")

SEARCH_ANSWER = {"results": [], "consistency_info": {
    "level_requested": "eventual", "level_achieved": "eventual", "staleness_ms": 0,
    "max_allowed_staleness_ms": None, "index_version": 7, "cache_hit": True, "sync_performed": False}}
WRITE_ANSWER = {"id": "a", "ids": ["a"], "partition": "data-0", "offset": 7, "hlc": 1, "request_id": "r",
                "replicas_acked": 1, "replicas_expected": 1, "session_token": TOKEN, "duplicate": False}
RECORD_ANSWER = {"id": "a", "vector": [0.0], "metadata": None, "offset": 7, "hlc": 1}
PAGE_ANSWER = {"records": [], "next_cursor": None, "index_version": 7, "partition": "data-0"}


@pytest.mark.parametrize(("level", "token", "staleness", "expected"), [
    (None, None, None, (EV, None)),
    (None, "", None, (EV, None)),
    (None, TOKEN, None, (RYW, TOKEN)),
    (None, None, 500, (ConsistencyLevel.BOUNDED_STALENESS, None)),
    (None, TOKEN, 500, (ConsistencyLevel.BOUNDED_STALENESS, TOKEN)),
    ("eventual", TOKEN, None, (EV, None)),
    (EV, TOKEN, None, (EV, None)),
    ("ryw", None, None, (RYW, None)),
    ("read_your_writes", TOKEN, None, (RYW, TOKEN)),
    ("strong", TOKEN, None, (ConsistencyLevel.STRONG, TOKEN)),
    (ConsistencyLevel.STRONG, None, None, (ConsistencyLevel.STRONG, None)),
])
def test_resolve(level: Any, token: str | None, staleness: int | None, expected: tuple[Any, Any]) -> None:
    assert _read_level.resolve(level, token, staleness) == expected


def test_resolve_refuses_an_unknown_name() -> None:
    from vecraft_client import InvalidRequest
    with pytest.raises(InvalidRequest):
        _read_level.resolve("fresh", TOKEN)


def _answer(call: Call[Any]) -> Any:
    if call.path == "/v1/vectors/search":
        body: Any = SEARCH_ANSWER
    elif call.path.endswith("/records"):
        body = PAGE_ANSWER
    elif call.method == "GET":
        body = RECORD_ANSWER
    else:
        body = WRITE_ANSWER
    return call.finish(call.parse_http(body))


class Recording:
    def __init__(self) -> None:
        self.calls: list[Call[Any]] = []
        self.endpoint = "http://fake"

    def execute(self, call: Call[Any]) -> Any:
        self.calls.append(call)
        return _answer(call)

    def close(self) -> None:
        pass


class AsyncRecording(Recording):
    async def execute(self, call: Call[Any]) -> Any:  # type: ignore[override]
        self.calls.append(call)
        return _answer(call)

    async def close(self) -> None:  # type: ignore[override]
        pass


def _client() -> tuple[VecraftClient, Recording]:
    client = VecraftClient()
    fake = Recording()
    client._transport = fake  # type: ignore[assignment]
    return client, fake


def _search_sent(call: Call[Any]) -> tuple[str | None, str | None, int, str]:
    """(HTTP level, HTTP token, gRPC level, gRPC token) of a search call."""
    req = call.grpc_request
    assert isinstance(req, search_pb2.SearchRequest)
    return call.json.get("consistency_level"), call.json.get("session_token"), req.consistency_level, \
        req.session_token


def test_fresh_client_searches_eventual_without_a_token() -> None:
    client, fake = _client()
    client.vector_search([0.1, 0.2], k=3)
    assert _search_sent(fake.calls[-1]) == ("eventual", None, search_pb2.EVENTUAL, "")


def test_after_a_write_searches_read_your_writes_with_the_clients_token() -> None:
    client, fake = _client()
    client.insert_vector([0.1, 0.2], id="a")
    assert client._token() == TOKEN
    client.vector_search([0.1, 0.2], k=3)
    assert _search_sent(fake.calls[-1]) == ("read_your_writes", TOKEN, search_pb2.READ_YOUR_WRITES, TOKEN)


def test_explicit_eventual_is_honoured_after_a_write() -> None:
    client, fake = _client()
    client.insert_vectors([[0.1, 0.2]], ids=["a"])
    client.vector_search([0.1, 0.2], k=3, consistency_level="eventual")
    assert _search_sent(fake.calls[-1]) == ("eventual", None, search_pb2.EVENTUAL, "")
    client.vector_search([0.1, 0.2], k=3, consistency_level=ConsistencyLevel.EVENTUAL)
    assert _search_sent(fake.calls[-1]) == ("eventual", None, search_pb2.EVENTUAL, "")
    client.get_vector("a", consistency_level="eventual")
    get = fake.calls[-1]
    # gRPC Get reads read-your-writes whenever a token is present: none may be sent.
    assert get.params["consistency_level"] == "eventual" and "X-Session-Token" not in get.headers
    assert get.grpc_request.session_token == "" and not get.grpc_request.strong  # type: ignore[union-attr]


def test_only_max_staleness_means_bounded() -> None:
    client, fake = _client()
    client.vector_search([0.1, 0.2], k=3, max_staleness_ms=250)
    assert _search_sent(fake.calls[-1])[:3] == ("bounded", None, search_pb2.BOUNDED_STALENESS)


def test_get_and_listing_default_to_read_your_writes_after_a_write() -> None:
    client, fake = _client()
    client.get_vector("a")
    assert fake.calls[-1].params["consistency_level"] == "eventual"
    assert fake.calls[-1].grpc_request.session_token == ""  # type: ignore[union-attr]
    client.upsert_vector("a", [0.1, 0.2])
    client.get_vector("a")
    get = fake.calls[-1]
    assert get.params["consistency_level"] == "read_your_writes"
    assert get.headers["X-Session-Token"] == TOKEN
    assert get.grpc_request.session_token == TOKEN  # type: ignore[union-attr]
    client.list_records("docs")
    page = fake.calls[-1]
    assert page.params["consistency_level"] == "read_your_writes" and page.headers["X-Session-Token"] == TOKEN
    assert page.grpc_request.consistency_level == search_pb2.READ_YOUR_WRITES  # type: ignore[union-attr]
    list(client.iter_records("docs"))
    assert fake.calls[-1].params["consistency_level"] == "read_your_writes"
    list(client.iter_records("docs", consistency_level="eventual"))
    assert fake.calls[-1].params["consistency_level"] == "eventual"
    assert "X-Session-Token" not in fake.calls[-1].headers


def test_writes_carry_the_clients_token_after_the_first() -> None:
    client, fake = _client()
    client.insert_vector([0.1, 0.2])
    assert "session_token" not in fake.calls[-1].json
    client.delete_vector("a")
    assert fake.calls[-1].json["session_token"] == TOKEN  # keeps the session identity: reads stay pinned


def test_a_sessions_writes_are_its_own() -> None:
    client, fake = _client()
    session = client.create_session()
    session.insert_vector([0.1, 0.2])
    session.vector_search([0.1, 0.2])
    assert _search_sent(fake.calls[-1])[:2] == ("read_your_writes", TOKEN)
    client.vector_search([0.1, 0.2])
    assert _search_sent(fake.calls[-1])[:2] == ("eventual", None)


def test_async_client_has_the_same_default() -> None:
    async def run() -> list[Call[Any]]:
        client = AsyncVecraftClient()
        fake = AsyncRecording()
        client._transport = fake  # type: ignore[assignment]
        await client.vector_search([0.1, 0.2])
        await client.insert_vector([0.1, 0.2])
        await client.vector_search([0.1, 0.2])
        await client.get_vector("a")
        await client.vector_search([0.1, 0.2], consistency_level="eventual")
        return fake.calls

    calls = asyncio.run(run())
    assert _search_sent(calls[0]) == ("eventual", None, search_pb2.EVENTUAL, "")
    assert _search_sent(calls[2]) == ("read_your_writes", TOKEN, search_pb2.READ_YOUR_WRITES, TOKEN)
    assert calls[3].params["consistency_level"] == "read_your_writes"
    assert _search_sent(calls[4]) == ("eventual", None, search_pb2.EVENTUAL, "")
