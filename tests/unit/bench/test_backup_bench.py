"""`vecraft bench backup`: flags and the report, from a result made up here (no cluster runs)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from vecraft.bench import backup

pytestmark = pytest.mark.unit


def test_defaults_are_the_issue_scale() -> None:
    args = backup.build_parser().parse_args([])
    assert (args.rows, args.dim, args.shards, args.s3_target) == (100_000, 128, 2, None)
    args = backup.build_parser().parse_args(["--rows", "500", "--dim", "8", "--s3-target", "none"])
    assert (args.rows, args.dim, args.s3_target) == (500, 8, "none")


@pytest.mark.parametrize("argv", [["--rows", "1"], ["--dim", "0"], ["--shards", "0"]])
def test_bad_flags_exit_2_before_anything_starts(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert backup.main([*argv, "--no-report"]) == 2
    assert "--rows >= 2" in capsys.readouterr().err


def result() -> dict[str, Any]:
    env = {"command": "vecraft bench backup", "started_at": "2026-01-01T00:00:00+00:00", "git_commit": "abc",
           "machine": {"cpu_model": "cpu", "logical_cores": 2, "ram_gib": 24, "os": "linux", "python": "3.11",
                       "load_average_1m_at_start": 0.5}, "versions": {"vecraft": "0.1"}}
    step = {"s": 10.0, "vectors_per_s": 10_000.0, "mb_per_s": 8.0, "bytes": 80_000_000}
    return {"environment": env, "rows": 100_000, "dim": 128, "shards": 2, "s3": "moto", "s3_target": None,
            "load": {"s": 20.0, "vectors_per_s": 5000.0, "startup_s": 5.0, "journal_bytes": 60_000_000,
                     "storage_bytes": 90_000_000},
            "backup": {"directory": step | {"incremental_s": 2.0, "incremental_bytes": 1000},
                       "s3": step | {"s": 20.0, "incremental_s": 3.0, "incremental_bytes": 1000}},
            "restore": {"directory": step, "s3": step | {"s": 16.0}},
            "pitr": {"from": "s3", "to_time": "2026-01-01T00:00:10.000Z", "s": 5.0, "bytes": 30_000_000},
            "serve_with_files": {"from": "s3", "ready_s": 6.0, "strong_search_s": 8.0,
                                 "services_ready_s": {"storage": 2.0, "query": 5.0}},
            "serve_rebuilt": {"ready_s": 6.0, "strong_search_s": 40.0,
                              "services_ready_s": {"storage": 30.0, "query": 31.0}}}


def test_the_report_holds_every_figure() -> None:
    text = backup.render(result())
    assert "- Command: `vecraft bench backup`" in text and "2 logical cores" in text
    assert "| directory | 10.0 | 10,000 | 8.0 | 80.0 | 2.0 | 0.00 |" in text
    assert "| s3 | 20.0 | 10,000 | 8.0 | 80.0 | 3.0 | 0.00 |" in text
    assert "| s3 | 16.0 | 10,000 | 8.0 | 80.0 |" in text
    assert "moto's server mode" in text and "--to-time 2026-01-01T00:00:10.000Z" in text
    assert "| with the shard files (HNSW graphs) from s3 | 2 | 5 | 6.0 | 8.0 |" in text
    assert "| shard files removed: every shard rebuilt from the journal | 30 | 31 | 6.0 | 40.0 |" in text
    assert "Restore + serve with shard files: 24.0 s; the journal rebuild alone: 40.0 s (5.0x" in text


def test_service_ready_times_come_from_the_up_log(tmp_path: Path) -> None:
    spawned = datetime(2026, 1, 1, 23, 59, 58, 400_000).timestamp()
    log = tmp_path / "bench-up.log"
    log.write_text("\n".join([
        "23:59:58 vecraft up: journal ready (pid 1)", "23:59:59 vecraft up: storage-0 ready (pid 2)",
        "00:00:03 vecraft up: storage-1 ready (pid 3)", "00:00:09 vecraft up: query-0 ready",
        "Vecraft is up: ...", "00:00:10 vecraft up: stopping"]))
    assert backup.services_ready(log, spawned) == {"journal": 0.0, "storage": 5.0, "query": 11.0}
