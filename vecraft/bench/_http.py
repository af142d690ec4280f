"""The benchmarks' HTTP client for the gateway, and the background writer.

httpx.AsyncClient is used directly (not the SDK) so the load generator
controls the connection pool and pays no retry or back-off: a 429 is counted,
not hidden. Request bodies of searches are encoded once per (query, level)
ahead of the run, so client-side JSON encoding of a 1536-d vector does not eat
the CPU the server needs (client and cluster share the machine).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence
from typing import Any, Self

import httpx
import numpy as np
import orjson

from vecraft.bench._loadgen import Reply

#: Rows per write request: the gateway's limit.
MAX_BATCH = 10_000


class BenchHttp:
    """Thin async wrapper over the gateway's REST API for benchmarks."""

    def __init__(self, base_url: str, *, connections: int = 256, timeout_s: float = 30.0) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._client = httpx.AsyncClient(base_url=base_url, limits=limits,
                                         timeout=httpx.Timeout(timeout_s))
        #: Write requests answered 429 (back-pressure) and retried.
        self.throttled = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _post(self, path: str, body: dict[str, Any] | bytes) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self._client.post(path, content=content,
                                       headers={"content-type": "application/json"})

    async def create_collection(self, name: str, dim: int, *, metric: str, shards: int,
                                hnsw: dict[str, int]) -> None:
        """Create ``name``; an existing collection (409) is fine: a resumed cluster keeps its data."""
        body = {"name": name, "dim": dim, "metric": metric, "shards": shards, "replicas": 1, "hnsw": hnsw}
        resp = await self._post_retrying("/v1/collections", orjson.dumps(body), retry_429_s=120.0)
        if resp.status_code not in (200, 201, 409):
            raise RuntimeError(f"create collection {name}: {resp.status_code} {resp.text[:300]}")

    async def insert(self, collection: str, ids: Sequence[str], vectors: np.ndarray,
                     metadatas: Sequence[dict[str, Any]] | None = None, *,
                     ack: str = "all", retry_429_s: float = 0.0) -> dict[str, Any]:
        """Write one batch (binary vectors); returns the gateway's answer.

        A 429 is retried after its Retry-After for up to ``retry_429_s`` seconds
        (0: not retried). Raises ``RuntimeError`` on any other error status.
        """
        body: dict[str, Any] = {
            "collection": collection, "ids": list(ids), "dim": int(vectors.shape[1]),
            "vectors_b64": base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode(),
            "ack": ack}
        if metadatas is not None:
            body["metadatas"] = list(metadatas)
        resp = await self._post_retrying("/v1/vectors/batch", orjson.dumps(body), retry_429_s=retry_429_s)
        if resp.status_code not in (200, 201):
            raise RuntimeError(f"batch write: {resp.status_code} {resp.text[:300]}")
        answer: dict[str, Any] = orjson.loads(resp.content)
        return answer

    async def _post_retrying(self, path: str, payload: bytes, *, retry_429_s: float) -> httpx.Response:
        """POST; a 429 is retried after its Retry-After until ``retry_429_s`` have passed."""
        deadline = time.monotonic() + retry_429_s
        while True:
            resp = await self._post(path, payload)
            if resp.status_code != 429 or time.monotonic() >= deadline:
                return resp
            # Back-pressure: the journal asks writers to wait for the replicas; an
            # acknowledged-ingest figure includes that wait.
            self.throttled += 1
            await asyncio.sleep(_retry_after_s(resp))

    async def search(self, body: bytes) -> Reply:
        """One search with a pre-encoded body; the reply carries ids and consistency info."""
        resp = await self._post("/v1/vectors/search", body)
        if resp.status_code != 200:
            return Reply(ok=False, status=resp.status_code, error=f"http-{resp.status_code}")
        data = orjson.loads(resp.content)
        info = dict(data.get("consistency_info") or {})
        info["ids"] = [r["id"] for r in data.get("results", ())]
        return Reply(ok=True, status=200, info=info)

    async def search_ids(self, body: dict[str, Any]) -> list[str]:
        """Ids of one search answer; raises on an error status."""
        reply = await self.search(orjson.dumps(body))
        if not reply.ok:
            raise RuntimeError(f"search: {reply.error}")
        ids: list[str] = reply.info["ids"]
        return ids

    async def wait_ready(self, timeout_s: float = 180.0) -> None:
        """Poll ``/readyz`` until it answers 200."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if (await self._client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"gateway not ready after {timeout_s:.0f} s")
            await asyncio.sleep(0.25)


def _retry_after_s(resp: httpx.Response) -> float:
    """The wait a 429 asks for: Retry-After (seconds) or the body's retry_after_ms; 0.5 s if neither."""
    try:
        return max(0.05, float(resp.headers["retry-after"]))
    except (KeyError, ValueError):
        pass
    try:
        return max(0.05, orjson.loads(resp.content)["error"]["details"]["retry_after_ms"] / 1000.0)
    except (KeyError, TypeError, ValueError, orjson.JSONDecodeError):
        return 0.5


def search_body(collection: str, vector: np.ndarray | list[float], *, k: int, level: str,
                max_staleness_ms: int | None = None, ef_search: int | None = None,
                filters: dict[str, Any] | None = None, session_token: str | None = None) -> dict[str, Any]:
    """The JSON body of one search request (``vector`` as an array or an already converted list)."""
    values = vector if isinstance(vector, list) else vector.astype(float).tolist()
    body: dict[str, Any] = {"collection": collection, "vector": values,
                            "k": k, "consistency_level": level}
    if max_staleness_ms is not None:
        body["max_staleness_ms"] = max_staleness_ms
    if ef_search is not None:
        body["ef_search"] = ef_search
    if filters:
        body["filters"] = filters
    if session_token is not None:
        body["session_token"] = session_token
    return body


async def load_dataset(http: BenchHttp, collection: str, vectors: np.ndarray, ids: Sequence[str],
                       metadatas: Sequence[dict[str, Any]], *, batch: int, ack: str = "all",
                       concurrency: int = 2) -> float:
    """Write every row in batches, ``concurrency`` requests at a time; returns seconds taken."""
    start = time.perf_counter()
    sem = asyncio.Semaphore(concurrency)

    async def one(lo: int) -> None:
        hi = min(lo + batch, len(ids))
        async with sem:
            await http.insert(collection, ids[lo:hi], vectors[lo:hi], metadatas[lo:hi], ack=ack,
                              retry_429_s=600.0)

    await asyncio.gather(*(one(lo) for lo in range(0, len(ids), batch)))
    return time.perf_counter() - start


class SteadyWriter:
    """Writes one small batch every ``1 / rate`` seconds with ``ack=journal`` until stopped.

    With ``ack=journal`` a write is answered once durable in the journal, before
    any replica applies it, so readers face a replica that lags by the cluster's
    ``apply_delay_ms``. The session token of the latest acknowledged write is
    kept for READ_YOUR_WRITES readers.
    """

    def __init__(self, http: BenchHttp, collection: str, vectors: np.ndarray, *, rate: float,
                 rows_per_write: int = 1, id_prefix: str = "w") -> None:
        self._http = http
        self._collection = collection
        self._vectors = vectors
        self._rate = rate
        self._rows = rows_per_write
        self._prefix = id_prefix
        self._next = 0
        self._task: asyncio.Task[None] | None = None
        self._writes: set[asyncio.Task[None]] = set()
        self.session_token: str | None = None
        self.acked = 0
        self.errors = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="bench-steady-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # Writes in flight finish: cancelling them would leave half-sent requests behind.
        if self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def _run(self) -> None:
        start = time.perf_counter()
        i = 0
        while True:
            # Fixed schedule, like the readers: a slow write does not lower the write rate.
            delay = start + i / self._rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            i += 1
            task = asyncio.create_task(self._write_one(), name="bench-steady-write")
            self._writes.add(task)
            task.add_done_callback(self._writes.discard)

    async def _write_one(self) -> None:
        n = self._vectors.shape[0]
        rows = [(self._next + j) % n for j in range(self._rows)]
        ids = [f"{self._prefix}{self._next + j}" for j in range(self._rows)]
        self._next += self._rows
        try:
            answer = await self._http.insert(self._collection, ids, self._vectors[rows], ack="journal")
        except Exception:  # noqa: BLE001 - counted; a failing writer must not stop the read benchmark
            self.errors += 1
            return
        self.acked += 1
        token = answer.get("session_token")
        if token:
            self.session_token = token


async def wait_searchable(http: BenchHttp, collection: str, vector: np.ndarray, expected_id: str, *,
                          timeout_s: float = 120.0) -> float:
    """Seconds until an eventual search for ``vector`` returns ``expected_id`` first."""
    t0 = time.perf_counter()
    body = search_body(collection, vector, k=1, level="eventual")
    while time.perf_counter() - t0 < timeout_s:
        try:
            if await http.search_ids(body) == [expected_id]:
                return time.perf_counter() - t0
        except RuntimeError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"{collection}: {expected_id} not searchable after {timeout_s:.0f} s")
