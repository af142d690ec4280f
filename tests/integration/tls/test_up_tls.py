"""`vecraft up --tls` end to end: certificates created, HTTPS and gRPC TLS through the SDK."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.procs import free_port
from vecraft.cli import cluster_status
from vecraft_client import VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_up_tls_serves_https_and_grpcs_with_its_ca(tmp_path: Path) -> None:
    data, log_path = tmp_path / "data", tmp_path / "up.log"
    http_port, grpc_port = free_port(), free_port()
    with open(log_path, "wb") as log:
        cmd = [sys.executable, "-m", "vecraft", "up", "--tls", "--data-dir", str(data),
               "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--shards", "1"]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while "Vecraft is up" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.1)
        ca = data / "certs" / "ca.pem"
        banner = log_path.read_text()
        assert f"https://127.0.0.1:{http_port}" in banner and f"grpcs://127.0.0.1:{grpc_port}" in banner
        assert str(ca) in banner
        assert (data / "certs" / "ca.key").stat().st_mode & 0o777 == 0o600
        with VecraftClient(f"https://127.0.0.1:{http_port}", ca_cert=ca) as client:
            client.create_collection("up_tls", dim=4)
            client.insert_vectors([[1, 0, 0, 0], [0, 1, 0, 0]], ids=["a", "b"], collection="up_tls")
            hits = client.vector_search([0, 1, 0, 0], k=1, consistency_level="strong", collection="up_tls")
            assert hits.results[0].id == "b"
        with VecraftClient(f"grpcs://127.0.0.1:{grpc_port}", transport="grpc", ca_cert=ca) as client:
            hits = client.vector_search([1, 0, 0, 0], k=1, consistency_level="strong", collection="up_tls")
            assert hits.results[0].id == "a"
        status = cluster_status(data)  # probes every service over HTTPS with the cluster's CA
        assert status is not None and status["all_up"], status
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log_path.read_text()[-3000:]
