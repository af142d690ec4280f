"""`vecraft bench bulk`: flags, the generated file against the import reader, and the report.

No cluster: the Parquet file is read back with the reader ``vecraft import`` uses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vecraft.bench import bulk

pytestmark = pytest.mark.unit


def test_defaults_are_the_issue_scale() -> None:
    args = bulk.build_parser().parse_args([])
    assert (args.vectors, args.dim, args.chunk_rows, args.parallel, args.shards) == \
        (1_000_000, 128, 5000, 4, 3)
    assert args.baseline_first is False
    args = bulk.build_parser().parse_args(["--vectors", "20000", "--dim", "16", "--chunk-rows", "1000",
                                           "--parallel", "2", "--shards", "1", "--seed", "7",
                                           "--baseline-first"])
    assert (args.vectors, args.dim, args.chunk_rows, args.parallel, args.shards, args.seed) == \
        (20000, 16, 1000, 2, 1, 7)
    assert args.baseline_first is True


@pytest.mark.parametrize("argv", [["--chunk-rows", "0"], ["--chunk-rows", "10001"], ["--parallel", "0"],
                                  ["--vectors", "0"]])
def test_bad_flags_exit_2_before_anything_starts(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert bulk.main([*argv, "--no-report"]) == 2
    assert "--chunk-rows in 1..10000" in capsys.readouterr().err


def test_generation_is_seeded_and_independent_of_memory_layout() -> None:
    parts = list(bulk.generate(25, 4, seed=3, rows=10))
    assert [p.start for p in parts] == [0, 10, 20] and [len(p.vectors) for p in parts] == [10, 10, 5]
    again = np.concatenate([p.vectors for p in bulk.generate(25, 4, seed=3, rows=10)])
    assert np.array_equal(np.concatenate([p.vectors for p in parts]), again)
    vectors, ids, metas = bulk.in_memory(25, 4, seed=3)
    assert vectors.dtype == np.float32 and vectors.shape == (25, 4)
    assert ids[0] == "v0" and ids[-1] == "v24" and set(metas[0]) == {"category", "num"}
    assert not np.array_equal(vectors, bulk.in_memory(25, 4, seed=4)[0])


def test_the_file_is_what_the_import_reader_takes_and_matches_the_loader_rows(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    from vecraft_client._bulk_formats import count_rows, read_chunks

    path = tmp_path / "v.parquet"
    info = bulk.write_parquet(path, 1200, 8, seed=5)
    assert info["rows"] == 1200 and info["bytes"] == path.stat().st_size and info["write_s"] > 0
    assert count_rows(path, "parquet") == 1200
    chunks = list(read_chunks(path, "parquet", 500, 8))
    assert [len(c) for c in chunks] == [500, 500, 200]
    vectors, ids, metas = bulk.in_memory(1200, 8, seed=5)
    assert np.array_equal(np.concatenate([c.vectors for c in chunks]), vectors)
    assert [i for c in chunks for i in (c.ids or [])] == ids
    assert [m for c in chunks for m in (c.metadatas or [])] == metas
    assert np.array_equal(info["last_vector"], vectors[-1])


def _result(import_rate: float, base_rate: float) -> dict[str, Any]:
    def cell(method: str, rate: float) -> dict[str, Any]:
        return {"method": method, "collection": "c", "rows": 1_000_000, "acked_s": 1e6 / rate,
                "searchable_s": 1e6 / rate + 1, "acked_per_s": rate,
                "searchable_per_s": 1e6 / (1e6 / rate + 1),
                "load_1m_start": 1.0, "load_1m_mean": 2.5, "load_1m_end": 3.0, "client_cpu_s": 12.3,
                "cluster_cpu_s": 456.0, "throttled": None if method == "import" else 2}
    env = {"command": "vecraft bench bulk --out bench", "started_at": "2026-01-01T00:00:00+00:00",
           "git_commit": "abc", "versions": {"numpy": "2"},
           "machine": {"cpu_model": "cpu", "logical_cores": 2, "ram_gib": 8, "os": "linux", "python": "3.11",
                       "load_average_1m_at_start": 1.0}}
    config = {"vectors": 1_000_000, "dim": 128, "chunk_rows": 5000, "parallel": 4, "shards": 3, "seed": 42}
    return {"environment": env, "config": config,
            "file": {"rows": 1_000_000, "dim": 128, "bytes": 533_000_000, "write_s": 4.0,
                     "write_rows_per_s": 250_000.0},
            "startup_s": 3.0, "order": ["import", "ingest loader"],
            "cells": [cell("import", import_rate), cell("ingest loader", base_rate)]}


def test_render_has_the_table_ratio_goal_machine_and_command() -> None:
    result = _result(6000.0, 5000.0)
    assert bulk.ratio(result) == pytest.approx(1.2)
    md = bulk.render(result)
    assert "- Command: `vecraft bench bulk --out bench`" in md and "2 logical cores" in md
    assert "| import | 1000000 | 166.7 | 6,000 |" in md
    assert "| ingest loader | 1000000 | 200.0 | 5,000 |" in md
    assert "1.0 / 2.5 / 3.0" in md and "12.3" in md
    assert ": met (6,000 vs 5,000 rows/s acknowledged, ratio 1.20;" in md
    assert "chunk_rows=5000, parallel=4" in md and "then" in md


def test_render_says_missed_when_the_import_is_slower() -> None:
    md = bulk.render(_result(4000.0, 5000.0))
    assert ": MISSED (4,000 vs 5,000 rows/s acknowledged, ratio 0.80;" in md


def test_render_without_a_cell_says_so() -> None:
    result = _result(4000.0, 5000.0)
    result["cells"] = result["cells"][:1]
    assert bulk.ratio(result) is None
    assert "Not measured" in bulk.render(result)
