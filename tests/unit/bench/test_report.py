"""Cells, the spec-layout report and its targets, rendered from synthetic results."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from vecraft.bench import _consistency_report as report
from vecraft.bench._cells import Cell, summarize_cell
from vecraft.bench._env import environment
from vecraft.bench._loadgen import LoadResult, Outcome, Reply
from vecraft.bench._report import fmt, table, write_outputs
from vecraft.bench._spec import LEVELS, MATRIX, SCALES, SPEC_P95, spec_figures
from vecraft.bench._stats import LatencySummary

pytestmark = pytest.mark.unit


def _cell(dim: int, shards: int, lag: int, level: str, p95: float) -> Cell:
    s = LatencySummary(count=100, p50=p95 / 2, p95=p95, p99=p95 * 1.2, mean=p95 / 2, max=p95 * 2)
    return Cell(dim=dim, shards=shards, lag_ms=lag, level=level, target_qps=50, requests=100,
                achieved_qps=49.5, latency=s, service=s, errors={}, staleness=s, sync_fraction=0.5,
                cache_hit_fraction=1.0, level_mismatches=0, recall=0.99)


def test_spec_table_is_complete_and_consistent() -> None:
    assert len(SPEC_P95) == 20
    for (dim, shards), lag in [(b, lag) for b in MATRIX for lag in (0, 100, 500, 1000)]:
        ev, _, st, overhead = spec_figures(dim, shards, lag)  # type: ignore[misc]
        assert overhead == {0: 0, 100: 10, 500: 30, 1000: 50}[lag]
        assert st >= ev
    assert SCALES["spec"].vectors == {128: 1_000_000, 512: 500_000, 1536: 100_000}
    assert SCALES["spec"].qps == {128: 100, 512: 50, 1536: 20}
    assert SCALES["spec"].scaling_qps(30) == 500
    assert SCALES["small"].scaling_qps(30) == SCALES["small"].qps[512]


def test_summarize_cell_reads_consistency_info_and_recall() -> None:
    truth = np.array([[0, 1], [2, 3]])
    outcomes = [
        Outcome(0, 0.0, 0.0, 0.010, Reply(ok=True, info={"ids": ["v0", "v1"], "staleness_ms": 100,
                                                          "sync_performed": True, "cache_hit": False,
                                                          "level_requested": "strong",
                                                          "level_achieved": "strong"})),
        Outcome(1, 0.1, 0.1, 0.130, Reply(ok=True, info={"ids": ["v2", "v9"], "staleness_ms": 0,
                                                          "sync_performed": False, "cache_hit": True,
                                                          "level_requested": "strong",
                                                          "level_achieved": "eventual"})),
        Outcome(2, 0.2, 0.2, 0.2, Reply(ok=False, status=503, error="http-503")),
    ]
    cell = summarize_cell(LoadResult(rate=10, duration_s=0.3, outcomes=outcomes, wall_s=0.2),
                          dim=8, shards=3, lag_ms=100, level="strong", truth=truth, k=2)
    assert cell.requests == 3 and cell.latency.count == 2
    assert cell.latency.max == pytest.approx(30.0)
    assert cell.errors == {"http-503": 1} and cell.error_count == 1
    assert cell.sync_fraction == 0.5 and cell.cache_hit_fraction == 0.5
    assert cell.level_mismatches == 1
    assert cell.recall == pytest.approx(0.75)
    assert cell.staleness.max == 100
    again = Cell.from_dict(cell.to_dict())
    assert again.latency == cell.latency and again.errors == cell.errors


def test_render_puts_the_spec_figures_beside_ours(tmp_path: Path) -> None:
    cells = [_cell(128, 3, lag, lvl, {"eventual": 2.0, "bounded": 2.5, "read_your_writes": 3.0,
                                      "strong": 3.5 + lag / 1000}[lvl])
             for lag in (0, 1000) for lvl in LEVELS]
    cells += [_cell(512, s, 100, lvl, 4.0) for s in (1, 5) for lvl in LEVELS]
    result = {"environment": environment("consistency", ["--scale", "small"]),
              "scale": {"name": "small", "vectors": {128: 20000}, "qps": {128: 50}, "cell_s": 6,
                        "warmup_s": 1, "queries": 200, "write_rate": 20},
              "max_staleness_ms": 200, "hnsw": {"m": 16}, "k": 10, "seed": 42, "wall_s": 12.0,
              "scaling_shards": [1, 3, 5, 50],
              "blocks": [{"shards": 50, "lag_ms": 100, "dims": [512], "error": "cluster did not start"}]}
    md = report.render(result, cells, [tmp_path / "consistency-lag.png"])
    assert "| Vector Dimensions | Shard Count | Storage Lag | Eventual Consistency P95 |" in md
    assert "| 128D | 3 shards | 1000ms | 2.0 (15) | 2.5 (35) | 4.5 (65) | 2.5 (50) |" in md
    assert "EVENTUAL P95 <= 3 ms: MISSED (worst 4.0 ms at 512d, 1 shards, 100 ms lag)" in md
    assert "STRONG P95 <= EVENTUAL P95 + 2 ms at every lag: MISSED (largest gap 2.5 ms" in md
    assert "cluster did not start" in md
    assert "vecraft bench consistency --scale small" in md
    assert "![consistency-lag](consistency-lag.png)" in md


def test_write_outputs_turns_nan_into_null(tmp_path: Path) -> None:
    json_path, md_path = write_outputs(tmp_path, "x", "small", {"a": math.nan, "b": [1.0]}, "# r")
    assert json_path.read_text().replace(" ", "").replace("\n", "") == '{"a":null,"b":[1.0]}'
    assert md_path.read_text() == "# r\n"
    assert fmt(math.nan) == "-" and fmt(1234) == "1,234" and fmt(1.25, 1) == "1.2"
    assert table(["a", "b"], [[1, 2]]).splitlines()[2] == "| 1 | 2 |"


def test_plots_are_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    cells = [_cell(128, 3, lag, lvl, 2.0 + lag / 500) for lag in (0, 100, 500, 1000) for lvl in LEVELS]
    cells += [_cell(512, s, 100, lvl, 3.0) for s in (1, 3) for lvl in LEVELS]
    written = report.plot(cells, tmp_path / "lag.png", tmp_path / "scaling.png", [1, 3, 5])
    assert [p.name for p in written] == ["lag.png", "scaling.png"]
    assert all(p.stat().st_size > 1000 for p in written)
