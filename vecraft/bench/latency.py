"""Hot-path measurement against a running cluster: search latency and CPU per request.

``vecraft bench latency --url http://127.0.0.1:8000 --data-dir vecraft-data [--load]``

- ``--load``: creates collection ``perf`` (128-d, cosine, 3 shards) and writes
  ``--n`` clustered vectors (metadata ``category`` = one of 10 values, so a
  category filter keeps ~10%) in ``vectors_b64`` batches with the default
  ``ack=all``; prints acknowledged vectors/s.
- then, for eventual, strong and filtered (``category = c3``) searches, one
  client sends ``--reps`` sequential requests (bodies encoded beforehand) and
  prints p50/p95/p99, recall@10 of eventual and filtered against an exact scan,
  and the CPU milliseconds every cluster process (from ``--data-dir``'s
  supervisor status) spent per request. CPU per request is the figure to compare
  on a shared host: latency there follows the other processes' load, CPU time
  much less.
- ``--writer-rate R``: a second process writes R requests/s of 10 vectors with
  ``ack=journal`` meanwhile, so replicas started with ``--apply-delay-ms`` lag.

Used for docs/performance.md; the spec's benchmark matrix is ``vecraft bench``.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing as mp
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import psutil

from vecraft.bench._report import add_output_arguments, write_outputs
from vecraft.local.supervisor import read_status

COLLECTION = "perf"
DIM = 128
CATEGORIES = 10
_HEADERS = {"content-type": "application/json"}


def dataset(n: int, queries: int = 400, seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` unit vectors around 200 centres, their category numbers, and ``queries`` query vectors."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, DIM)).astype(np.float32)
    x = centres[rng.integers(0, 200, n)] + 0.35 * rng.normal(size=(n, DIM)).astype(np.float32)
    q = centres[rng.integers(0, 200, queries)] + 0.35 * rng.normal(size=(queries, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, rng.integers(0, CATEGORIES, n), q


def _post(client: httpx.Client, path: str, body: bytes) -> httpx.Response:
    """POST, waiting out 429 back-pressure (acknowledged ingest includes that wait)."""
    while True:
        resp = client.post(path, content=body, headers=_HEADERS)
        if resp.status_code != 429:
            return resp
        time.sleep(float(resp.headers.get("retry-after", "0.2")))


def load(url: str, n: int, batch: int) -> float:
    """Create the collection and write ``n`` vectors, 2 batches in flight; returns vectors/s."""
    import concurrent.futures as cf

    x, cats, _ = dataset(n)
    client = httpx.Client(base_url=url, timeout=300)
    _post(client, "/v1/collections", orjson.dumps({"name": COLLECTION, "dim": DIM, "metric": "cosine",
                                                   "shards": 3}))
    bodies = [orjson.dumps({
        "collection": COLLECTION, "ids": [f"v{i}" for i in range(lo, min(lo + batch, n))], "dim": DIM,
        "vectors_b64": base64.b64encode(x[lo:lo + batch].tobytes()).decode(),
        "metadatas": [{"category": f"c{int(cats[i])}", "n": i} for i in range(lo, min(lo + batch, n))]})
        for lo in range(0, n, batch)]

    def one(body: bytes) -> None:
        resp = _post(client, "/v1/vectors/batch", body)
        if resp.status_code != 201:
            raise RuntimeError(f"batch write: {resp.status_code} {resp.text[:300]}")

    start = time.perf_counter()
    with cf.ThreadPoolExecutor(2) as pool:
        list(pool.map(one, bodies))
    return n / (time.perf_counter() - start)


def _writer(url: str, rate: float, stop: Any) -> None:
    client = httpx.Client(base_url=url, timeout=30)
    rng = np.random.default_rng(1)
    n = 0
    while not stop.is_set():
        vectors = rng.normal(size=(10, DIM)).astype(np.float32)
        _post(client, "/v1/vectors/batch?ack=journal", orjson.dumps({
            "collection": COLLECTION, "ids": [f"w{os.getpid()}-{n}-{j}" for j in range(10)], "dim": DIM,
            "vectors_b64": base64.b64encode(vectors.tobytes()).decode(),
            "metadatas": [{"category": "w"}] * 10}))
        n += 1
        time.sleep(1.0 / rate)


def _cpu_seconds(procs: dict[str, psutil.Process]) -> dict[str, float]:
    out = {}
    for name, proc in procs.items():
        times = proc.cpu_times()
        out[name] = times.user + times.system
    return out


def search(url: str, data_dir: Path | None, n: int, reps: int, writer_rate: float) -> list[str]:
    """Sequential eventual / strong / filtered searches; prints (and returns) one line per kind:
    latency, recall and CPU per request."""
    lines: list[str] = []
    x, cats, q = dataset(n)
    procs = {name: psutil.Process(p["pid"]) for name, p in
             (read_status(data_dir).get("processes", {}) if data_dir else {}).items() if p.get("pid")}
    stop = mp.Event()
    writer = None
    if writer_rate > 0:
        writer = mp.Process(target=_writer, args=(url, writer_rate, stop), daemon=True)
        writer.start()
        time.sleep(1.0)
    client = httpx.Client(base_url=url, timeout=30)
    for name, level, flt in [("eventual", "eventual", None), ("strong", "strong", None),
                             ("filtered", "eventual", {"category": "c3"})]:
        bodies: list[bytes] = []
        for i in range(reps):
            body: dict[str, Any] = {"collection": COLLECTION, "vector": q[i % len(q)].tolist(), "k": 10,
                                    "consistency_level": level}
            if flt:
                body["filters"] = flt
            bodies.append(orjson.dumps(body))
        for encoded in bodies[:20]:  # warm connections and caches
            _post(client, "/v1/vectors/search", encoded)
        latencies, hits = [], []
        cpu_before = _cpu_seconds(procs)
        for encoded in bodies:
            start = time.perf_counter()
            resp = client.post("/v1/vectors/search", content=encoded, headers=_HEADERS)
            latencies.append(time.perf_counter() - start)
            if resp.status_code != 200:
                raise RuntimeError(f"search: {resp.status_code} {resp.text[:300]}")
            hits.append([h["id"] for h in orjson.loads(resp.content)["results"]])
        cpu_after = _cpu_seconds(procs)
        ms = np.asarray(latencies) * 1000
        line = (f"{name:9s} p50 {np.percentile(ms, 50):.2f} p95 {np.percentile(ms, 95):.2f} "
                f"p99 {np.percentile(ms, 99):.2f} ms")
        if level == "eventual":
            rows = np.arange(n) if flt is None else np.nonzero(cats == 3)[0]
            recall = []
            for i in range(min(reps, 200)):
                truth = {f"v{j}" for j in rows[np.argsort(-(x[rows] @ q[i % len(q)]))[:10]]}
                recall.append(len(truth & set(hits[i])) / 10)
            line += f", recall@10 {np.mean(recall):.3f}"
        cpu = {k: 1000 * (cpu_after[k] - cpu_before[k]) / reps for k in procs}
        if cpu:
            line += "; CPU ms/request: " + ", ".join(f"{k} {v:.2f}" for k, v in cpu.items() if v >= 0.05)
        line += f"; load {os.getloadavg()[0]:.1f}"
        lines.append(line)
        print(line, flush=True)
    stop.set()
    if writer is not None:
        writer.join(5)
    return lines


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="vecraft bench latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000",
                    help="HTTP endpoint of a running cluster (default http://127.0.0.1:8000)")
    ap.add_argument("--data-dir", type=Path, default=None,
                    help="the cluster's data dir, to report CPU milliseconds per request of every process")
    ap.add_argument("--n", type=int, default=100_000, help="vectors in the data set (default 100000)")
    ap.add_argument("--load", action="store_true",
                    help="create the collection perf and write the data set first")
    ap.add_argument("--batch", type=int, default=2000, help="rows per write request of --load (default 2000)")
    ap.add_argument("--reps", type=int, default=1000, help="sequential searches per kind (default 1000)")
    ap.add_argument("--writer-rate", type=float, default=0.0,
                    help="requests/s of a concurrent writer (10 vectors, ack=journal; default 0: none)")
    add_output_arguments(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    lines = []
    if args.load:
        lines.append(f"ingest {args.n} x {DIM}, batches of {args.batch}: "
                     f"{load(args.url, args.n, args.batch):,.0f} vectors/s acknowledged")
        print(lines[-1], flush=True)
    lines += search(args.url, args.data_dir, args.n, args.reps, args.writer_rate)
    if not args.no_report:
        command = "vecraft bench latency " + " ".join(shlex.quote(a) for a in argv)
        markdown = "# Search latency\n\n`" + command + "`\n\n```\n" + "\n".join(lines) + "\n```\n"
        json_path, md_path = write_outputs(args.out, "latency", "custom",
                                           {"command": command, "lines": lines}, markdown)
        print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
