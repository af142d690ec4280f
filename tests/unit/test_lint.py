"""ruff and mypy stay clean: CI runs pytest, so the linters run as tests.

Configuration is in pyproject.toml ([tool.ruff], [tool.mypy]); the generated
gRPC stubs are excluded. mypy keeps its incremental cache in .mypy_cache/
(git-ignored), so only the first run checks everything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.unit, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=230)


def test_ruff_is_clean() -> None:
    result = _run("ruff", "check", "--no-fix", "vecraft", "vecraft_client", "tests")
    assert result.returncode == 0, f"ruff check found problems:\n{result.stdout}{result.stderr}"


def test_mypy_is_clean() -> None:
    result = _run("mypy", "vecraft", "vecraft_client")
    assert result.returncode == 0, f"mypy found problems:\n{result.stdout}{result.stderr}"
