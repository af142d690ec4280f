"""`vecraft bench compaction`: flags and the report, from a result made up here (no cluster runs)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vecraft.bench import compaction

pytestmark = pytest.mark.unit


def test_defaults_are_the_issue_scale() -> None:
    args = compaction.build_parser().parse_args([])
    assert (args.ids, args.dim, args.rounds) == (10_000, 128, 20)


@pytest.mark.parametrize("argv", [["--ids", "0"], ["--rounds", "0"], ["--batch", "0"]])
def test_bad_flags_exit_2_before_anything_starts(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert compaction.main([*argv, "--no-report"]) == 2
    assert "must be >= 1" in capsys.readouterr().err


def result() -> dict[str, Any]:
    env = {"command": "vecraft bench compaction", "started_at": "2026-01-01T00:00:00+00:00",
           "git_commit": "abc",
           "machine": {"cpu_model": "cpu", "logical_cores": 2, "ram_gib": 24, "os": "linux", "python": "3.11",
                       "load_average_1m_at_start": 0.5}, "versions": {"vecraft": "0.1"}}
    rounds = [{"round": i, "write_s": 1.0, "search_p95_ms": 2.0, "journal": 5_000_000 + i * 10,
               "records": 6_000_000, "locations": 1_000_000, "snapshots": 0} for i in range(5)]
    return {"environment": env, "ids": 10_000, "dim": 128, "shards": 2, "batch": 1000,
            "segment_bytes": 1 << 19, "request_id_window_s": 5.0, "gc_interval_s": 2.0, "rounds": rounds,
            "round_payload_bytes": 5_120_000,
            "settled": {"search_p95_ms": 2.1, "journal": 100, "records": 6_000_000, "locations": 900_000,
                        "snapshots": 0}}


def test_report_lists_every_round_and_the_growth(tmp_path: Path) -> None:
    text = compaction.render(result())
    assert "| 4 | 5.0 | 6.0 | 1.0 | 0.0 | 12.0 | 2.00 | 1.0 |" in text
    assert "| settled | 0.0 | 6.0 | 0.9 |" in text
    assert "journal segments of 0.5 MiB" in text
    assert "+0.0 MB in 2 rounds" in text


def test_disk_counts_each_kind_of_file(tmp_path: Path) -> None:
    (tmp_path / "journal" / "data-0").mkdir(parents=True)
    (tmp_path / "journal" / "data-0" / "00000000000000000001.wal").write_bytes(b"x" * 10)
    shard = tmp_path / "storage" / "node-0" / "shard-0"
    (shard / "snapshot" / "c1").mkdir(parents=True)
    (shard / "records.bin").write_bytes(b"r" * 20)
    (shard / "locations.sqlite").write_bytes(b"l" * 30)
    (shard / "locations.sqlite-wal").write_bytes(b"w" * 5)
    (shard / "snapshot" / "c1" / "graph.faiss").write_bytes(b"g" * 7)
    assert compaction.disk(tmp_path) == {"journal": 10, "records": 20, "locations": 35, "snapshots": 7}
