"""Bulk-import throughput (rows/s) from Parquet, against the ingest benchmark's loader on the same vectors.

One run: write a Parquet file of ``--vectors`` x ``--dim`` vectors (timed on
its own), start one local cluster, then fill two collections of the same
shape, one after the other:

- ``import``: ``client.import_file(path, collection, chunk_rows=..., parallel=...,
  ack="all")``, the code path behind ``vecraft import`` (sync SDK over HTTP,
  the file read in chunks, each chunk one journal entry);
- ``ingest loader``: ``vecraft bench ingest``'s own loader (``load_dataset``,
  binary vectors, ``ack=all``) with the same batch size and requests in
  flight, on the same vectors, ids and metadata held in memory.

"Acked" is the time until the last chunk was acknowledged (durable in the
journal and applied by every live replica); "searchable" adds the wait until
an eventual search finds the last row. Both share the machine and the cluster,
so their ratio is the figure to read; the load average and the CPU seconds of
the benchmark process (the client) and of the cluster are recorded per cell.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from vecraft.bench._cluster import ClusterSpec, LocalCluster, bench_run, memory_shortfall
from vecraft.bench._datasets import CATEGORIES
from vecraft.bench._env import environment, environment_markdown
from vecraft.bench._http import BenchHttp, load_dataset, wait_searchable
from vecraft.bench._report import add_output_arguments, fmt, table, write_outputs
from vecraft.bench._spec import HNSW
from vecraft.local.process import free_port
from vecraft.shared.model.limits import MAX_BATCH_ROWS

#: Rows generated (and written as one Parquet row group) at a time: bounds the writer's memory.
GEN_ROWS = 50_000
#: The Gaussian mixture of ``_datasets.gaussian_mixture``: centres N(0, I), points centre + 0.6 N(0, I).
CLUSTERS = 100
SPREAD = 0.6
#: Per-request timeout of the SDK client: the default of ``vecraft import --timeout``.
IMPORT_TIMEOUT_S = 60.0
METHODS = ("import", "ingest loader")


@dataclass(slots=True)
class Rows:
    """Consecutive generated rows: vectors plus the two metadata columns of the benchmark data."""

    start: int
    vectors: np.ndarray  # (rows, dim) float32
    category: np.ndarray  # (rows,) int64, 0..CATEGORIES-1
    num: np.ndarray  # (rows,) int64, 0..99

    def ids(self) -> list[str]:
        return [f"v{i}" for i in range(self.start, self.start + len(self.vectors))]

    def metadatas(self) -> list[dict[str, int]]:
        return [{"category": int(c), "num": int(x)} for c, x in zip(self.category, self.num, strict=True)]


def generate(n: int, dim: int, *, seed: int, rows: int = GEN_ROWS) -> Iterator[Rows]:
    """``n`` rows of a seeded Gaussian mixture, ``rows`` at a time (the same seed gives the same rows)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((CLUSTERS, dim), dtype=np.float32)
    for lo in range(0, n, rows):
        m = min(rows, n - lo)
        which = rng.integers(0, CLUSTERS, size=m)
        vecs = centers[which] + np.float32(SPREAD) * rng.standard_normal((m, dim), dtype=np.float32)
        yield Rows(lo, np.ascontiguousarray(vecs, dtype=np.float32),
                   rng.integers(0, CATEGORIES, size=m), rng.integers(0, 100, size=m))


def write_parquet(path: Path, n: int, dim: int, *, seed: int) -> dict[str, Any]:
    """Write the import file: ``id``, ``vector`` (list<float32>), ``metadata`` (JSON text).

    The layout ``vecraft export`` writes and ``vecraft import`` reads (docs/import-export.md).
    Returns the seconds taken, the file's size and the last row's vector (to wait for it).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("vector", pa.list_(pa.float32())), ("metadata", pa.string())])
    t0 = time.perf_counter()
    last = np.empty(0, np.float32)
    with pq.ParquetWriter(path, schema) as writer:
        for part in generate(n, dim, seed=seed):
            m = len(part.vectors)
            offsets = pa.array(np.arange(0, (m + 1) * dim, dim, dtype=np.int32))
            vec = pa.ListArray.from_arrays(offsets, pa.array(part.vectors.reshape(-1), type=pa.float32()))
            meta = [f'{{"category":{c},"num":{x}}}' for c, x in zip(part.category.tolist(), part.num.tolist(),
                                                                       strict=True)]
            writer.write_table(pa.Table.from_arrays([pa.array(part.ids(), pa.string()), vec,
                                                     pa.array(meta, pa.string())], schema=schema))
            last = part.vectors[-1].copy()
    seconds = time.perf_counter() - t0
    return {"path": str(path), "rows": n, "dim": dim, "bytes": path.stat().st_size, "write_s": seconds,
            "write_rows_per_s": n / seconds if seconds > 0 else float("nan"), "last_vector": last}


def in_memory(n: int, dim: int, *, seed: int) -> tuple[np.ndarray, list[str], list[dict[str, int]]]:
    """The same rows as the file, whole, as the ingest loader takes them."""
    vectors = np.empty((n, dim), np.float32)
    ids: list[str] = []
    metas: list[dict[str, int]] = []
    for part in generate(n, dim, seed=seed):
        vectors[part.start:part.start + len(part.vectors)] = part.vectors
        ids += part.ids()
        metas += part.metadatas()
    return vectors, ids, metas


class Meter:
    """Load average (sampled every ``every_s``) and CPU seconds of this process and the cluster, per cell."""

    def __init__(self, cluster_pids: list[int], every_s: float = 2.0) -> None:
        self._procs = [p for p in (_process(pid) for pid in cluster_pids) if p is not None]
        self._every = every_s
        self._samples: list[float] = []
        self._task: asyncio.Task[None] | None = None
        self._t0 = self._client0 = self._cluster0 = 0.0

    def _cluster_cpu(self) -> float:
        total = 0.0
        for proc in self._procs:
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            total += t.user + t.system
        return total

    async def _sample(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            self._samples.append(os.getloadavg()[0])

    def start(self) -> None:
        self._samples = [os.getloadavg()[0]]
        self._client0, self._cluster0 = time.process_time(), self._cluster_cpu()
        self._task = asyncio.create_task(self._sample(), name="bench-bulk-load-sampler")

    async def stop(self) -> dict[str, Any]:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        end = os.getloadavg()[0]
        samples = [*self._samples, end]
        return {"load_1m_start": round(samples[0], 2), "load_1m_mean": round(sum(samples) / len(samples), 2),
                "load_1m_end": round(end, 2), "client_cpu_s": round(time.process_time() - self._client0, 1),
                "cluster_cpu_s": round(self._cluster_cpu() - self._cluster0, 1)}


def _process(pid: Any) -> psutil.Process | None:
    try:
        return psutil.Process(int(pid))
    except (TypeError, ValueError, psutil.Error):
        return None


def _progress(label: str, total: int) -> Any:
    """A progress callback printing every tenth of ``total``."""
    step = max(1, total // 10)
    marks = {"next": step}

    def report(done: int, _total: int | None) -> None:
        if done >= marks["next"] or done == total:
            marks["next"] = done + step
            print(f"    {label}: {done:,}/{total:,} rows acked", flush=True)
    return report


async def _searchable_s(http: BenchHttp, collection: str, vector: np.ndarray, last_id: str) -> float | None:
    try:
        return await wait_searchable(http, collection, vector, last_id, timeout_s=600)
    except TimeoutError:
        return None


async def import_cell(args: argparse.Namespace, http: BenchHttp, base_url: str, file: dict[str, Any],
                      meter: Meter) -> dict[str, Any]:
    """``client.import_file`` into a fresh collection; the cell's figures."""
    from vecraft_client import VecraftClient

    name = "bulk_import"
    await http.create_collection(name, args.dim, metric="cosine", shards=args.shards, hnsw=HNSW)
    meter.start()
    with VecraftClient(endpoint=base_url, timeout=IMPORT_TIMEOUT_S) as client:
        t0 = time.perf_counter()
        result = await asyncio.to_thread(client.import_file, file["path"], name, chunk_rows=args.chunk_rows,
                                         parallel=args.parallel, ack="all", create=False,
                                         progress=_progress("import", args.vectors))
        acked = time.perf_counter() - t0
    wait = await _searchable_s(http, name, file["last_vector"], f"v{args.vectors - 1}")
    cell = _cell("import", name, args.vectors, acked, wait)
    cell.update({"chunks": result.chunks, "duplicate_chunks": result.duplicate_chunks,
                 "sdk_seconds": round(result.seconds, 2), "throttled": None})
    return cell | await meter.stop()


async def baseline_cell(args: argparse.Namespace, http: BenchHttp, meter: Meter) -> dict[str, Any]:
    """The ingest benchmark's loader on the same rows, same batch and concurrency, into a fresh collection."""
    name = "bulk_baseline"
    vectors, ids, metas = in_memory(args.vectors, args.dim, seed=args.seed)
    await http.create_collection(name, args.dim, metric="cosine", shards=args.shards, hnsw=HNSW)
    throttled0 = http.throttled
    meter.start()
    acked = await load_dataset(http, name, vectors, ids, metas, batch=args.chunk_rows, ack="all",
                               concurrency=args.parallel)
    wait = await _searchable_s(http, name, vectors[-1], ids[-1])
    cell = _cell("ingest loader", name, args.vectors, acked, wait)
    cell["throttled"] = http.throttled - throttled0
    return cell | await meter.stop()


def _cell(method: str, collection: str, n: int, acked: float, wait: float | None) -> dict[str, Any]:
    searchable = None if wait is None else acked + wait
    cell: dict[str, Any] = {"method": method, "collection": collection, "rows": n, "acked_s": acked,
            "searchable_s": searchable, "acked_per_s": n / acked,
            "searchable_per_s": None if searchable is None else n / searchable}
    print(f"  {method:<13} {cell['acked_per_s']:8.0f} rows/s acked, "
          f"{fmt(cell['searchable_per_s'], 0):>8} until searchable", flush=True)
    return cell


async def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    path = work / f"vectors-{args.vectors}x{args.dim}.parquet"
    print(f"writing {path.name} ...", flush=True)
    file = write_parquet(path, args.vectors, args.dim, seed=args.seed)
    print(f"  {file['bytes'] / 2**20:,.0f} MiB in {file['write_s']:.1f} s", flush=True)
    spec = ClusterSpec(data_dir=work / "cluster", shards=args.shards, apply_delay_ms=0,
                       http_port=free_port(), grpc_port=free_port())
    order = list(reversed(METHODS)) if args.baseline_first else list(METHODS)
    cells = []
    async with LocalCluster(spec) as cluster, BenchHttp(spec.base_url) as http:
        pids = [pid for pid in cluster.pids().values() if pid]
        for method in order:
            meter = Meter(pids)
            if method == "import":
                cells.append(await import_cell(args, http, spec.base_url, file, meter))
            else:
                cells.append(await baseline_cell(args, http, meter))
        startup = cluster.startup_s
    file.pop("last_vector")
    return {"file": file, "startup_s": startup, "cells": cells, "order": order}


def ratio(result: dict[str, Any], key: str = "acked_per_s") -> float | None:
    """Import rate / ingest-loader rate (None if either is missing)."""
    by = {c["method"]: c.get(key) for c in result["cells"]}
    imp, base = by.get("import"), by.get("ingest loader")
    return imp / base if imp and base else None


def render(result: dict[str, Any]) -> str:
    f, cfg = result["file"], result["config"]
    rows = [[c["method"], c["rows"], fmt(c["acked_s"], 1), fmt(c["acked_per_s"], 0),
             fmt(c["searchable_per_s"], 0),
             f"{fmt(c['load_1m_start'], 1)} / {fmt(c['load_1m_mean'], 1)} / {fmt(c['load_1m_end'], 1)}",
             fmt(c["client_cpu_s"], 1), fmt(c["cluster_cpu_s"], 1), fmt(c["throttled"])]
            for c in result["cells"]]
    by = {c["method"]: c for c in result["cells"]}
    r, rs = ratio(result), ratio(result, "searchable_per_s")
    if "import" in by and "ingest loader" in by:
        imp, base = by["import"]["acked_per_s"], by["ingest loader"]["acked_per_s"]
        goal = (f"- Import rate >= the ack=all ingest rate of `vecraft bench ingest` (same batch, same "
                f"concurrency, same run): {'met' if imp >= base else 'MISSED'} ({fmt(imp, 0)} vs "
                f"{fmt(base, 0)} rows/s acknowledged, ratio {fmt(r, 2)}; until searchable: ratio "
                f"{fmt(rs, 2)}).")
    else:
        goal = "- Not measured: a cell is missing."
    return "\n".join([
        "# Bulk import benchmark: rows/s from Parquet, against the ingest loader", "",
        environment_markdown(result["environment"]),
        (f"- Data: {f['rows']:,} x {f['dim']} float32, a Gaussian mixture ({CLUSTERS} clusters, seed "
         f"{cfg['seed']}), ids `v0..`, metadata `{{category, num}}`. Parquet file (`id`, `vector` "
         f"list<float32>, `metadata` JSON text, row groups of {GEN_ROWS:,}): {f['bytes'] / 2**20:,.0f} MiB "
         f"written in {fmt(f['write_s'], 1)} s ({fmt(f['write_rows_per_s'], 0)} rows/s), not in the figures "
         f"below."),
        (f"- Cluster of {cfg['shards']} shards x 1 replica started in {fmt(result['startup_s'])} s; both "
         f"collections on it (cosine, {cfg['shards']} shards, HNSW {HNSW}), filled one after the other: "
         f"{' then '.join(result['order'])}."),
        (f"- `import`: `client.import_file(path, collection, chunk_rows={cfg['chunk_rows']}, "
         f"parallel={cfg['parallel']}, ack=\"all\")` with the sync SDK over HTTP (timeout "
         f"{IMPORT_TIMEOUT_S:.0f} s, default retries), i.e. `vecraft import FILE --collection C --chunk-rows "
         f"{cfg['chunk_rows']} --parallel {cfg['parallel']} --ack all`; the clock runs from the call to its "
         f"return and includes reading and checking the file."),
        (f"- `ingest loader`: `load_dataset` of `vecraft bench ingest` (binary vectors with metadata, "
         f"ack=all, 429 retried after Retry-After) with batch {cfg['chunk_rows']} and {cfg['parallel']} "
         f"requests in flight, the same rows already in memory."), "",
        ("Acked: until the last chunk was acknowledged (durable in the journal and applied by every live "
         "replica); searchable: until an eventual search finds the last row. Load: 1-minute load average at "
         "the start / mean of samples every 2 s / end of the cell. CPU: seconds used during the cell by the "
         "benchmark process (the client) and by the cluster's services. `429`: back-pressure answers the "
         "loader retried (the SDK retries its own and does not count them)."), "",
        table(["method", "rows", "acked s", "rows/s acked", "rows/s until searchable",
               "load 1m (start / mean / end)", "client CPU s", "cluster CPU s", "429"], rows), "",
        "## Goal", "", goal, ""])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vecraft bench bulk", description=__doc__.split("\n\n")[0])
    p.add_argument("--vectors", type=int, default=1_000_000, help="rows of the file (default 1,000,000)")
    p.add_argument("--dim", type=int, default=128, help="dimension of the vectors (default 128)")
    p.add_argument("--chunk-rows", type=int, default=5000,
                   help=f"rows per import chunk and per loader request (default 5000, at most "
                        f"{MAX_BATCH_ROWS})")
    p.add_argument("--parallel", type=int, default=4,
                   help="import chunks / loader requests in flight (default 4)")
    p.add_argument("--shards", type=int, default=3, help="shards of the local cluster (default 3)")
    p.add_argument("--seed", type=int, default=42, help="random seed of the data (default 42)")
    p.add_argument("--baseline-first", action="store_true",
                   help="run the ingest loader before the import (default: import first)")
    add_output_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if not 1 <= args.chunk_rows <= MAX_BATCH_ROWS or args.vectors < 1 or args.parallel < 1:
        print(f"vecraft bench bulk: need --vectors >= 1, --parallel >= 1 and --chunk-rows in "
              f"1..{MAX_BATCH_ROWS}", file=sys.stderr)
        return 2
    too_big = memory_shortfall(args.shards)
    if too_big:
        print(f"vecraft bench bulk: cluster not started: {too_big}", file=sys.stderr)
        return 1
    env = environment("bulk", argv)
    with bench_run("bulk") as work:
        result = asyncio.run(_run(args, work))
    result = {"environment": env, "config": {"vectors": args.vectors, "dim": args.dim,
                                             "chunk_rows": args.chunk_rows, "parallel": args.parallel,
                                             "shards": args.shards, "seed": args.seed}} | result
    result["ratio_acked"], result["ratio_searchable"] = ratio(result), ratio(result, "searchable_per_s")
    if args.no_report:
        print(render(result))
        return 0
    json_path, md_path = write_outputs(args.out, "bulk", f"{args.vectors}x{args.dim}", result, render(result))
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
