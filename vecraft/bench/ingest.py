"""Acknowledged ingest throughput (vectors/s) end to end, by batch size, dimension and ack mode.

One local cluster; for every (dim, batch size, ack) a fresh collection is
filled through the HTTP gateway with ``--concurrency`` write requests in
flight. "Acked" is the time until the last write was acknowledged (with
``ack=all``: durable in the journal and applied by every live replica);
"searchable" adds the wait until an eventual search finds the last vector.
Back-pressure answers (429) are retried after their Retry-After and counted.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from vecraft.bench._cluster import ClusterSpec, LocalCluster, bench_run
from vecraft.bench._datasets import gaussian_mixture
from vecraft.bench._env import environment, environment_markdown
from vecraft.bench._http import BenchHttp, load_dataset, wait_searchable
from vecraft.bench._report import add_output_arguments, fmt, table, write_outputs
from vecraft.bench._spec import HNSW
from vecraft.local.process import free_port

SCALES = {"small": {128: 20_000, 512: 10_000, 1536: 5_000},
          "spec": {128: 1_000_000, 512: 500_000, 1536: 100_000}}
TARGET_VECTORS_PER_S = 7000


async def _run(args: argparse.Namespace, work: Path) -> tuple[list[dict[str, Any]], float]:
    spec = ClusterSpec(data_dir=work / "cluster", shards=args.shards, apply_delay_ms=0,
                       http_port=free_port(), grpc_port=free_port())
    rows: list[dict[str, Any]] = []
    async with LocalCluster(spec) as cluster, BenchHttp(spec.base_url) as http:
        for dim in args.dims:
            n = args.vectors or SCALES[args.scale][dim]
            data = gaussian_mixture(n, dim, queries=1, seed=args.seed + dim)
            ids, metas = data.ids(), data.metadatas()
            for batch in args.batches:
                for ack in args.acks:
                    name = f"ingest_d{dim}_b{batch}_{ack}"
                    await http.create_collection(name, dim, metric="cosine", shards=args.shards, hnsw=HNSW)
                    throttled0 = http.throttled
                    t0 = time.perf_counter()
                    acked = await load_dataset(http, name, data.vectors, ids, metas, batch=batch, ack=ack,
                                               concurrency=args.concurrency)
                    searchable = acked + await wait_searchable(http, name, data.vectors[-1], ids[-1],
                                                                  timeout_s=600)
                    row = {"dim": dim, "batch": batch, "ack": ack, "vectors": n, "acked_s": acked,
                           "searchable_s": searchable, "acked_per_s": n / acked,
                           "searchable_per_s": n / searchable, "throttled": http.throttled - throttled0,
                           "wall_s": time.perf_counter() - t0}
                    rows.append(row)
                    print(f"  {dim}d batch {batch:>5} ack={ack:<7} "
                          f"{row['acked_per_s']:8.0f} vectors/s acked, "
                          f"{row['searchable_per_s']:8.0f} until searchable, {row['throttled']} x 429",
                          flush=True)
        return rows, cluster.startup_s


def render(result: dict[str, Any]) -> str:
    rows = [[r["dim"], r["batch"], r["ack"], r["vectors"], fmt(r["acked_s"], 2), fmt(r["acked_per_s"], 0),
             fmt(r["searchable_per_s"], 0), r["throttled"]] for r in result["rows"]]
    best = max((r for r in result["rows"] if r["dim"] == 128 and r["ack"] == "all"),
               key=lambda r: r["acked_per_s"], default=None)
    goal = "- No 128-d ack=all run." if best is None else (
        f"- Acknowledged ingest >= {TARGET_VECTORS_PER_S:,} vectors/s (128-d, ack=all): "
        f"{'met' if best['acked_per_s'] >= TARGET_VECTORS_PER_S else 'MISSED'} "
        f"(best {fmt(best['acked_per_s'], 0)} vectors/s at batch {best['batch']}).")
    return "\n".join([
        "# Ingest benchmark: acknowledged vectors/s end to end", "",
        environment_markdown(result["environment"]),
        (f"- Scale `{result['scale']}`; cluster of {result['shards']} shards x 1 replica started in "
        f"{fmt(result['startup_s'])} s; {result['concurrency']} write request(s) in flight; binary vectors "
        f"(vectors_b64) with metadata; HNSW {HNSW}; a fresh collection per row."), "",
        ("`ack=all`: answered when durable in the journal and applied by every live replica; "
        "`ack=journal`: when durable in the journal. `429` = back-pressure answers retried."), "",
        table(["dim", "batch", "ack", "vectors", "acked s", "vectors/s acked", "vectors/s until searchable",
               "429"], rows), "",
        "## Target", "", goal, ""])


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vecraft bench ingest", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="small",
                   help="vectors per dimension: small for a quick look, larger for reports (default small)")
    p.add_argument("--dims", type=_ints, default=[128, 512, 1536],
                   help="comma-separated dimensions (default 128,512,1536)")
    p.add_argument("--batches", type=_ints, default=[100, 1000, 5000, 10000],
                   help="comma-separated rows per write request (default 100,1000,5000,10000)")
    p.add_argument("--acks", type=lambda s: s.split(","), default=["all", "journal"],
                   help="comma-separated ack policies to measure: journal, one, all (default all,journal)")
    p.add_argument("--vectors", type=int, default=None, help="override the scale's vectors per dim")
    p.add_argument("--concurrency", type=int, default=2, help="write requests in flight")
    p.add_argument("--shards", type=int, default=3, help="shards of the local cluster (default 3)")
    p.add_argument("--seed", type=int, default=42, help="random seed of the data (default 42)")
    add_output_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    env = environment("ingest", argv)
    with bench_run("ingest") as work:
        rows, startup = asyncio.run(_run(args, work))
    result = {"environment": env, "scale": args.scale, "shards": args.shards, "concurrency": args.concurrency,
              "startup_s": startup, "rows": rows}
    if args.no_report:
        print(render(result))
        return 0
    json_path, md_path = write_outputs(args.out, "ingest", args.scale, result, render(result))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
