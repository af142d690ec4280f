"""What `vecraft bench peers` counts as an engine's memory: a client/server engine's processes, not
the benchmark's own growth; an embedded engine's growth of the benchmark's process."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import pytest

from vecraft.bench._datasets import exact_topk, filtered_truth, gaussian_mixture
from vecraft.bench._env import environment
from vecraft.bench._peers import Engine
from vecraft.bench.peers import measure, render

pytestmark = pytest.mark.unit

#: Bytes the fake client keeps while "ingesting": large enough to stand out of the process's noise.
CLIENT_BYTES = 64 * 2**20
#: Bytes the fake server process holds.
SERVER_BYTES = 96 * 2**20


class FakeEngine(Engine):
    """Exact search in the benchmark's process; a "server" child holding ``SERVER_BYTES``; a
    client-side buffer of ``CLIENT_BYTES`` kept until close."""

    def __init__(self, *, in_process: bool) -> None:
        self.name = "vecraft-fake"
        self.in_process = in_process
        self._server: subprocess.Popen[bytes] | None = None
        self._client_buffer: np.ndarray | None = None

    def setup(self, dim: int, *, m: int, ef_construction: int, ef_search: int) -> None:
        self._server = subprocess.Popen(
            [sys.executable, "-c",
             f"import sys; b = bytearray({SERVER_BYTES}); b[::4096] = b'x' * len(b[::4096]); "
             "print('up', flush=True); sys.stdin.read()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._server.stdout is not None and self._server.stdout.readline() == b"up\n"

    def ingest(self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, int]],
               batch: int) -> None:
        self._ids, self._vectors = ids, vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        self._cats = np.asarray([m["category"] for m in metadatas])
        self._client_buffer = np.ones(CLIENT_BYTES // 8)

    def search(self, vector: np.ndarray, k: int, category: int | None = None,
               level: str | None = None) -> list[str]:
        scores = self._vectors @ (vector / np.linalg.norm(vector))
        if category is not None:
            scores = np.where(self._cats == category, scores, -np.inf)
        return [self._ids[i] for i in np.argsort(-scores)[:k]]

    def close(self) -> None:
        assert self._server is not None
        self._server.communicate(b"")
        self._client_buffer = None


@pytest.mark.parametrize("in_process", [False, True])
def test_memory_is_the_servers_for_a_client_server_engine(in_process: bool) -> None:
    data = gaussian_mixture(300, 8, queries=20, seed=1)
    truth = exact_topk(data.vectors, data.queries, 10, data.metric)
    args = argparse.Namespace(m=16, ef_construction=100, ef=64, batch=100, clients=2)
    out = measure(FakeEngine(in_process=in_process), data, truth, filtered_truth(data, 10), args)
    server_mib, client_mib = SERVER_BYTES / 2**20, CLIENT_BYTES / 2**20
    assert out["search_recall"] == pytest.approx(1.0)
    if in_process:
        # Embedded: its process growth (the client's buffer here) and whatever it started.
        assert out["client_memory_mib"] is None
        assert out["memory_mib"] >= server_mib + 0.9 * client_mib
    else:
        assert server_mib <= out["memory_mib"] < server_mib + 0.5 * client_mib
        assert out["client_memory_mib"] >= 0.9 * client_mib
    text = render({"engines": {"vecraft-fake": out}, "clients": 2, "m": 16, "ef_construction": 100,
                   "ef": 64, "batch": 100, "vecraft_shards": 1,
                   "data": {"name": "gmm", "source": "synthetic", "n": 300, "dim": 8, "queries": 20},
                   "environment": environment("peers", [])})
    assert "client MiB" in text
