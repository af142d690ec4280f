"""Every `vecraft bench` subcommand: the same output flags, help text, and output outside the repository.

Argparse only: no benchmark runs.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

import pytest

from vecraft import cli
from vecraft.bench import _report

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
NAMES = sorted(cli.bench_modules())


def parser_of(name: str) -> argparse.ArgumentParser:
    module = importlib.import_module(f"vecraft.bench.{name}")
    parser: argparse.ArgumentParser = module.build_parser()
    return parser


def test_every_benchmark_is_covered() -> None:
    assert NAMES == ["backup", "bulk", "calibrate", "chaos", "compaction", "consistency", "ingest", "journal",
                     "latency", "peers", "quotas", "recall", "storage"]


@pytest.mark.parametrize("name", NAMES)
def test_flags_agree_and_every_flag_has_help(name: str) -> None:
    parser = parser_of(name)
    assert parser.prog == f"vecraft bench {name}"
    assert parser.description
    flags = {opt: action for action in parser._actions for opt in action.option_strings}
    assert "--out" in flags and "--no-report" in flags and "--out-dir" not in flags
    undocumented = [a.option_strings[0] for a in parser._actions
                    if a.option_strings and a.dest != "help" and not a.help]
    assert undocumented == [], f"vecraft bench {name}: flags without help text"
    args = parser.parse_args(["--out", "elsewhere", "--no-report"])
    assert args.out == Path("elsewhere") and args.no_report is True


@pytest.mark.parametrize("name", NAMES)
def test_results_go_outside_the_repository_by_default(name: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    out = parser_of(name).parse_args([]).out
    assert out == Path("vecraft-bench-results") and not out.is_absolute()
    assert out.resolve() == tmp_path / "vecraft-bench-results"
    assert ROOT / "bench" not in out.resolve().parents and out.resolve() != ROOT / "bench"
    assert _report.REPO_BENCH == ROOT / "bench"


def test_bench_latency_help_names_the_vecraft_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "latency", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: vecraft bench latency")
    assert "python -m" not in out
    assert "sequential searches per kind" in out and "--no-report" in out
