"""``import_file`` waits out back-pressure (429) longer than the transport's few retries, with the
same request id per chunk, and stops waiting when the import stops. A fake client, no server."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from vecraft_client import RateLimited, _bulk
from vecraft_client._errors import InvalidRequest

pytestmark = pytest.mark.unit


class Collection:
    dim = 2


class Written:
    duplicate = False


class FakeClient:
    """``insert_vectors`` answers 429 ``busy`` times per request id, then succeeds (or fails)."""

    def __init__(self, busy: int, *, fail_chunk: int | None = None) -> None:
        self.busy = busy
        self.fail_chunk = fail_chunk
        self.tries: dict[str, int] = {}
        self.lock = threading.Lock()

    def get_collection(self, name: str) -> Collection:
        return Collection()

    def insert_vectors(self, vectors: Any, ids: Any, metadatas: Any, documents: Any, collection: str, *,
                       request_id: str, **_: Any) -> Written:
        with self.lock:
            self.tries[request_id] = self.tries.get(request_id, 0) + 1
            tries = self.tries[request_id]
        if self.fail_chunk is not None and request_id.endswith(f"-{self.fail_chunk}"):
            raise InvalidRequest("rejected")
        if tries <= self.busy:
            raise RateLimited("journal back-pressure: replica behind", retry_after_ms=10)
        return Written()


def _file(tmp_path: Path, rows: int) -> Path:
    path = tmp_path / "v.jsonl"
    lines = (json.dumps({"id": f"r{i}", "vector": [1.0, float(i)]}) + "\n" for i in range(rows))
    path.write_text("".join(lines))
    return path


def test_chunks_wait_out_back_pressure_with_their_own_request_id(tmp_path: Path) -> None:
    client = FakeClient(busy=3)
    result = _bulk.import_file(client, _file(tmp_path, 10), "c", chunk_rows=4, parallel=2,  # type: ignore[arg-type]
                               request_id_prefix="p")
    assert (result.rows, result.chunks) == (10, 3)
    assert client.tries == {"p-0": 4, "p-1": 4, "p-2": 4}


def test_back_pressure_beyond_the_patience_fails_the_import(tmp_path: Path) -> None:
    client = FakeClient(busy=1000)
    t0 = time.monotonic()
    with pytest.raises(RateLimited):
        _bulk.import_file(client, _file(tmp_path, 4), "c", chunk_rows=4,  # type: ignore[arg-type]
                          request_id_prefix="p", backpressure_s=0.2)
    assert time.monotonic() - t0 < 5
    assert client.tries["p-0"] >= 2


def test_a_failed_chunk_stops_the_others_waiting(tmp_path: Path) -> None:
    # Chunk 0 is rejected while chunk 1 waits on back-pressure with an hour of patience: the
    # import fails at once instead of waiting for it.
    client = FakeClient(busy=10**9, fail_chunk=0)
    t0 = time.monotonic()
    with pytest.raises(InvalidRequest):
        _bulk.import_file(client, _file(tmp_path, 8), "c", chunk_rows=4, parallel=4,  # type: ignore[arg-type]
                          request_id_prefix="p", backpressure_s=3600)
    assert time.monotonic() - t0 < 10
