"""README's two commands and what CI runs must not drift apart."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]


def _readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```\n(.*?)```", text, re.DOTALL)
    assert first_block is not None, "README.md has no code block"
    return [line for line in first_block.group(1).splitlines() if line.strip()]


def _ci_test_command() -> str:
    match = re.search(r"^TEST_COMMAND='(.*)'$", (ROOT / ".ci" / "run").read_text(), re.MULTILINE)
    assert match is not None, ".ci/run defines no TEST_COMMAND='...' line"
    return match.group(1)


def test_readme_starts_with_exactly_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert text.index("```") < text.index("\n## "), "the commands come before any section"
    run, test = _readme_commands()
    assert run.endswith("&& vecraft up")
    assert test.endswith("&& pytest")


def test_ci_runs_the_readme_test_command() -> None:
    assert _ci_test_command() == _readme_commands()[1]
    script = (ROOT / ".ci" / "run").read_text()
    assert 'bash -c "$TEST_COMMAND"' in script
    assert os.access(ROOT / ".ci" / "run", os.X_OK)
    subprocess.run(["bash", "-n", str(ROOT / ".ci" / "run")], check=True)
