"""README items of issue 15: the lag demo uses ack=journal and explains ack next to the
consistency levels (item 5); cluster mode says which extra to install (item 14)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from vecraft import cli

pytestmark = pytest.mark.unit

README = (Path(__file__).resolve().parents[3] / "README.md").read_text()


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def test_lag_demo_writes_with_ack_journal() -> None:
    demo = [b for b in python_blocks() if "lagdemo" in b]
    assert len(demo) == 1, "README has one lag demo"
    assert 'ack="journal"' in demo[0] and '"eventual"' in demo[0] and '"strong"' in demo[0]
    before = README[:README.index(demo[0])]
    assert "--apply-delay-ms 1000" in before[-800:]


def test_ack_policies_are_explained_beside_the_consistency_levels() -> None:
    levels = README.index("## Consistency levels")
    section = README[levels:README.index("\n## ", levels + 1)]
    for ack in ("`all` (default)", "`one`", "`journal`"):
        assert f"| {ack} |" in section, f"ack {ack} missing from the consistency section"


def test_cluster_mode_names_its_extra_beside_the_command() -> None:
    lines = README.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("vecraft up --cluster"))
    assert lines[at - 1].startswith('pip install -e ".[cluster]"')
    assert cli.CLUSTER_EXTRA_INSTALL == 'pip install -e ".[cluster]"'
