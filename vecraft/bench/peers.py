"""Vecraft vs Chroma vs Milvus Lite: same data, same queries, same HNSW parameters, same run.

For each engine: acknowledged ingest until searchable (vectors/s), search
P50/P95 and recall@10, filtered search (``category == c``, ~10% selectivity)
P50/P95 and recall@10, one request at a time. The report gives the ratio
Vecraft / peer for each figure and lists plainly where Vecraft loses.

Needs the ``bench`` extra (``pip install -e '.[bench]'``); an engine that
cannot be imported or fails is reported as such and the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import psutil

from vecraft.bench._cluster import stop_leftovers, stop_on_sigterm
from vecraft.bench._datasets import (
    CATEGORIES,
    Dataset,
    exact_topk,
    filtered_truth,
    gaussian_mixture,
    recall_at_k,
)
from vecraft.bench._env import environment, environment_markdown
from vecraft.bench._peers import ENGINE_NAMES, Engine, make_engine
from vecraft.bench._report import add_output_arguments, fmt, table, write_outputs
from vecraft.bench._stats import ratio, summarize

K = 10
WARMUP_QUERIES = 20
SCALES = {"small": {"n": 100_000, "queries": 500}, "spec": {"n": 1_000_000, "queries": 1000}}


def measure(engine: Engine, data: Dataset, truth: np.ndarray, truth_filtered: np.ndarray,
            args: argparse.Namespace) -> dict[str, Any]:
    """Ingest, then time every query unfiltered and filtered. The engine is closed afterwards."""
    ids, metas = data.ids(), data.metadatas()
    own_before = _own_rss()
    try:
        engine.setup(data.dim, m=args.m, ef_construction=args.ef_construction, ef_search=args.ef)
        t0 = time.perf_counter()
        engine.ingest(ids, data.vectors, metas, args.batch)
        acked = time.perf_counter() - t0
        engine.wait_searchable(data.vectors[-1], ids[-1])
        searchable = time.perf_counter() - t0
        out: dict[str, Any] = {"ingest_acked_s": acked, "ingest_searchable_s": searchable,
                               "ingest_vectors_per_s": data.n / searchable}
        for q in data.queries[:WARMUP_QUERIES]:
            engine.search(q, K)
        for label, category, gt in (("search", None, truth), ("filtered", True, truth_filtered)):
            lat, found = [], []
            for i, q in enumerate(data.queries):
                cat = i % CATEGORIES if category else None
                s = time.perf_counter()
                found.append(engine.search(q, K, cat))
                lat.append((time.perf_counter() - s) * 1000.0)
            out[label] = summarize(lat).to_dict()
            out[f"{label}_recall"] = recall_at_k(found, gt)
        for level in engine.levels:
            # Interleaved with eventual searches, query by query: the difference is the level's
            # cost, not the machine's drift between two runs.
            lat = []
            base: list[float] = []
            for q in data.queries:
                for searched_level, into in ((level, lat), (None, base)):
                    s = time.perf_counter()
                    engine.search(q, K, level=searched_level)
                    into.append((time.perf_counter() - s) * 1000.0)
            out[f"search_{level}"] = summarize(lat).to_dict()
            out[f"search_{level}_eventual"] = summarize(base).to_dict()
        out["throughput"] = _throughput(engine, data.queries, args.clients)
        own_growth, started = _own_rss() - own_before, _started_rss()
        # The engine's memory: an in-process engine's is what this process grew by (its client
        # included); a client/server engine's is its processes' (the issue's "memory of the local
        # cluster"), and what its client grew this process by is reported beside it.
        out["memory_mib"] = (started + (own_growth if engine.in_process else 0)) / 2**20
        out["client_memory_mib"] = None if engine.in_process else own_growth / 2**20
        return out
    finally:
        engine.close()


def _throughput(engine: Engine, queries: np.ndarray, clients: int) -> dict[str, Any]:
    """Searches/s with ``clients`` threads searching at once (each query twice), and their latencies."""
    lat: list[list[float]] = [[] for _ in range(clients)]

    def client(c: int) -> None:
        for _ in range(2):
            for q in queries[c::clients]:
                s = time.perf_counter()
                engine.search(q, K)
                lat[c].append((time.perf_counter() - s) * 1000.0)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    wall = time.perf_counter() - t0
    every = [x for per in lat for x in per]
    return {"clients": clients, "searches_per_s": len(every) / wall, "latency": summarize(every).to_dict()}


def _own_rss() -> int:
    """Resident bytes of this process."""
    return int(psutil.Process().memory_info().rss)


def _started_rss() -> int:
    """Resident bytes of every process this one started (a local cluster's, for instance)."""
    total = 0
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def _is_peer(name: str) -> bool:
    return not name.startswith("vecraft")


def _where_we_lose(results: dict[str, dict[str, Any]]) -> list[str]:
    """Vecraft's default (standalone) layout against each peer."""
    ours = results.get("vecraft", {})
    lines = []
    if "error" in ours or not ours:
        return ["- Vecraft did not complete; no comparison."]
    for peer, theirs in results.items():
        if not _is_peer(peer) or "error" in theirs:
            continue
        checks = [("ingest until searchable", ours["ingest_vectors_per_s"], theirs["ingest_vectors_per_s"],
                   "vectors/s", True),
                  ("search P95", ours["search"]["p95"], theirs["search"]["p95"], "ms", False),
                  ("filtered search P95", ours["filtered"]["p95"], theirs["filtered"]["p95"], "ms", False),
                  ("recall@10", ours["search_recall"], theirs["search_recall"], "", True),
                  ("filtered recall@10", ours["filtered_recall"], theirs["filtered_recall"], "", True),
                  ("searches/s under load", ours["throughput"]["searches_per_s"],
                   theirs["throughput"]["searches_per_s"], "", True),
                  ("memory", ours["memory_mib"], theirs["memory_mib"], "MiB", False)]
        for what, a, b, unit, higher_better in checks:
            worse = a < b if higher_better else a > b
            if worse and abs(a - b) > 1e-3 * max(abs(b), 1e-9):
                digits = 3 if what.endswith("recall@10") else 1
                lines.append(f"- vs {peer}, {what}: Vecraft {fmt(a, digits)} {unit} vs {fmt(b, digits)} "
                             f"{unit} (x{fmt(ratio(a, b), 2)})")
    return lines or ["- Nowhere in this run."]


def render(result: dict[str, Any]) -> str:
    res = result["engines"]
    rows = []
    for name, r in res.items():
        if "error" in r:
            rows.append([name, f"failed: {r['error']}", *["-"] * 12])
            continue
        strong, paired = r.get("search_strong"), r.get("search_strong_eventual")
        load = r["throughput"]
        rows.append([name, fmt(r["ingest_vectors_per_s"], 0), fmt(r["search"]["p50"], 2),
                     fmt(r["search"]["p95"], 2),
                     f"{fmt(strong['p95'], 2)} ({fmt(paired['p95'], 2)})" if strong and paired else "-",
                     fmt(r["search_recall"], 3), fmt(r["filtered"]["p50"], 2),
                     fmt(r["filtered"]["p95"], 2), fmt(r["filtered_recall"], 3), fmt(r["ingest_acked_s"], 1),
                     fmt(load["searches_per_s"], 0), fmt(load["latency"]["p99"], 1), fmt(r["memory_mib"], 0),
                     fmt(r.get("client_memory_mib"), 0)])
    header = ["engine", "ingest until searchable (vectors/s)", "search P50 ms", "search P95 ms",
              "strong P95 ms (eventual, interleaved)", "recall@10", "filtered P50 ms", "filtered P95 ms",
              "filtered recall@10",
              "ingest acked (s)", f"searches/s, {result['clients']} clients", "P99 ms under load",
              "memory MiB", "client MiB"]
    ratios = []
    for mine, ours in res.items():
        if _is_peer(mine) or "error" in ours:
            continue
        for peer, theirs in res.items():
            if not _is_peer(peer) or "error" in theirs:
                continue
            ratios.append([mine, peer,
                           fmt(ratio(ours["ingest_vectors_per_s"], theirs["ingest_vectors_per_s"]), 2),
                           fmt(ratio(ours["search"]["p95"], theirs["search"]["p95"]), 2),
                           fmt(ratio(ours["filtered"]["p95"], theirs["filtered"]["p95"]), 2),
                           fmt(ratio(ours["search_recall"], theirs["search_recall"]), 3),
                           fmt(ratio(ours["throughput"]["searches_per_s"],
                                     theirs["throughput"]["searches_per_s"]), 2),
                           fmt(ratio(ours["memory_mib"], theirs["memory_mib"]), 2)])
    d = result["data"]
    return "\n".join([
        "# Peers benchmark: Vecraft vs Chroma vs Milvus Lite", "",
        environment_markdown(result["environment"]),
        (f"- Data: {d['name']} ({d['source']}), {d['n']:,} vectors x {d['dim']}, cosine, "
        f"{d['queries']} queries, "
        f"k={K}; filtered queries use `category == i % 10` (~10% selectivity). HNSW M={result['m']}, "
        f"ef_construction={result['ef_construction']}, ef_search={result['ef']} for every engine; "
        f"write batches of {result['batch']} rows."),
        (f"- Vecraft: local cluster of {result['vecraft_shards']} shards through HTTP (`vecraft`: standalone "
        f"mode, every service in one process, `vecraft up`'s default; `vecraft-distributed`: one process "
        f"per service), eventual reads (strong P95: the same queries at level strong), "
        f"writes with ack=all (every replica applied), one request at a time. Chroma: embedded in the "
        f"benchmark process (no network hop). Milvus Lite: pymilvus client to its embedded server "
        f"(milvus-lite 3.x serves gRPC from a thread of the benchmark's process); flush() after the load."),
        ("- Latency is per request, sequential (one in flight), after "
        f"{WARMUP_QUERIES} warm-up queries; under load, {result['clients']} threads of the benchmark search "
        f"at once (each query twice; Vecraft: one HTTP client per thread). Memory, after the searches: "
        f"Vecraft's is the resident bytes of its local cluster's processes (`vecraft up` and what it "
        f"started); an embedded engine's (Chroma, Milvus Lite) is what the benchmark's process grew by "
        f"since before the engine started, plus any process it started. `client MiB`: what Vecraft's "
        f"SDK clients and the load generator grew the benchmark's process by (not part of the ratio)."), "",
        table(header, rows), "",
        "## Vecraft / peer", "",
        "Ingest and searches/s > 1 and latency and memory < 1 favour Vecraft.", "",
        table(["vecraft", "peer", "ingest", "search P95", "filtered P95", "recall@10", "searches/s",
               "memory"], ratios), "",
        "## Where Vecraft loses", "", *_where_we_lose(res), "",
    ])


def _run_engines(args: argparse.Namespace, data: Dataset, truth: np.ndarray, truth_f: np.ndarray,
                 results: dict[str, dict[str, Any]]) -> None:
    for name in args.engines.split(","):
        print(f"{name}: running", flush=True)
        try:
            engine = make_engine(name, vecraft_shards=args.shards)
            results[name] = measure(engine, data, truth, truth_f, args)
        except Exception as exc:  # noqa: BLE001 - a peer that fails is reported, the others still run
            traceback.print_exc()
            results[name] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        r = results[name]
        if "error" not in r:
            print(f"  ingest {r['ingest_vectors_per_s']:.0f}/s  search P95 {r['search']['p95']:.2f} ms "
                  f"recall {r['search_recall']:.3f}  filtered P95 {r['filtered']['p95']:.2f} ms "
                  f"recall {r['filtered_recall']:.3f}", flush=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vecraft bench peers", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="small",
                   help="small: 100K vectors, 500 queries; spec: 1M vectors, 1000 queries")
    p.add_argument("--dim", type=int, default=128, help="dimension of the synthetic data (default 128)")
    p.add_argument("--vectors", type=int, default=None, help="override the scale's number of vectors")
    p.add_argument("--engines", default=",".join(ENGINE_NAMES),
                   help=f"comma list of {', '.join(ENGINE_NAMES)}")
    p.add_argument("--shards", type=int, default=3, help="Vecraft's shard count")
    p.add_argument("--m", type=int, default=16, help="HNSW M of every engine (default 16)")
    p.add_argument("--ef-construction", type=int, default=100,
                   help="HNSW ef_construction of every engine (default 100)")
    p.add_argument("--ef", type=int, default=64, help="ef_search of every engine")
    p.add_argument("--batch", type=int, default=5000, help="rows per write request")
    p.add_argument("--seed", type=int, default=42, help="random seed of the data (default 42)")
    p.add_argument("--clients", type=int, default=16,
                   help="threads searching at once in the throughput run (default 16)")
    add_output_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    stop_on_sigterm()
    env = environment("peers", argv)
    size = SCALES[args.scale]
    n = args.vectors or size["n"]
    data = gaussian_mixture(n, args.dim, queries=size["queries"], seed=args.seed)
    truth = exact_topk(data.vectors, data.queries, K, data.metric)
    truth_f = filtered_truth(data, K)
    results: dict[str, dict[str, Any]] = {}
    try:
        _run_engines(args, data, truth, truth_f, results)
    finally:
        stop_leftovers()
    result = {"environment": env, "data": {"name": data.name, "source": data.source, "n": data.n,
                                           "dim": data.dim, "queries": len(data.queries)},
              "m": args.m, "ef_construction": args.ef_construction, "ef": args.ef, "batch": args.batch,
              "vecraft_shards": args.shards, "clients": args.clients, "engines": results}
    if args.no_report:
        print(render(result))
    else:
        json_path, md_path = write_outputs(args.out, "peers", args.scale, result, render(result))
        print(f"wrote {json_path} and {md_path}")
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
