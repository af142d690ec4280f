"""`vecraft up --cluster --tls`: etcd and NATS are mutual TLS too, and the cluster still serves.

One ``vecraft up --cluster --tls`` (3 etcd members, 3 NATS servers, two journal instances on
JetStream, the meta manager on etcd): writes and strong reads work through the gateway; the
journal's NATS connections and the meta manager's etcd channel are TLS; a plain-text client and a
client presenting no certificate or one of another CA are refused by etcd and by NATS, while the
same client code with the cluster's certificate gets through.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
import pytest

from tests.support.procs import free_port
from vecraft.cli import cluster_status
from vecraft.local.topology import ClusterPlan, load_plan
from vecraft.services.journal_service.wal import jetstream_io
from vecraft.services.meta_manager.store.etcd import EtcdMetaStore
from vecraft.shared.common import tls
from vecraft.shared.common.certs import CertSet, init_certs
from vecraft.shared.common.errors import Unavailable
from vecraft_client import VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.timeout(240)]


@dataclass
class Up:
    data: Path
    http_port: int
    plan: ClusterPlan
    #: Certificates of another CA, made beside the cluster's.
    other: CertSet

    @property
    def ca(self) -> Path:
        return self.data / "certs" / "ca.pem"

    def files(self, role: str, certs: Path | None = None) -> tls.TlsFiles:
        """``role``'s certificate (from ``certs``, default the cluster's) with the cluster's CA."""
        where = certs or self.data / "certs"
        return tls.TlsFiles(where / f"{role}.pem", where / f"{role}.key", self.ca)

    def ports(self, role: str) -> list[int]:
        return [p.grpc_port for p in self.plan.processes if p.role == role]

    def monitor(self, role: str) -> list[int]:
        return [p.http_port for p in self.plan.processes if p.role == role]


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    base = tmp_path_factory.mktemp("cluster-tls")
    data, log_path = base / "data", base / "up.log"
    http_port, grpc_port = free_port(), free_port()
    with open(log_path, "wb") as log:
        cmd = [sys.executable, "-m", "vecraft", "up", "--cluster", "--tls", "--data-dir", str(data),
               "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--shards", "1"]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 150
        while "Vecraft is up" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.1)
        plan = load_plan(data)
        assert plan is not None
        yield Up(data=data, http_port=http_port, plan=plan, other=init_certs(base / "other"))
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_writes_and_strong_reads_go_through_tls_etcd_and_nats(up: Up) -> None:
    with VecraftClient(f"https://127.0.0.1:{up.http_port}", ca_cert=up.ca) as client:
        client.create_collection("cluster_tls", dim=4)  # DDL: journal on NATS, catalog in etcd
        client.insert_vectors([[1, 0, 0, 0], [0, 1, 0, 0]], ids=["a", "b"], collection="cluster_tls")
        hits = client.vector_search([0, 1, 0, 0], k=1, consistency_level="strong", collection="cluster_tls")
        assert hits.results[0].id == "b"
    # The supervisor's probes (plain HTTP health ports of etcd and NATS) still see every member.
    status = cluster_status(up.data)
    assert status is not None and status["all_up"], status
    assert {r["name"] for r in status["processes"] if r["role"] in ("etcd", "nats")} == {
        "etcd-0", "etcd-1", "etcd-2", "nats-0", "nats-1", "nats-2"}
    for port in up.monitor("nats"):
        varz = httpx.get(f"http://127.0.0.1:{port}/varz", timeout=5).json()
        assert varz["tls_required"] and varz["tls_verify"], varz
        assert varz["cluster"]["tls_required"] and varz["cluster"]["tls_verify"], varz["cluster"]
    # Both journal instances hold a TLS connection to NATS.
    journals = []
    for port in up.monitor("nats"):
        connz = httpx.get(f"http://127.0.0.1:{port}/connz", timeout=5).json()
        journals += [c for c in connz["connections"] if c.get("name", "").startswith("vecraft-journal")]
    assert len(journals) >= 2 and all(c.get("tls_version") for c in journals), journals


async def _etcd_get(endpoints: list[str], files: tls.TlsFiles | None) -> str | None:
    store = EtcdMetaStore(endpoints, "/tls-probe", retry_seconds=1.0, call_timeout_s=2, tls_files=files)
    try:
        await store.start()
        await store.set_tenant_partition("probe", "data-0")
        return await store.get_tenant_partition("probe")
    finally:
        await store.stop()


async def test_etcd_takes_only_clients_with_a_certificate_of_the_cluster_ca(up: Up) -> None:
    https = [f"https://127.0.0.1:{p}" for p in up.ports("etcd")]
    assert await _etcd_get(https, up.files("meta")) == "data-0"
    with pytest.raises(Unavailable):  # plain text to the TLS client port
        await _etcd_get([f"http://127.0.0.1:{p}" for p in up.ports("etcd")], None)
    with pytest.raises(Unavailable):  # the CA trusts the server; the server does not trust the client
        await _etcd_get(https, up.files("meta", up.other.directory))
    # No certificate at all: refused at the handshake (the client port's HTTP /health is a witness).
    anonymous = ssl.create_default_context(cafile=str(up.ca))
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{https[0]}/health", verify=anonymous, timeout=5)
    member = ssl.create_default_context(cafile=str(up.ca))
    member.load_cert_chain(str(up.data / "certs" / "meta.pem"), str(up.data / "certs" / "meta.key"))
    assert httpx.get(f"{https[0]}/health", verify=member, timeout=5).json()["health"] == "true"


async def _nats_account(urls: list[str], context: ssl.SSLContext | None) -> object:
    client = await nats.connect(urls, tls=context, allow_reconnect=False, max_reconnect_attempts=0,
                                connect_timeout=3)
    try:
        return await client.jetstream().account_info()
    finally:
        await client.close()


async def test_nats_takes_only_clients_with_a_certificate_of_the_cluster_ca(up: Up) -> None:
    urls = [f"tls://127.0.0.1:{p}" for p in up.ports("nats")]
    # The journal's own way in: jetstream_io.connect with the process's client certificate.
    tls.configure_client(up.files("journal"))
    try:
        client = await jetstream_io.connect(urls, name="tls-probe", timeout=3)
        try:
            assert client.connected_url is not None and client.connected_url.scheme == "tls"
            assert (await client.jetstream().account_info()).streams >= 1
        finally:
            await client.close()
    finally:
        tls.configure_client(None)
    # A plain-text client: told TLS is required, and closed on when it speaks without it.
    reader, writer = await asyncio.open_connection("127.0.0.1", up.ports("nats")[0])
    try:
        info = await asyncio.wait_for(reader.readline(), 5)
        assert b'"tls_required":true' in info
        writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
        await writer.drain()
        assert b"PONG" not in await asyncio.wait_for(reader.read(1024), 5)
    finally:
        writer.close()
    # A certificate of another CA: the server is trusted, the client is not.
    foreign = ssl.create_default_context(cafile=str(up.ca))
    foreign.load_cert_chain(str(up.other.services["journal"].cert), str(up.other.services["journal"].key))
    with pytest.raises((OSError, nats.errors.Error, asyncio.TimeoutError)):
        await _nats_account(urls, foreign)
    with pytest.raises((OSError, nats.errors.Error, asyncio.TimeoutError)):  # no certificate at all
        await _nats_account(urls, ssl.create_default_context(cafile=str(up.ca)))
    cluster = ssl.create_default_context(cafile=str(up.ca))
    cluster.load_cert_chain(str(up.data / "certs" / "journal.pem"), str(up.data / "certs" / "journal.key"))
    assert await _nats_account(urls, cluster) is not None
