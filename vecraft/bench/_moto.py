"""An S3-compatible server on loopback for benchmarks and tests: moto's server mode, as a child process.

``moto[server]`` is a test dependency; :func:`moto_available` says whether it is
installed. The server keeps every object in its own memory and forgets them
when it stops.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from vecraft.local.process import free_port

#: Dummy credentials moto accepts; S3 clients must still sign with some.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "vecraft-test", "AWS_SECRET_ACCESS_KEY": "vecraft-test-secret",
               "AWS_DEFAULT_REGION": "us-east-1"}


def moto_available() -> bool:
    return importlib.util.find_spec("moto") is not None


class MotoServer:
    """``python -m moto.server`` on a free loopback port; ``with MotoServer(log) as s3: s3.endpoint``."""

    def __init__(self, log_path: Path, *, ready_timeout_s: float = 60.0) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.ready_timeout_s = ready_timeout_s
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, bucket: str, prefix: str = "") -> str:
        """A target URL for ``bucket``/``prefix`` on this server."""
        path = f"/{prefix.strip('/')}" if prefix.strip("/") else ""
        return f"s3://{bucket}{path}?endpoint_url={self.endpoint}&region=us-east-1"

    def start(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                          str(self.port)], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True,
                                         env={**os.environ, **CREDENTIALS})
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                if httpx.get(f"{self.endpoint}/moto-api/", timeout=1.0).status_code < 500:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"moto server not answering after {self.ready_timeout_s}s")
            time.sleep(0.1)

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` (with the dummy credentials)."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1",
                              aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                              aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])
        client.create_bucket(Bucket=bucket)

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
