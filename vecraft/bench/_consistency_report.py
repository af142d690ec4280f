"""Markdown report and plots of the consistency benchmark.

The first table has the spec's column layout (dimensions, shards, lag,
eventual / bounded / strong P95, sync overhead); each of our figures is shown
with the spec's beside it. Sync overhead is, as in the spec, strong P95 minus
eventual P95 of the same cell.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vecraft.bench._cells import Cell
from vecraft.bench._env import environment_markdown
from vecraft.bench._report import fmt, table
from vecraft.bench._spec import LAGS_MS, LEVELS, MATRIX, SCALING_DIM, SCALING_LAG_MS, spec_figures

#: The issue's targets through HTTP (ms).
TARGET_EVENTUAL_P95 = 3.0
TARGET_STRONG_OVER_EVENTUAL = 2.0


def _index(cells: Iterable[Cell]) -> dict[tuple[int, int, int, str], Cell]:
    return {(c.dim, c.shards, c.lag_ms, c.level): c for c in cells}


def _p95(cells: dict[tuple[int, int, int, str], Cell], dim: int, shards: int, lag: int, level: str) -> float:
    cell = cells.get((dim, shards, lag, level))
    return cell.latency.p95 if cell is not None else math.nan


def spec_table(cells: list[Cell]) -> str:
    """The spec's matrix with our P95 and, in brackets, the spec's."""
    idx = _index(cells)
    rows = []
    for dim, shards in MATRIX:
        for lag in LAGS_MS:
            if not any((dim, shards, lag, lvl) in idx for lvl in LEVELS):
                continue
            spec = spec_figures(dim, shards, lag)
            ev, bo, st = (_p95(idx, dim, shards, lag, lvl) for lvl in ("eventual", "bounded", "strong"))
            ours = (ev, bo, st, st - ev)
            pairs = [f"{fmt(o)} ({fmt(s, 0)})" for o, s in zip(ours, spec or (math.nan,) * 4, strict=True)]
            rows.append([f"{dim}D", f"{shards} shards", f"{lag}ms", *pairs])
    header = ["Vector Dimensions", "Shard Count", "Storage Lag", "Eventual Consistency P95",
              "Bounded Staleness P95", "Strong Consistency P95", "Sync Overhead"]
    return table(header, rows)


def detail_table(cells: list[Cell]) -> str:
    """Every cell: all percentiles, throughput, errors, what the answers reported, recall."""
    rows = []
    for c in sorted(cells, key=lambda c: (c.shards, c.dim, c.lag_ms, LEVELS.index(c.level))):
        errors = ", ".join(f"{k} {v}" for k, v in sorted(c.errors.items())) or "0"
        rows.append([c.dim, c.shards, c.lag_ms, c.level, fmt(c.target_qps, 0), fmt(c.achieved_qps),
                     c.latency.count, fmt(c.latency.p50), fmt(c.latency.p95), fmt(c.latency.p99),
                     fmt(c.service.p95), errors, fmt(c.staleness.p50, 0), fmt(c.staleness.p95, 0),
                     fmt(c.sync_fraction, 2), fmt(c.cache_hit_fraction, 2), c.level_mismatches,
                     fmt(c.recall, 3), _cpu(c.extra.get("cpu_ms_per_search")),
                     fmt(c.extra.get("load_1m"), 1)])
    header = ["dim", "shards", "lag ms", "level", "target QPS", "achieved QPS", "answers", "P50", "P95",
              "P99", "P95 from send", "errors", "staleness P50", "staleness P95", "sync", "cache hit",
              "level != requested", "recall@10", "CPU ms/search gw/query/storage/journal", "load 1m"]
    return table(header, rows)


def _cpu(by_role: dict[str, float] | None) -> str:
    if not by_role:
        return "-"
    return "/".join(fmt(by_role.get(role), 1) for role in ("gateway", "query", "storage", "journal"))


def scaling_table(cells: list[Cell], shard_counts: Iterable[int], blocks: list[dict[str, Any]]) -> str:
    idx = _index(cells)
    startup = {b["shards"]: b.get("startup_s") for b in blocks if b["lag_ms"] == SCALING_LAG_MS}
    errors = {b["shards"]: b["error"] for b in blocks if b.get("error") and b["lag_ms"] == SCALING_LAG_MS}
    rows = []
    for s in shard_counts:
        p95 = [_p95(idx, SCALING_DIM, s, SCALING_LAG_MS, lvl) for lvl in LEVELS]
        qps = idx.get((SCALING_DIM, s, SCALING_LAG_MS, "eventual"))
        rows.append([s, fmt(qps.target_qps, 0) if qps else "-", *(fmt(p) for p in p95),
                     fmt(p95[3] - p95[0]), fmt(startup.get(s)), errors.get(s, "")])
    header = ["shards", "QPS", "eventual P95", "bounded P95", "read-your-writes P95", "strong P95",
              "sync overhead", "cluster start s", "note"]
    return table(header, rows)


def goals(cells: list[Cell]) -> list[str]:
    """One line per target of the issue: met or missed, with the worst cell."""
    idx = _index(cells)
    lines = []
    eventual = [c for c in cells if c.level == "eventual"]
    if eventual:
        worst = max(eventual, key=lambda c: c.latency.p95)
        met = worst.latency.p95 <= TARGET_EVENTUAL_P95
        lines.append(f"- EVENTUAL P95 <= {TARGET_EVENTUAL_P95:g} ms: {'met' if met else 'MISSED'} "
                     f"(worst {fmt(worst.latency.p95)} ms at {worst.dim}d, {worst.shards} shards, "
                     f"{worst.lag_ms} ms lag)")
    gaps = [(idx[(c.dim, c.shards, c.lag_ms, 'strong')].latency.p95 - c.latency.p95, c)
            for c in eventual if (c.dim, c.shards, c.lag_ms, "strong") in idx]
    if gaps:
        gap, c = max(gaps, key=lambda g: g[0])
        met = gap <= TARGET_STRONG_OVER_EVENTUAL
        lines.append(f"- STRONG P95 <= EVENTUAL P95 + {TARGET_STRONG_OVER_EVENTUAL:g} ms at every lag: "
                     f"{'met' if met else 'MISSED'} (largest gap {fmt(gap)} ms at {c.dim}d, "
                     f"{c.shards} shards, {c.lag_ms} ms lag)")
    return lines


def render(result: dict[str, Any], cells: list[Cell], plots: list[Path]) -> str:
    """The whole markdown report."""
    scale = result["scale"]
    parts = [
        "# Consistency benchmark: pull-before-read matrix", "",
        environment_markdown(result["environment"]),
        (f"- Scale: `{scale['name']}`: vectors per dim {scale['vectors']}, search arrival rate per dim "
        f"{scale['qps']} QPS (open loop), {scale['cell_s']} s per cell after {scale['warmup_s']} s warm-up, "
        f"{scale['queries']} queries, background writer {scale['write_rate']} writes/s of 1 vector "
        f"with ack=journal; bounded staleness max_staleness_ms={result['max_staleness_ms']}; "
        f"HNSW {result['hnsw']}; k={result['k']}; metric cosine; Gaussian-mixture data, "
        f"seed {result['seed']}."),
        ("- The journal's write back-pressure threshold is raised to max(1000, 2 x lag + 1000) ms "
        "(`vecraft up --apply-delay-ms` does it): at its default of 1000 ms a simulated 1000 ms lag would "
        "refuse every write of the background writer."),
        f"- Wall time: {fmt(result['wall_s'], 0)} s.", "",
        ("Latency is measured from each request's scheduled send time (open loop), so queueing in "
        "the client or server is included. Each figure below is ours; the spec's is in brackets."), "",
        "## The spec's matrix (P95, ms)", "", spec_table(cells), "",
        "## Targets", "", *goals(cells), "",
        "## Shard scaling (scenario 4: 512D, 100 ms lag)", "",
        scaling_table(cells, result["scaling_shards"], result["blocks"]), "",
        "## Every cell", "",
        ("`staleness` is the staleness_ms the answers reported; `sync` and `cache hit` are the "
        "fractions of answers with sync_performed / cache_hit true."), "",
        detail_table(cells), "",
        "## Clusters", "", _blocks_table(result["blocks"]), "",
    ]
    if plots:
        parts += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in plots] + [""]
    return "\n".join(parts)


def _blocks_table(blocks: list[dict[str, Any]]) -> str:
    rows = []
    for b in blocks:
        load = b.get("load") or {}
        loads = "; ".join(f"{d}d: {v['vectors']} in {v['searchable_s']} s ({fmt(v['vectors_per_s'], 0)}/s)"
                          for d, v in load.items())
        rows.append([b["shards"], b["lag_ms"], fmt(b.get("startup_s")), loads or "-", b.get("error", "")])
    return table(["shards", "lag ms", "start s", "load until searchable", "error"], rows)


def plot(cells: list[Cell], lag_png: Path, scaling_png: Path, shard_counts: list[int]) -> list[Path]:
    """P95 vs lag per level (one panel per dim x shards), and P95 vs shard count. Returns the files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = _index(cells)
    blocks = [(d, s) for d, s in MATRIX if any((d, s, lag, "eventual") in idx for lag in LAGS_MS)]
    written = []
    if blocks:
        cols = min(3, len(blocks))
        rows = -(-len(blocks) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.6 * rows), squeeze=False, sharey=True)
        flat = list(axes.flat)
        for ax in flat[len(blocks):]:
            ax.set_visible(False)
        for ax, (dim, shards) in zip(flat, blocks, strict=False):
            for level in LEVELS:
                ys = [_p95(idx, dim, shards, lag, level) for lag in LAGS_MS]
                ax.plot(LAGS_MS, ys, marker="o", label=f"{level} (ours)")
            for j, name, style in ((0, "eventual", ":"), (2, "strong", "--")):
                spec = [(spec_figures(dim, shards, lag) or (math.nan,) * 4)[j] for lag in LAGS_MS]
                ax.plot(LAGS_MS, spec, linestyle=style, color="grey", label=f"{name} (spec)")
            ax.set_title(f"{dim}D, {shards} shards")
            ax.set_xlabel("storage lag (ms)")
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.3)
        for row in axes:
            row[0].set_ylabel("P95 latency (ms, log)")
        flat[0].legend(fontsize=7, loc="upper left")
        fig.suptitle("Search P95 vs storage lag, per consistency level (the spec's figures in grey)")
        fig.tight_layout()
        fig.savefig(lag_png, dpi=110)
        plt.close(fig)
        written.append(lag_png)
    present = [s for s in shard_counts if (SCALING_DIM, s, SCALING_LAG_MS, "eventual") in idx]
    if present:
        fig, ax = plt.subplots(figsize=(6, 4))
        for level in LEVELS:
            ax.plot(present, [_p95(idx, SCALING_DIM, s, SCALING_LAG_MS, level) for s in present],
                    marker="o", label=level)
        ax.set_xscale("log")
        ax.set_xticks(present, [str(s) for s in present])
        ax.set_xlabel("shards")
        ax.set_yscale("log")
        ax.set_ylabel("P95 latency (ms, log)")
        ax.set_title(f"Shard scaling: {SCALING_DIM}D, {SCALING_LAG_MS} ms lag")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(scaling_png, dpi=110)
        plt.close(fig)
        written.append(scaling_png)
    return written
