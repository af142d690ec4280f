"""`vecraft bench NAME ARGS`: listing and dispatch to vecraft.bench.NAME:main(ARGS)."""

from __future__ import annotations

import pytest

from vecraft import cli

pytestmark = pytest.mark.unit


@pytest.fixture
def fake_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "BENCH_PACKAGE", "tests.unit.common.fake_bench")


def test_listing_reads_first_docstring_lines(fake_benchmarks: None,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.bench_modules() == {
        "echo": "Echo benchmark: prints its arguments (stands in for a vecraft.bench module in tests)."}
    with pytest.raises(SystemExit) as info:
        cli.main(["bench", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "echo" in out and "Echo benchmark" in out and "More text" not in out


def test_dispatch_passes_arguments_and_exit_code(fake_benchmarks: None,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # Flags after NAME, --help included, belong to the benchmark.
    assert cli.main(["bench", "echo", "--rows", "10", "--help"]) == 0
    assert capsys.readouterr().out == "echo --rows 10 --help\n"
    assert cli.main(["bench", "echo", "--fail"]) == 7
    assert cli.main(["bench", "nope"]) == 2
    assert "unknown benchmark 'nope' (available: echo)" in capsys.readouterr().err
    assert cli.main(["bench"]) == 2


def test_no_bench_package_means_no_benchmarks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "BENCH_PACKAGE", "vecraft.no_such_package")
    assert cli.bench_modules() == {}
