"""Hostile requests against a real cluster: each gets the right 4xx with a useful message, nothing
reaches the journal, stored data is unchanged and every process stays healthy. Run twice: with the
gateway open, and with ``--auth`` and a valid admin key (the key check must not change any answer)."""

from __future__ import annotations

import base64
import re
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.integration.gateway.cluster import Cluster, run_cluster

pytestmark = pytest.mark.chaos

COLL = "target"
DIM = 4
N = 40
PARTITIONS = ["data-0", "data-1", "system"]


@pytest.fixture(scope="module", params=["open", "auth"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp(f"hostile-{request.param}")
    key_file = root / "admin.key"
    auth = ["--auth", "--bootstrap-admin-key-file", str(key_file)] if request.param == "auth" else []
    with run_cluster(root, shards=3, data_partitions=2, gateway_args=auth) as c:
        if auth:
            c.api_key = key_file.read_text().strip()
        with c.client() as client:
            assert client.post("/v1/collections", json={"name": COLL, "dim": DIM}).status_code == 201
            vectors = np.random.default_rng(5).normal(size=(N, DIM)).astype(np.float32)
            r = client.post("/v1/vectors/batch", json={
                "collection": COLL, "ids": [f"r{i}" for i in range(N)], "vectors": vectors.tolist(),
                "metadatas": [{"i": i} for i in range(N)]})
            assert r.status_code == 201, r.text
        yield c


V = [0.1, 0.2, 0.3, 0.4]
S = "/v1/vectors/search"


def _nested(depth: int) -> dict[str, Any]:
    obj: dict[str, Any] = {"leaf": 1}
    for _ in range(depth):
        obj = {"n": obj}
    return obj


# (name, method, path, kwargs, status, words that must appear in the error message)
HOSTILE: list[tuple[str, str, str, dict[str, Any], int, tuple[str, ...]]] = [
    ("search wrong dimension", "POST", S, {"json": {"collection": COLL, "vector": [1, 2, 3]}}, 400,
     ("dimension 3", "4")),
    ("insert wrong dimension", "POST", "/v1/vectors",
     {"json": {"collection": COLL, "vector": [1, 2, 3, 4, 5]}}, 400, ("dimension 5", "expects 4")),
    ("NaN literal", "POST", S, {"content": b'{"collection": "target", "vector": [NaN, 1, 2, 3]}'}, 400,
     ("not valid JSON", "NaN")),
    ("Infinity literal", "POST", "/v1/vectors",
     {"content": b'{"collection": "target", "vector": [Infinity, 1, 2, 3]}'}, 400, ("Infinity",)),
    ("beyond float32", "POST", "/v1/vectors", {"json": {"collection": COLL, "vector": [1e39, 0, 0, 0]}},
     400, ("float32",)),
    ("k = 0", "POST", S, {"json": {"collection": COLL, "vector": V, "k": 0}}, 400, ("k is 0", "1024")),
    ("k = -1", "POST", S, {"json": {"collection": COLL, "vector": V, "k": -1}}, 400, ("k is -1",)),
    ("k = 10^9", "POST", S, {"json": {"collection": COLL, "vector": V, "k": 10**9}}, 400, ("1000000000",)),
    ("k as text", "POST", S, {"json": {"collection": COLL, "vector": V, "k": "10"}}, 400,
     ("k must be an integer",)),
    ("unknown level", "POST", S, {"json": {"collection": COLL, "vector": V, "consistency_level": "psychic"}},
     400, ("psychic", "eventual", "bounded", "read_your_writes", "strong")),
    ("unknown level header", "POST", S, {"json": {"collection": COLL, "vector": V},
                                         "headers": {"X-Consistency-Level": "maybe"}}, 400, ("maybe",)),
    ("negative staleness", "POST", S,
     {"json": {"collection": COLL, "vector": V, "consistency_level": "bounded", "max_staleness_ms": -1}},
     400, ("max_staleness_ms is -1",)),
    ("negative staleness header", "POST", S, {"json": {"collection": COLL, "vector": V},
                                              "headers": {"X-Max-Staleness-Ms": "-20"}}, 400, ("-20",)),
    ("malformed JSON", "POST", S, {"content": b'{"vector": [1, 2,'}, 400, ("not valid JSON",)),
    ("JSON array body", "POST", "/v1/vectors", {"content": b"[1, 2, 3, 4]"}, 400, ("JSON object",)),
    ("vector as string", "POST", S, {"json": {"collection": COLL, "vector": "0.1,0.2"}}, 400, ("vector",)),
    ("booleans in vector", "POST", "/v1/vectors",
     {"json": {"collection": COLL, "vector": [True, 0, 0, 0]}}, 400, ("boolean",)),
    ("unknown collection", "POST", S, {"json": {"collection": "nope", "vector": V}}, 404, ("nope",)),
    ("bad collection name", "POST", S, {"json": {"collection": "../etc", "vector": V}}, 400, ("name",)),
    ("deep metadata", "POST", "/v1/vectors",
     {"json": {"collection": COLL, "vector": V, "metadata": _nested(20)}}, 400, ("levels deep",)),
    ("huge metadata", "POST", "/v1/vectors",
     {"json": {"collection": COLL, "vector": V, "metadata": {"blob": "x" * 100_000}}}, 413, ("bytes",)),
    ("metadata operator key", "POST", "/v1/vectors",
     {"json": {"collection": COLL, "vector": V, "metadata": {"$where": 1}}}, 400, ("$",)),
    ("bad filter operator", "POST", S,
     {"json": {"collection": COLL, "vector": V, "filters": {"i": {"$regex": ".*"}}}}, 400, ("$regex",)),
    ("$in needs a list", "POST", S,
     {"json": {"collection": COLL, "vector": V, "filters": {"i": {"$in": 3}}}}, 400, ("$in",)),
    ("range on text", "POST", S,
     {"json": {"collection": COLL, "vector": V, "filters": {"i": {"$gt": "a"}}}}, 400, ("$gt",)),
    ("unicode id", "POST", "/v1/vectors", {"json": {"collection": COLL, "id": "ключ", "vector": V}}, 400,
     ("U+043A",)),
    ("empty id", "POST", "/v1/vectors", {"json": {"collection": COLL, "id": "", "vector": V}}, 400,
     ("empty",)),
    ("duplicate ids", "POST", "/v1/vectors/batch",
     {"json": {"collection": COLL, "ids": ["a", "b", "a"], "vectors": [V, V, V]}}, 400,
     ("more than once", "'a'")),
    ("ragged batch", "POST", "/v1/vectors/batch", {"json": {"collection": COLL, "vectors": [V, [1, 2]]}},
     400, ("same dimension",)),
    ("ids/vectors mismatch", "POST", "/v1/vectors/batch",
     {"json": {"collection": COLL, "ids": ["a"], "vectors": [V, V]}}, 400, ("rows",)),
    ("b64 wrong length", "POST", "/v1/vectors/batch",
     {"json": {"collection": COLL, "vectors_b64": base64.b64encode(b"\0" * 20).decode(), "dim": 4}}, 400,
     ("20 bytes",)),
    ("too many rows", "POST", "/v1/vectors/batch",
     {"json": {"collection": COLL, "dim": 1,
               "vectors_b64": base64.b64encode(np.ones(10_001, dtype="<f4").tobytes()).decode()}},
     413, ("10000",)),
    ("bad ack", "POST", "/v1/vectors", {"json": {"collection": COLL, "vector": V, "ack": "most"}}, 400,
     ("journal, one, all",)),
    ("bad session token", "POST", S,
     {"json": {"collection": COLL, "vector": V, "consistency_level": "read_your_writes",
               "session_token": "%%%not-a-token"}}, 400, ("session token",)),
    ("bad request id header", "POST", "/v1/vectors",
     {"json": {"collection": COLL, "vector": V}, "headers": {"X-Request-Id": "has spaces"}}, 400,
     ("X-Request-Id",)),
    ("unknown field", "POST", S, {"json": {"collection": COLL, "vector": V, "top_k": 5}}, 400, ("top_k",)),
    ("dim 0 collection", "POST", "/v1/collections", {"json": {"name": "zero", "dim": 0}}, 400, ("dim",)),
    ("unknown metric", "POST", "/v1/collections", {"json": {"name": "ham", "dim": 4, "metric": "hamming"}},
     400, ("hamming",)),
    ("existing collection", "POST", "/v1/collections", {"json": {"name": COLL, "dim": DIM}}, 409, (COLL,)),
    ("bounded read by id", "GET", "/v1/vectors/r1", {"params": {"collection": COLL,
                                                                 "consistency_level": "bounded"}}, 400,
     ("searches",)),
    ("bad bool param", "GET", "/v1/vectors/r1", {"params": {"collection": COLL, "include_vector": "perhaps"}},
     400, ("include_vector",)),
    ("unknown route", "GET", "/v2/everything", {}, 404, ("/v2/everything",)),
    ("unknown partition", "GET", "/v1/journal/data-9", {}, 404, ("data-9",)),
]


def _snapshot(client: httpx.Client) -> tuple[dict[str, int], list[str], int]:
    """Journal heads, the collections, and the records a strong search finds."""
    heads = {p: client.get(f"/v1/journal/{p}", params={"limit": 1}).json()["latest_offset"]
             for p in PARTITIONS}
    names = sorted(c["name"] for c in client.get("/v1/collections").json()["collections"])
    r = client.post(S, json={"collection": COLL, "vector": V, "k": 1024, "consistency_level": "strong"})
    return heads, names, len(r.json()["results"])


def test_hostile_requests_get_precise_4xx_and_change_nothing(cluster: Cluster) -> None:
    assert len(HOSTILE) >= 20
    with cluster.client() as client:
        before = _snapshot(client)
        assert before[1] == [COLL] and before[2] == N
        failures = []
        for name, method, path, kwargs, status, words in HOSTILE:
            r = client.request(method, path, **kwargs)
            try:
                body = r.json()
                message = body["error"]["message"]
                assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
                assert r.status_code == status
                assert all(w in message for w in words), words
            except (AssertionError, ValueError, KeyError) as exc:
                failures.append(f"{name}: {r.status_code} {r.text[:300]} ({exc!r})")
        assert not failures, "\n".join(failures)
        assert _snapshot(client) == before
    assert cluster.healthy(), cluster.logs()


def test_oversized_body_is_refused_before_it_is_read(cluster: Cluster) -> None:
    """A declared 70 MiB body is answered 413 without the gateway waiting for it."""
    host, port = cluster.gateway.http_address.split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        key = "".join(f"{k}: {v}\r\n" for k, v in cluster.auth_headers.items()).encode()
        sock.sendall(b"POST /v1/vectors/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + key + b"Content-Length: 73400320\r\n\r\n" + b"[" * 1024)
        # The head and the JSON body may arrive in separate segments: read up to content-length.
        answer = b""
        while data := sock.recv(65536):
            answer += data
            head, sep, body = answer.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", head)
            if sep and length and len(body) >= int(length.group(1)):
                break
    text = answer.decode(errors="replace")
    assert text.startswith("HTTP/1.1 413"), text
    assert "payload_too_large" in text
    # A streamed (chunked) body past the limit is cut off as it arrives.
    def chunks() -> Iterator[bytes]:
        for _ in range(70):
            yield b" " * (1 << 20)

    with cluster.client() as client:
        r = client.post("/v1/vectors/batch", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        assert client.get("/v1/collections/default").status_code == 404
    assert cluster.healthy(), cluster.logs()
