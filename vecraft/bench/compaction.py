"""Disk under an upsert-heavy load: journal and storage bytes while the same ids are rewritten.

One ``vecraft up --trim-without-backup`` (standalone) holds ``--ids`` x ``--dim``
vectors; the same ids are then rewritten ``--rounds`` times (upserts in batches of
``--batch``, ``ack=all``). After each round: the journal's bytes (segment files), the
storage nodes' bytes (record files, location indexes, index snapshots), and the P95
of ``--searches`` eventual searches run while the background work (journal GC,
record-file compaction, index rebuilds) goes on. The journal uses
``--segment-bytes`` segments and a ``--request-id-window-s`` idempotency window so
a short run shows the steady state a long one reaches with the defaults (64 MiB,
24 h). A plain write-only run (no compactor) is the curve to compare with: it
grows by one round's bytes per round.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from vecraft.bench._cluster import ClusterSpec, LocalCluster, bench_run, memory_shortfall
from vecraft.bench._env import environment, environment_markdown
from vecraft.bench._http import BenchHttp, search_body
from vecraft.bench._report import add_output_arguments, fmt, table, write_outputs
from vecraft.bench._spec import HNSW
from vecraft.bench._stats import percentile
from vecraft.local.process import free_port

COLLECTION = "compaction_bench"
MB = 1e6


def dir_bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def disk(data_dir: Path) -> dict[str, int]:
    """Bytes on disk now: journal segments, and the storage nodes' record files, location indexes and
    index snapshots."""
    storage = data_dir / "storage"
    return {"journal": dir_bytes(data_dir / "journal", "*.wal"),
            "records": dir_bytes(storage, "records*.bin"),
            "locations": dir_bytes(storage, "locations.sqlite*"),
            "snapshots": sum(dir_bytes(p) for p in storage.rglob("snapshot") if p.is_dir())}


async def _upsert(http: BenchHttp, ids: list[str], vectors: np.ndarray) -> None:
    body = {"collection": COLLECTION, "ids": ids, "dim": int(vectors.shape[1]), "ack": "all",
            "vectors_b64": base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode()}
    resp = await http._post_retrying("/v1/vectors/upsert", orjson.dumps(body), retry_429_s=600.0)
    if resp.status_code not in (200, 201):
        raise RuntimeError(f"upsert: {resp.status_code} {resp.text[:300]}")


async def _search_p95(http: BenchHttp, queries: np.ndarray) -> float:
    took = []
    for q in queries:
        started = time.perf_counter()
        await http.search_ids(search_body(COLLECTION, q, k=10, level="eventual"))
        took.append((time.perf_counter() - started) * 1000)
    return percentile(took, 95)


async def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    ids = [f"id-{i}" for i in range(args.ids)]
    queries = rng.standard_normal((args.searches, args.dim)).astype(np.float32)
    spec = ClusterSpec(data_dir=work / "data", shards=args.shards, apply_delay_ms=0, http_port=free_port(),
                       grpc_port=free_port(), extra_args=("--trim-without-backup",))
    rounds: list[dict[str, Any]] = []
    async with LocalCluster(spec), BenchHttp(spec.base_url) as http:
        await http.create_collection(COLLECTION, args.dim, metric="l2", shards=args.shards, hnsw=HNSW)
        for round_ in range(args.rounds + 1):
            vectors = rng.standard_normal((args.ids, args.dim)).astype(np.float32)
            started = time.perf_counter()
            for lo in range(0, args.ids, args.batch):
                await _upsert(http, ids[lo:lo + args.batch], vectors[lo:lo + args.batch])
            write_s = time.perf_counter() - started
            p95 = await _search_p95(http, queries)
            rounds.append({"round": round_, "write_s": write_s, "search_p95_ms": p95, **disk(spec.data_dir)})
            print(f"round {round_}: {rounds[-1]}", flush=True)
        # Idle: the background work finishes what the last rounds left.
        await asyncio.sleep(args.settle_s)
        settled = {"search_p95_ms": await _search_p95(http, queries), **disk(spec.data_dir)}
    return {"ids": args.ids, "dim": args.dim, "shards": args.shards, "batch": args.batch,
            "segment_bytes": args.segment_bytes, "request_id_window_s": args.request_id_window_s,
            "gc_interval_s": args.gc_interval_s, "rounds": rounds, "settled": settled,
            "round_payload_bytes": args.ids * args.dim * 4}


def _total(row: dict[str, Any]) -> int:
    return int(row["journal"] + row["records"] + row["locations"] + row["snapshots"])


def render(result: dict[str, Any]) -> str:
    env = result["environment"]
    rows = result["rounds"]
    mb = [(r["round"], fmt(r["journal"] / MB), fmt(r["records"] / MB), fmt(r["locations"] / MB),
           fmt(r["snapshots"] / MB), fmt(_total(r) / MB), fmt(r["search_p95_ms"], 2), fmt(r["write_s"]))
          for r in rows]
    settled = result["settled"]
    mb.append(("settled", fmt(settled["journal"] / MB), fmt(settled["records"] / MB),
               fmt(settled["locations"] / MB), fmt(settled["snapshots"] / MB), fmt(_total(settled) / MB),
               fmt(settled["search_p95_ms"], 2), ""))
    per_round = result["round_payload_bytes"] / MB
    grown = _total(rows[-1]) - _total(rows[len(rows) // 2])
    lines = [
        "# Disk under rewrites (`vecraft bench compaction`)", "",
        environment_markdown(env), "",
        f"{result['ids']:,} ids x {result['dim']} dims ({per_round:.1f} MB of vectors per round), rewritten "
        f"{len(rows) - 1} times after the first load in batches of {result['batch']} (`ack=all`), "
        f"{result['shards']} shards, standalone `vecraft up --trim-without-backup`; journal segments of "
        f"{result['segment_bytes'] / (1 << 20):g} MiB, idempotency window {result['request_id_window_s']} s, "
        f"GC every {result['gc_interval_s']} s. Bytes after each round (MB):", "",
        table(["round", "journal", "record files", "location index", "index snapshots", "total",
               "search P95 ms", "round write s"], mb), "",
        f"Growth over the second half of the run: {grown / MB:+.1f} MB in {len(rows) - 1 - len(rows) // 2} "
        f"rounds, against {per_round:.1f} MB of new vectors per round (without compaction every round adds "
        f"at least that much to the journal and again to the record files).",
    ]
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vecraft bench compaction", description=__doc__.split("\n\n")[0])
    p.add_argument("--ids", type=int, default=10_000, help="ids rewritten each round (default 10000)")
    p.add_argument("--dim", type=int, default=128, help="vector dimension (default 128)")
    p.add_argument("--rounds", type=int, default=20, help="rewrites after the first load (default 20)")
    p.add_argument("--shards", type=int, default=2, help="shards of the collection (default 2)")
    p.add_argument("--batch", type=int, default=1000, help="rows per upsert request (default 1000)")
    p.add_argument("--searches", type=int, default=100, help="searches timed after each round (default 100)")
    p.add_argument("--segment-bytes", type=int, default=4 << 20,
                   help="journal segment size (default 4 MiB; the journal trims whole segments)")
    p.add_argument("--request-id-window-s", type=float, default=5.0,
                   help="the journal's idempotency window: younger entries are never trimmed (default 5)")
    p.add_argument("--gc-interval-s", type=float, default=2.0,
                   help="how often the compactor runs (default 2)")
    p.add_argument("--settle-s", type=float, default=15.0,
                   help="idle seconds after the last round before the final sizes (default 15)")
    p.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    add_output_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.ids < 1 or args.dim < 1 or args.rounds < 1 or args.shards < 1 or args.batch < 1:
        print("vecraft bench compaction: --ids, --dim, --rounds, --shards and --batch must be >= 1",
              file=sys.stderr)
        return 2
    if shortfall := memory_shortfall(args.shards):
        print(f"vecraft bench compaction: the cluster would not fit: {shortfall}", file=sys.stderr)
        return 2
    env = environment("compaction", argv)
    # The cluster's services read these (flags of the journal and the compactor under `vecraft up`).
    os.environ.update({"VECRAFT_SEGMENT_BYTES": str(args.segment_bytes),
                       "VECRAFT_REQUEST_ID_RETENTION_S": str(args.request_id_window_s),
                       "VECRAFT_GC_INTERVAL_S": str(args.gc_interval_s)})
    with bench_run("compaction") as work:
        result = asyncio.run(_run(args, work))
    result["environment"] = env
    markdown = render(result)
    if args.no_report:
        print(markdown)
        return 0
    json_path, md_path = write_outputs(args.out, "compaction", f"{args.ids // 1000}k-{args.dim}", result,
                                       markdown)
    print(f"wrote {json_path} and {md_path}")
    return 0
