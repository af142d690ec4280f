"""The README's promise with the real services: `vecraft up` serves, and a second `up` keeps the data."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.support.procs import free_port
from vecraft.local.supervisor import module_available
from vecraft.local.topology import ROLE_MODULES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 180.0


def _up(data_dir: Path, out: Path, *flags: str) -> subprocess.Popen[bytes]:
    with open(out, "ab") as sink:
        return subprocess.Popen([sys.executable, "-m", "vecraft", "up", "--data-dir", str(data_dir),
                                 "--ready-timeout", str(TIMEOUT), *flags],
                                cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _wait_banner(proc: subprocess.Popen[bytes], out: Path, count: int) -> None:
    deadline = time.monotonic() + TIMEOUT * 2
    while out.read_text().count("Vecraft is up") < count:
        assert proc.poll() is None, out.read_text()
        assert time.monotonic() < deadline, out.read_text()
        time.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes], out: Path) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        assert proc.wait(60) == 0, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(not all(module_available(m) for m in ROLE_MODULES.values()),
                    reason="not every service is installed in this build")
def test_up_serves_and_resumes_with_the_same_data(tmp_path: Path) -> None:
    data_dir, out = tmp_path / "data", tmp_path / "up.out"
    http_port = free_port()
    base = f"http://127.0.0.1:{http_port}"
    proc = _up(data_dir, out, "--shards", "2", "--http-port", str(http_port), "--grpc-port", str(free_port()))
    try:
        _wait_banner(proc, out, 1)
        status = subprocess.run([sys.executable, "-m", "vecraft", "status", "--data-dir", str(data_dir),
                                 "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads(status.stdout)
        assert {r["health"] for r in report["processes"]} == {"up"}
        first_pids = [r["pid"] for r in report["processes"]]
        written = httpx.post(f"{base}/v1/vectors", timeout=60,
                             json={"id": "doc_123", "vector": [0.1, 0.2, 0.3, 0.4],
                                   "metadata": {"category": "documents"}})
        assert written.status_code in (200, 201), written.text
    finally:
        _stop(proc, out)

    # No flags: the stored plan brings back the same ports, shards and data.
    proc = _up(data_dir, out)
    try:
        _wait_banner(proc, out, 2)
        found = httpx.post(f"{base}/v1/vectors/search", timeout=60,
                           json={"vector": [0.1, 0.2, 0.3, 0.4], "k": 1, "consistency_level": "strong"})
        assert found.status_code == 200, found.text
        assert [r["id"] for r in found.json()["results"]] == ["doc_123"]
    finally:
        _stop(proc, out)
    assert not any(psutil.pid_exists(pid) for pid in first_pids)

