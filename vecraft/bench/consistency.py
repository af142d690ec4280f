"""Pull-before-read matrix: P95 per consistency level vs storage lag, dims and shard counts.

Reproduces the spec's "Pull-Before-Read Performance Evaluation Plan" on one
machine. For each shard count a local cluster is started once per storage lag
(``--apply-delay-ms`` 0/100/500/1000, restarted on the same data directory so
the data is loaded only once); for each dimension an open-loop search load at
the scenario's arrival rate runs for each consistency level while a background
writer keeps writing with ``ack=journal``, so the replicas really lag and the
stricter levels really have to sync. Scenario 4 (shard scaling at 512-d and
100 ms lag) reuses the matrix's cells where they match and starts its own
clusters for the other shard counts.

Usage: ``vecraft bench consistency [--scale small|spec] [--dims 128,512] ...``
(``--help`` lists everything). Writes OUT/results/consistency-*.json,
OUT/reports/consistency.md and two PNG plots (``--out OUT``, default
``./vecraft-bench-results``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil

from vecraft.bench._cells import Cell, summarize_cell
from vecraft.bench._cluster import (
    ClusterSpec,
    LocalCluster,
    memory_shortfall,
    stop_leftovers,
    stop_on_sigterm,
)
from vecraft.bench._datasets import Dataset, exact_topk, gaussian_mixture, outlier_vectors
from vecraft.bench._env import environment
from vecraft.bench._http import BenchHttp, SteadyWriter, load_dataset, search_body, wait_searchable
from vecraft.bench._loadgen import Reply, run_open_loop
from vecraft.bench._report import add_output_arguments, plot_path, write_outputs
from vecraft.bench._spec import (
    HNSW,
    LAGS_MS,
    LEVELS,
    MATRIX,
    SCALES,
    SCALING_DIM,
    SCALING_LAG_MS,
    SCALING_SHARDS,
    Scale,
)
from vecraft.local.process import free_port

K = 10
LOAD_BATCH = 2000


def collection_name(dim: int) -> str:
    return f"bench_d{dim}"


class MatrixRun:
    """State of one benchmark run: data sets, ground truth, cells measured so far."""

    def __init__(self, args: argparse.Namespace, scale: Scale, work: Path) -> None:
        self.args = args
        self.scale = scale
        self.work = work
        self.cells: list[Cell] = []
        self.blocks: list[dict[str, Any]] = []
        self._data: dict[int, Dataset] = {}
        self._pids: dict[str, Any] = {}
        self._truth: dict[int, np.ndarray] = {}

    def dataset(self, dim: int) -> tuple[Dataset, np.ndarray]:
        """The dim's data set and its exact top-k (built on first use)."""
        if dim not in self._data:
            t0 = time.perf_counter()
            data = gaussian_mixture(self.scale.vectors[dim], dim, queries=self.scale.queries,
                                    seed=self.args.seed + dim)
            self._data[dim] = data
            self._truth[dim] = exact_topk(data.vectors, data.queries, K, data.metric)
            print(f"  data {data.name}: generated with ground truth in {time.perf_counter() - t0:.1f} s",
                  flush=True)
        return self._data[dim], self._truth[dim]

    async def run_cluster(self, shards: int, lags: Sequence[int], dims: Sequence[int], *,
                          qps_of: dict[int, float]) -> None:
        """One data directory with ``shards`` shards: load once, then one restart per lag."""
        spec_base = ClusterSpec(data_dir=self.work / f"shards-{shards}", shards=shards, apply_delay_ms=0,
                                http_port=free_port(), grpc_port=free_port())
        loaded = False
        too_big = memory_shortfall(shards)
        if too_big:
            self.blocks.extend({"shards": shards, "lag_ms": lag, "dims": list(dims),
                                "error": f"not started: {too_big}"} for lag in lags)
            print(f"cluster: {shards} shard(s) skipped: {too_big}", flush=True)
            return
        for lag in lags:
            spec = dataclasses.replace(spec_base, apply_delay_ms=lag)
            block: dict[str, Any] = {"shards": shards, "lag_ms": lag, "dims": list(dims)}
            self.blocks.append(block)
            print(f"cluster: {shards} shard(s), apply_delay_ms={lag}", flush=True)
            cluster = LocalCluster(spec)
            for attempt in (1, 2):
                try:
                    await cluster.start()
                    break
                except Exception as exc:  # noqa: BLE001 - e.g. a service that fails to start: reported
                    await cluster.stop()
                    block["error"] = f"cluster did not start (attempt {attempt}): {exc}"
                    print(f"  {block['error']}", flush=True)
                    # The plan's ports are fixed per data directory; another program on the
                    # machine may hold one for a moment (seen: "Address already in use").
                    await asyncio.sleep(5)
            else:
                return
            block.pop("error", None)
            block["startup_s"] = round(cluster.startup_s, 1)
            block["service_pids"] = self._pids = cluster.pids()
            try:
                async with BenchHttp(spec.base_url) as http:
                    if not loaded:
                        block["load"] = await self._load(http, shards, dims)
                        loaded = True
                    block["warm_s"] = {}
                    for dim in dims:
                        # After a restart the query processors rebuild their caches from the
                        # journal; the spec measures steady state, so wait until they serve.
                        data, _ = self.dataset(dim)
                        block["warm_s"][str(dim)] = round(await wait_searchable(
                            http, collection_name(dim), data.vectors[-1], f"v{data.n - 1}",
                            timeout_s=600), 1)
                        await self._run_levels(http, dim, shards, lag, qps_of[dim])
            except Exception as exc:  # noqa: BLE001 - the block is reported failed, the run goes on
                block["error"] = f"{type(exc).__name__}: {exc}"
                print(f"  block failed: {block['error']}", flush=True)
            finally:
                await cluster.stop()

    async def _load(self, http: BenchHttp, shards: int, dims: Sequence[int]) -> dict[str, Any]:
        loads = {}
        for dim in dims:
            data, _ = self.dataset(dim)
            name = collection_name(dim)
            await http.create_collection(name, dim, metric=data.metric, shards=shards, hnsw=HNSW)
            seconds = await load_dataset(http, name, data.vectors, data.ids(), data.metadatas(),
                                         batch=LOAD_BATCH, ack="all")
            searchable = await wait_searchable(http, name, data.vectors[-1], data.ids(data.n - 1)[0])
            loads[str(dim)] = {"vectors": data.n, "acked_s": round(seconds, 2),
                               "searchable_s": round(seconds + searchable, 2),
                               "vectors_per_s": round(data.n / (seconds + searchable), 1)}
            print(f"  loaded {data.n} x {dim}: {loads[str(dim)]['vectors_per_s']} vectors/s until "
                  f"searchable", flush=True)
        return loads

    async def _run_levels(self, http: BenchHttp, dim: int, shards: int, lag: int, qps: float) -> None:
        data, truth = self.dataset(dim)
        name = collection_name(dim)
        vectors = [q.astype(float).tolist() for q in data.queries]
        writer = SteadyWriter(http, name, outlier_vectors(data, 4096, seed=self.args.seed),
                              rate=self.scale.write_rate, id_prefix=f"w{lag}-{shards}-")
        writer.start()
        try:
            await self._load_phase(http, name, vectors, "eventual", writer, qps, self.scale.warmup_s)
            for level in self.args.levels:
                acked0, errors0 = writer.acked, writer.errors
                cpu0 = cpu_seconds_by_role(self._pids)
                result = await self._load_phase(http, name, vectors, level, writer, qps, self.scale.cell_s)
                cpu = cpu_seconds_by_role(self._pids)
                cell = summarize_cell(result, dim=dim, shards=shards, lag_ms=lag, level=level,
                                      truth=truth, k=K)
                cell.writer_acked = writer.acked - acked0
                cell.writer_errors = writer.errors - errors0
                # The machine is shared: how busy it was during this cell, beside the figures.
                cell.extra["load_1m"] = round(os.getloadavg()[0], 2)
                # CPU time per answered search by service (includes the background writer's share):
                # where the time goes, unaffected by other work on the machine.
                answered = max(1, cell.latency.count)
                cell.extra["cpu_ms_per_search"] = {
                    role: round((cpu[role] - cpu0.get(role, 0.0)) * 1000 / answered, 2) for role in cpu}
                self.cells.append(cell)
                print(f"  {dim}d {shards}sh lag {lag:>4} {level:<16} P50 {cell.latency.p50:7.1f} "
                      f"P95 {cell.latency.p95:7.1f} P99 {cell.latency.p99:7.1f} ms  "
                      f"qps {cell.achieved_qps:5.1f}  err {cell.error_count}  "
                      f"sync {cell.sync_fraction:.2f}  stale P95 {cell.staleness.p95:.0f} ms  "
                      f"recall {cell.recall:.3f}", flush=True)
        finally:
            await writer.stop()

    async def _load_phase(self, http: BenchHttp, name: str, vectors: list[list[float]], level: str,
                          writer: SteadyWriter, qps: float, seconds: float) -> Any:
        bounded = self.args.max_staleness_ms if level == "bounded" else None

        async def send(i: int) -> Reply:
            token = writer.session_token if level == "read_your_writes" else None
            body = search_body(name, vectors[i % len(vectors)], k=K, level=level, max_staleness_ms=bounded,
                               session_token=token)
            return await http.search(orjson.dumps(body))

        return await run_open_loop(send, rate=qps, duration_s=seconds)


def cpu_seconds_by_role(pids: dict[str, Any]) -> dict[str, float]:
    """User + system CPU seconds used so far, summed by role (gateway, query, storage, journal, meta)."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        if not pid:
            continue
        role = name.split("-", 1)[0]
        try:
            times = psutil.Process(int(pid)).cpu_times()
        except psutil.Error:  # a service that restarted: its share is lost, not guessed
            continue
        out[role] = out.get(role, 0.0) + times.user + times.system
    return out


def _csv_ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vecraft bench consistency", description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", choices=sorted(SCALES), default="small",
                   help="data set sizes, arrival rates and cell length (default small: ~15 min on 2 cores)")
    p.add_argument("--dims", type=_csv_ints, default=None, help="only these dims of the matrix, e.g. 128,512")
    p.add_argument("--shards", type=_csv_ints, default=None, help="only these shard counts of the matrix")
    p.add_argument("--lags", type=_csv_ints, default=list(LAGS_MS),
                   help="storage lags in ms (default 0,100,500,1000)")
    p.add_argument("--levels", type=lambda s: s.split(","), default=list(LEVELS),
                   help="consistency levels (default all four)")
    p.add_argument("--scaling-shards", type=_csv_ints, default=list(SCALING_SHARDS),
                   help="scenario 4's shard counts (default 1,3,5,10,20,50; empty string to skip)")
    p.add_argument("--max-staleness-ms", type=int, default=200, help="bound of bounded-staleness reads")
    p.add_argument("--cell-seconds", type=float, default=None, help="override the scale's seconds per cell")
    p.add_argument("--seed", type=int, default=42, help="random seed of the data (default 42)")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="where cluster data goes (default a temporary directory, removed afterwards)")
    add_output_arguments(p)
    return p


async def _run(run: MatrixRun) -> None:
    args, scale = run.args, run.scale
    by_shards: dict[int, list[int]] = {}
    for dim, shards in MATRIX:
        if (args.dims is None or dim in args.dims) and (args.shards is None or shards in args.shards):
            by_shards.setdefault(shards, []).append(dim)
    for shards, dims in by_shards.items():
        await run.run_cluster(shards, args.lags, dims, qps_of=scale.qps)
    for shards in args.scaling_shards:
        qps = scale.scaling_qps(shards)
        reusable = any(c.dim == SCALING_DIM and c.shards == shards and c.lag_ms == SCALING_LAG_MS
                       and c.target_qps == qps for c in run.cells)
        if not reusable:
            await run.run_cluster(shards, [SCALING_LAG_MS], [SCALING_DIM], qps_of={SCALING_DIM: qps})


def main(argv: list[str] | None = None) -> int:
    """Run the matrix, write the JSON result, the markdown report and the plots. Returns 0 or 1."""
    from vecraft.bench import _consistency_report as report

    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    stop_on_sigterm()
    scale = SCALES[args.scale]
    if args.cell_seconds is not None:
        scale = dataclasses.replace(scale, cell_s=args.cell_seconds)
    env = environment("consistency", argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="vecraft-bench-consistency-"))
    t0 = time.perf_counter()
    run = MatrixRun(args, scale, work)
    interrupted = False
    try:
        asyncio.run(_run(run))
    except KeyboardInterrupt:
        # Ctrl-C / SIGTERM: the cells measured so far are still written, marked as partial.
        interrupted = True
    finally:
        stop_leftovers()
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    if interrupted:
        run.blocks.append({"shards": 0, "lag_ms": -1, "dims": [],
                           "error": "run interrupted: partial results"})
    result: dict[str, Any] = {
        "environment": env, "scale": dataclasses.asdict(scale), "k": K, "hnsw": HNSW, "seed": args.seed,
        "max_staleness_ms": args.max_staleness_ms, "scaling_shards": args.scaling_shards,
        "wall_s": time.perf_counter() - t0, "blocks": run.blocks,
        "cells": [c.to_dict() for c in run.cells]}
    if args.no_report:
        print(report.render(result, run.cells, []))
    else:
        plots = report.plot(run.cells, plot_path(args.out, "consistency", "lag"),
                            plot_path(args.out, "consistency", "scaling"), args.scaling_shards)
        json_path, md_path = write_outputs(args.out, "consistency", scale.name, result,
                                           report.render(result, run.cells, plots))
        print(f"wrote {json_path} and {md_path}")
    return 0 if run.cells and not any(b.get("error") for b in run.blocks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
