"""The `vecraft` command as a user runs it: help, up (with stand-in services), status, stop."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.support.procs import free_port
from vecraft.cli import UpSettings, cluster_status

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 120.0


def vecraft(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vecraft", *args], capture_output=True, text=True,
                          timeout=60, cwd=ROOT, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)


def status(data_dir: Path) -> tuple[int, dict[str, Any]]:
    result = vecraft("status", "--data-dir", str(data_dir), "--json")
    return result.returncode, json.loads(result.stdout)


def wait_for(predicate, what: str, timeout: float = TIMEOUT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.parametrize("command", [[], ["up"], ["status"], ["bench"]])
def test_help_exits_0_and_mentions_every_flag(command: list[str]) -> None:
    result = vecraft(*command, "--help")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    expected = {
        (): ["up", "status", "bench", "--version", "exit codes"],
        ("up",): ["--config", "VECRAFT_"] + ["--" + f.replace("_", "-") for f in UpSettings.model_fields],
        ("status",): ["--data-dir", "--json", "--timeout", "exit codes"],
        ("bench",): ["NAME", "ARGS", "available benchmarks"],
    }[tuple(command)]
    for word in expected:
        assert word in out, f"{word!r} missing from `vecraft {' '.join(command)} --help`"


def test_usage_errors(tmp_path: Path) -> None:
    assert vecraft().returncode == 2
    bad = vecraft("up", "--cluster", "--shards", "0", "--data-dir", str(tmp_path / "never-started"))
    assert bad.returncode == 2 and "shards must be >= 1" in bad.stderr
    unknown = vecraft("bench", "no-such-benchmark", "--quick")
    assert unknown.returncode == 2 and "unknown benchmark 'no-such-benchmark'" in unknown.stderr


def test_status_without_a_cluster(tmp_path: Path) -> None:
    result = vecraft("status", "--data-dir", str(tmp_path))
    assert result.returncode == 2 and "no cluster" in result.stderr


@pytest.fixture
def fake_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path, Path]]:
    """A supervisor process running a 2-shard cluster of stand-in services."""
    data_dir = tmp_path / "data"
    out = tmp_path / "up.out"
    with open(out, "w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.cli.fake_cluster", "--data-dir", str(data_dir),
             "--shards", "2", "--query-nodes", "2", "--http-port", str(free_port()),
             "--grpc-port", str(free_port()),
             "--ready-timeout", str(TIMEOUT)],
            cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True)
    try:
        yield proc, data_dir, out
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        # Whatever happened above, leave no child behind.
        recorded = json.loads((data_dir / "supervisor.json").read_text()).get("processes", {}) \
            if (data_dir / "supervisor.json").exists() else {}
        for entry in recorded.values():
            if entry.get("pid") and psutil.pid_exists(entry["pid"]):
                os.kill(entry["pid"], signal.SIGKILL)


def test_up_status_restart_and_clean_stop(fake_up: tuple[subprocess.Popen[str], Path, Path]) -> None:
    proc, data_dir, out = fake_up
    wait_for(lambda: "Vecraft is up" in out.read_text() or proc.poll() is not None, "the banner")
    banner = out.read_text()
    assert proc.poll() is None, banner
    assert "HTTP API  http://127.0.0.1:" in banner and "/docs" in banner
    assert f"logs      {data_dir.resolve() / 'logs'}" in banner
    # `vecraft up` became the lean supervising program (same pid): the settings machinery it
    # planned with (pydantic's compiled core) is not in its memory any more.
    assert "vecraft.local.supervise" in psutil.Process(proc.pid).cmdline()
    assert "pydantic_core" not in Path(f"/proc/{proc.pid}/maps").read_text()

    code, report = status(data_dir)
    assert code == 0, report
    names = [r["name"] for r in report["processes"]]
    assert names == ["journal", "meta", "storage-0", "storage-1", "query-0", "query-1", "failover",
                     "compactor", "gateway"]
    assert all(r["health"] == "up" and r["pid"] for r in report["processes"])
    assert report["supervisor"]["running"] and report["supervisor"]["pid"] == proc.pid
    query1 = next(r for r in report["processes"] if r["name"] == "query-1")
    assert query1["shards"] == [1] and query1["healthz"]["node_id"] == "query-1"
    assert query1["healthz"]["shards"] == [1]  # what the plan passed is what the node took
    storage1 = next(r for r in report["processes"] if r["name"] == "storage-1")
    assert (storage1["shards"], storage1["replica"], storage1["healthz"]["shards"]) == ([1], 0, [1])

    table = vecraft("status", "--data-dir", str(data_dir))
    assert table.returncode == 0
    assert "NAME" in table.stdout and "storage-1" in table.stdout and "HEALTH" in table.stdout
    assert "SHARDS" in table.stdout and "REPLICA" in table.stdout

    # kill -9 a child: the supervisor restarts it with a new pid, ready again.
    os.kill(query1["pid"], signal.SIGKILL)

    def restarted() -> bool:
        rep = cluster_status(data_dir)  # in-process: polling through a new interpreter is slow
        assert rep is not None
        row = next(r for r in rep["processes"] if r["name"] == "query-1")
        return bool(rep["all_up"]) and row["pid"] not in (None, query1["pid"]) and row["restarts"] == 1

    wait_for(restarted, "query-1 to come back")

    # A second supervisor on the same directory is refused too, and leaves the stored plan alone.
    plan_before = (data_dir / "cluster.json").read_text()
    busy = subprocess.run([sys.executable, "-m", "tests.integration.cli.fake_cluster", "--data-dir",
                           str(data_dir), "--http-port", str(free_port())],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert busy.returncode == 2 and f"pid {proc.pid}" in busy.stdout + busy.stderr
    assert (data_dir / "cluster.json").read_text() == plan_before

    _, before = status(data_dir)
    child_pids = [r["pid"] for r in before["processes"]]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0, out.read_text()
    for pid in child_pids:
        assert not psutil.pid_exists(pid), f"child {pid} survived the supervisor"
    code, after = status(data_dir)
    assert code == 1
    assert not after["supervisor"]["running"]
    assert {r["health"] for r in after["processes"]} == {"down"}

    # Changing the shard count of existing data is refused before anything starts.
    refused = vecraft("up", "--data-dir", str(data_dir), "--shards", "3")
    assert refused.returncode == 2 and "--shards 2" in refused.stderr and "not supported" in refused.stderr
    assert (data_dir / "cluster.json").read_text() == plan_before
