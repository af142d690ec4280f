"""Atomic snapshot directories: replaced whole, and recoverable after a crash mid-swap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from vecraft.shared.index.snapshot_dir import atomic_directory, existing_snapshot

pytestmark = pytest.mark.unit


def test_replaces_whole_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "snap"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("1")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b").write_text("2")
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("3")
    assert (target / "a").read_text() == "3" and not (target / "sub").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]
    assert existing_snapshot(target) == target


def test_failed_write_keeps_the_old_snapshot(tmp_path: Path) -> None:
    target = tmp_path / "snap"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a").write_text("new")
        raise RuntimeError("disk full")
    assert (existing_snapshot(target) / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]


def test_crash_between_renames_finds_the_complete_copy(tmp_path: Path) -> None:
    target = tmp_path / "snap"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("old")
    os.rename(target, tmp_path / "snap.old")  # as if the process died right after this rename
    assert (existing_snapshot(target) / "a").read_text() == "old"
    with atomic_directory(target) as tmp:
        (tmp / "a").write_text("new")
    assert (existing_snapshot(target) / "a").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap"]


def test_no_snapshot_raises(tmp_path: Path) -> None:
    (tmp_path / "snap").mkdir()  # exists but was never completed
    with pytest.raises(FileNotFoundError):
        existing_snapshot(tmp_path / "snap")
