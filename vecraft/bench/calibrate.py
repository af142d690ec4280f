"""Measurements behind the index layer's constants: ``vecraft bench calibrate {crossover,apply-wait,recall}``
(docs/indexes.md quotes their output).

- :func:`measure_crossover`: exact numpy scan vs filtered HNSW by candidate
  count, the basis of ``EXACT_SEARCH_MAX_CANDIDATES``;
- :func:`measure_apply_wait`: search latency while a big upsert runs, the
  basis of ``ADD_SECTION_SECONDS``;
- :func:`measure_recall`: build rate, search latency and recall@k per metric.

Each returns plain dicts (JSON-ready); the command prints them.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import orjson

from vecraft.bench._datasets import exact_topk
from vecraft.bench._env import environment, environment_markdown
from vecraft.bench._report import add_output_arguments, write_outputs
from vecraft.shared.index.collection import MAX_EF, CollectionIndex
from vecraft.shared.model.filters import parse_filter
from vecraft.shared.model.limits import dynamic_ef

_BUCKETS = 100_000


def clustered_vectors(n: int, dim: int, *, clusters: int = 64, queries: int = 0,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian mixture (fixed seed): ``n`` data vectors and ``queries`` query vectors."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32) * 4
    total = n + queries
    points = centers[rng.integers(0, clusters, total)] + rng.standard_normal((total, dim)).astype(
        np.float32)
    return points[:n], points[n:]


def _build(n: int, dim: int, metric: str, seed: int, queries: int, with_buckets: bool
           ) -> tuple[CollectionIndex, np.ndarray, np.ndarray, float]:
    data, qs = clustered_vectors(n, dim, queries=queries, seed=seed)
    index = CollectionIndex(dim=dim, metric=metric)
    buckets = np.random.default_rng(seed + 1).integers(0, _BUCKETS, n).tolist()
    metas = [{"bucket": b} for b in buckets] if with_buckets else [None] * n
    began = time.perf_counter()
    index.upsert([f"v{i}" for i in range(n)], data, metas)
    return index, data, qs, time.perf_counter() - began


def _timed_ms(fn: Callable[[Any], Any], repeats: Iterable[Any]) -> tuple[float, list[Any]]:
    results: list[Any] = []
    times: list[float] = []
    for arg in repeats:
        began = time.perf_counter()
        results.append(fn(arg))
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times), results


def measure_crossover(n: int = 50_000, dim: int = 128, k: int = 10, queries: int = 100,
                      candidates: Sequence[int] = (500, 1000, 2000, 4000, 6000, 8000, 12000, 16000,
                                                   24000, 32000),
                      seed: int = 0) -> dict[str, Any]:
    """Median latency of an exact scan vs filtered HNSW for filters keeping ``c`` rows.

    The filter is a range on a uniform integer field, so it keeps about ``c``
    rows. ``crossover`` is the smallest measured count where HNSW wins. Rows
    where the selectivity-scaled ef would pass ``MAX_EF`` have no HNSW
    figure: the planner never walks the graph for them.
    """
    index, _, qs, build_s = _build(n, dim, "cosine", seed, queries, with_buckets=True)
    rows = []
    for count in [c for c in candidates if c < n]:
        flt = parse_filter({"bucket": {"$lt": int(_BUCKETS * count / n)}})
        index.exact_search_max_candidates = n
        exact_ms, exact = _timed_ms(lambda q: index.search(q, k, flt)[0], qs)  # noqa: B023
        row: dict[str, Any] = {"candidates": count, "exact_ms": round(exact_ms, 3)}
        # Past the ef cap the HNSW path itself falls back to the exact scan: nothing to compare.
        if math.ceil((index.ef_search or dynamic_ef(k)) * n / count) <= MAX_EF:
            index.exact_search_max_candidates = 0
            hnsw_ms, approx = _timed_ms(lambda q: index.search(q, k, flt)[0], qs)  # noqa: B023
            recall = np.mean([len(set(a) & set(e)) / max(1, len(e))
                              for a, e in zip(approx, exact, strict=True)])
            row.update(hnsw_ms=round(hnsw_ms, 3), hnsw_recall=round(float(recall), 4))
        rows.append(row)
    index.exact_search_max_candidates = None
    crossover = next((r["candidates"] for r in rows if r.get("hnsw_ms", math.inf) < r["exact_ms"]),
                     None)
    return {"n": n, "dim": dim, "k": k, "build_s": round(build_s, 2), "rows": rows,
            "crossover": crossover}


def measure_apply_wait(n_base: int = 20_000, n_apply: int = 20_000, dim: int = 128, k: int = 10,
                       seed: int = 0) -> dict[str, Any]:
    """Search latency while one upsert of ``n_apply`` rows runs in another thread, vs idle."""
    index, _, qs, _ = _build(n_base, dim, "cosine", seed, 200, with_buckets=False)
    extra, _ = clustered_vectors(n_apply, dim, seed=seed + 7)
    idle_ms = _latencies(index, qs, k, stop=None)
    done = threading.Event()

    def apply() -> None:
        began = time.perf_counter()
        index.upsert([f"x{i}" for i in range(n_apply)], extra, [None] * n_apply)
        stats["apply_s"] = time.perf_counter() - began
        done.set()

    stats: dict[str, float] = {}
    worker = threading.Thread(target=apply)
    worker.start()
    busy_ms = _latencies(index, qs, k, stop=done)
    worker.join()

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {"searches": len(values), "p50_ms": round(ordered[len(values) // 2], 3),
                "p99_ms": round(ordered[int(len(values) * 0.99)], 3), "max_ms": round(ordered[-1], 3)}

    return {"n_base": n_base, "n_apply": n_apply, "dim": dim, "apply_s": round(stats["apply_s"], 2),
            "apply_rows_per_s": round(n_apply / stats["apply_s"]), "idle": summary(idle_ms),
            "during_apply": summary(busy_ms)}


def _latencies(index: CollectionIndex, qs: np.ndarray, k: int,
               stop: threading.Event | None) -> list[float]:
    times = []
    i = 0
    while (stop is None and i < len(qs)) or (stop is not None and not stop.is_set()):
        began = time.perf_counter()
        index.search(qs[i % len(qs)], k)
        times.append((time.perf_counter() - began) * 1000)
        i += 1
    return times


def measure_recall(n: int = 50_000, dim: int = 128, k: int = 10, queries: int = 200,
                   metrics: Sequence[str] = ("cosine", "l2", "ip"), seed: int = 0) -> dict[str, Any]:
    """Build rate, median search latency and recall@k against brute force, per metric."""
    out = []
    for metric in metrics:
        index, data, qs, build_s = _build(n, dim, metric, seed, queries, with_buckets=False)
        truth = exact_topk(data, qs, k, metric)
        search_ms, found = _timed_ms(lambda q: index.search(q, k)[0], qs)  # noqa: B023
        recall = np.mean([len({int(i[1:]) for i in f} & set(t.tolist())) / k
                          for f, t in zip(found, truth, strict=True)])
        out.append({"metric": metric, "build_s": round(build_s, 2),
                    "build_rows_per_s": round(n / build_s), "search_p50_ms": round(search_ms, 3),
                    f"recall_at_{k}": round(float(recall), 4)})
    return {"n": n, "dim": dim, "k": k, "results": out}


MEASUREMENTS = ("crossover", "apply-wait", "recall")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vecraft bench calibrate", description=__doc__.splitlines()[0])
    p.add_argument("what", nargs="?", choices=[*MEASUREMENTS, "all"], default="all",
                   help="which measurement (default all)")
    p.add_argument("--n", type=int, default=50_000, help="vectors in the index measured (default 50000)")
    p.add_argument("--dim", type=int, default=128, help="their dimension (default 128)")
    add_output_arguments(p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = environment("calibrate", list(argv if argv is not None else sys.argv[1:]))
    chosen = MEASUREMENTS if args.what == "all" else (args.what,)
    result: dict[str, Any] = {"environment": env}
    for what in chosen:
        if what == "crossover":
            result[what] = measure_crossover(n=args.n, dim=args.dim)
        elif what == "apply-wait":
            result[what] = measure_apply_wait(n_base=args.n // 2, n_apply=args.n // 2, dim=args.dim)
        else:
            result[what] = measure_recall(n=args.n, dim=args.dim)
    figures = orjson.dumps({k: v for k, v in result.items() if k != "environment"},
                           option=orjson.OPT_INDENT_2).decode()
    if args.no_report:
        sys.stdout.write(figures + "\n")
        return 0
    markdown = "\n".join(["# Index calibration", "", environment_markdown(env), "",
                          "```json", figures, "```"])
    json_path, md_path = write_outputs(args.out, "calibrate", f"n{args.n}", result, markdown)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
