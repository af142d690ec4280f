"""TLS with real processes: mutual TLS between every service, HTTPS and gRPC TLS at the gateway.

One cluster for the module (journal, meta manager, a storage node, a query processor, the
gateway), every process given ``--tls-cert/--tls-key/--tls-ca`` from ``vecraft certs init``.
Processes are started by hand (not ``vecraft up``) so each test controls the certificates.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import httpx
import numpy as np
import pytest
from cryptography import x509

from tests.support.procs import ServiceProcess
from tests.support.waits import until
from vecraft.clients.meta import MetaClient
from vecraft.shared.common import tls
from vecraft.shared.common.certs import CertSet, init_certs
from vecraft_client import (
    AsyncVecraftClient,
    ConsistencyLevel,
    InvalidRequest,
    Unavailable,
    VecraftClient,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

READY_S = 90.0
DIM = 8


@dataclass
class TlsCluster:
    certs: CertSet
    foreign: CertSet
    root: Path
    meta: ServiceProcess
    journal: ServiceProcess
    gateway: ServiceProcess
    #: The gateway's own copies of its files (a test replaces them).
    gateway_cert: Path
    gateway_key: Path

    @property
    def https(self) -> str:
        return f"https://{self.gateway.http_address}"

    @property
    def grpcs(self) -> str:
        return f"grpcs://{self.gateway.grpc_address}"


def _tls_args(certs: CertSet, name: str, ca: Path | None = None) -> list[str]:
    pair = certs.services[name]
    return ["--tls-cert", str(pair.cert), "--tls-key", str(pair.key), "--tls-ca", str(ca or certs.ca.cert)]


def _wait_ready(proc: ServiceProcess, ca: Path) -> None:
    """Like ServiceProcess.wait_ready, over HTTPS."""
    deadline = time.monotonic() + READY_S
    verify = ssl.create_default_context(cafile=str(ca))
    while time.monotonic() < deadline:
        assert proc.alive(), f"{proc.name} exited:\n{proc.tail()}"
        with contextlib.suppress(httpx.HTTPError):
            answer = httpx.get(f"https://{proc.http_address}/readyz", verify=verify, timeout=1.0)
            if answer.status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{proc.name} not ready:\n{proc.tail()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsCluster]:
    root = tmp_path_factory.mktemp("tls-cluster")
    certs = init_certs(root / "certs")
    foreign = init_certs(root / "foreign", services=["query"])
    gw_dir = root / "gateway-certs"
    gw_dir.mkdir()
    gateway_cert, gateway_key = gw_dir / "gateway.pem", gw_dir / "gateway.key"
    shutil.copy(certs.services["gateway"].cert, gateway_cert)
    shutil.copy(certs.services["gateway"].key, gateway_key)
    logs = root / "logs"
    logs.mkdir()
    started: list[ServiceProcess] = []

    def start(module: str, name: str, args: list[str]) -> ServiceProcess:
        proc = ServiceProcess(f"vecraft.services.{module}", args, logs, name=name)
        started.append(proc)
        return proc.start(wait_ready=False)

    one = ["--data-partitions", "1"]
    try:
        journal = start("journal_service", "journal", ["--data-dir", str(root / "journal"), *one,
                                                       *_tls_args(certs, "journal")])
        _wait_ready(journal, certs.ca.cert)
        meta = start("meta_manager", "meta", [
            "--backend", "sqlite", "--journal-address", journal.grpc_address,
            "--data-dir", str(root / "meta"),
            "--default-shards", "1", "--default-replicas", "1", *one, *_tls_args(certs, "meta")])
        _wait_ready(meta, certs.ca.cert)
        wiring = ["--journal-address", journal.grpc_address, "--meta-address", meta.grpc_address, *one]
        storage = start("storage_node", "storage", [
            "--shards", "0", "--replica", "0", "--node-id", "storage-0", "--data-dir", str(root / "storage"),
            *wiring, *_tls_args(certs, "storage")])
        query = start("query_processor", "query", [
            "--shard", "0", "--node-id", "query-0", "--data-dir", str(root / "query"), *wiring,
            *_tls_args(certs, "query")])
        _wait_ready(storage, certs.ca.cert)
        _wait_ready(query, certs.ca.cert)
        gateway = start("api_gateway", "gateway", [
            "--journal-address", journal.grpc_address, "--meta-address", meta.grpc_address,
            "--data-dir", str(root / "gateway"), *one, "--tls-cert", str(gateway_cert),
            "--tls-key", str(gateway_key), "--tls-ca", str(certs.ca.cert)])
        _wait_ready(gateway, certs.ca.cert)
        yield TlsCluster(certs=certs, foreign=foreign, root=root, meta=meta, journal=journal,
                         gateway=gateway, gateway_cert=gateway_cert, gateway_key=gateway_key)
    finally:
        for proc in reversed(started):
            proc.stop(timeout=5)


def test_https_and_grpc_tls_end_to_end_through_mutual_tls(cluster: TlsCluster) -> None:
    """The SDK over HTTPS and gRPC TLS; every hop behind the gateway is mutual TLS."""
    ca = cluster.certs.ca.cert
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((20, DIM)).astype(np.float32)
    with VecraftClient(cluster.https, ca_cert=ca) as client:
        client.create_collection("tls_docs", dim=DIM)
        client.insert_vectors(vectors, ids=[f"v{i}" for i in range(20)], collection="tls_docs")
        hits = client.vector_search(vectors[3], k=2, consistency_level=ConsistencyLevel.STRONG,
                                    collection="tls_docs")
        assert hits.results[0].id == "v3"
    with VecraftClient(cluster.grpcs, transport="grpc", ca_cert=ca) as client:
        assert client.endpoint == cluster.grpcs
        hits = client.vector_search(vectors[5], k=1, consistency_level="strong", collection="tls_docs")
        assert hits.results[0].id == "v5"


async def test_async_client_over_tls(cluster: TlsCluster) -> None:
    for endpoint, transport in ((cluster.https, "http"), (cluster.grpcs, "grpc")):
        async with AsyncVecraftClient(endpoint, transport=transport,  # type: ignore[arg-type]
                                      ca_cert=cluster.certs.ca.cert) as client:
            assert "tls_docs" in [c.name for c in await client.list_collections()]
            hits = await client.vector_search([0.0] * DIM, k=1, collection="tls_docs")
            assert len(hits.results) == 1


def test_certificates_are_verified_by_default(cluster: TlsCluster) -> None:
    """Without ca_cert the system's CAs do not know the cluster's: refused, not silently accepted."""
    with VecraftClient(cluster.https, retry=None) as client, pytest.raises(Unavailable, match="CERTIFICATE"):
        client.list_collections()
    foreign_ca = cluster.foreign.ca.cert
    with VecraftClient(cluster.grpcs, transport="grpc", ca_cert=foreign_ca) as client, \
            pytest.raises(Unavailable):
        client.list_collections()


def test_admin_commands_reach_a_tls_gateway_with_its_ca(cluster: TlsCluster) -> None:
    """``vecraft quotas`` (as ``keys`` and ``audit``) takes --ca-cert; without it the system's CAs refuse."""
    base = [sys.executable, "-m", "vecraft", "quotas", "list", "--endpoint", cluster.https, "--json"]
    ok = subprocess.run([*base, "--ca-cert", str(cluster.certs.ca.cert)], capture_output=True, text=True,
                        timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout) == []
    refused = subprocess.run(base, capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in os.environ.items() if k != "VECRAFT_CA_CERT"})
    assert refused.returncode != 0 and "CERTIFICATE" in (refused.stdout + refused.stderr).upper()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_plaintext_endpoint_to_a_tls_gateway_says_so(cluster: TlsCluster,
                                                     transport: Literal["http", "grpc"]) -> None:
    endpoint = f"http://{cluster.gateway.http_address}" if transport == "http" \
        else f"grpc://{cluster.gateway.grpc_address}"
    with VecraftClient(endpoint, transport=transport) as client, \
            pytest.raises(InvalidRequest, match=r"speaks TLS: use (https|grpcs)://") as caught:
        client.list_collections()
    assert caught.value.details == {"reason": "tls_required"}


async def test_plaintext_endpoint_to_a_tls_gateway_says_so_async(cluster: TlsCluster) -> None:
    async with AsyncVecraftClient(f"http://{cluster.gateway.http_address}") as client:
        with pytest.raises(InvalidRequest, match="speaks TLS"):
            await client.list_collections()


async def test_a_service_with_a_certificate_of_another_ca_is_refused(cluster: TlsCluster) -> None:
    """A query processor whose certificate another CA signed cannot reach the meta manager or
    the journal: it never registers and never gets ready."""
    logs = cluster.root / "logs"
    intruder = ServiceProcess("vecraft.services.query_processor", [
        "--shard", "0", "--node-id", "intruder", "--data-dir", str(cluster.root / "intruder"),
        "--journal-address", cluster.journal.grpc_address, "--meta-address", cluster.meta.grpc_address,
        "--data-partitions", "1", *_tls_args(cluster.foreign, "query", ca=cluster.certs.ca.cert)],
        logs, name="intruder")
    intruder.start(wait_ready=False)
    try:
        await until(lambda: "meta registration failed" in intruder.tail(200), timeout=60)
        # Its own HTTPS port works (verified with its CA), and says: not ready.
        verify = ssl.create_default_context(cafile=str(cluster.foreign.ca.cert))
        answer = httpx.get(f"https://{intruder.http_address}/readyz", verify=verify, timeout=5)
        assert answer.status_code == 503
    finally:
        intruder.stop(timeout=5)
    # The meta manager's registry, read over mutual TLS with a certificate of the cluster.
    failover = cluster.certs.services["failover"]
    tls.configure_client(tls.TlsFiles(failover.cert, failover.key, cluster.certs.ca.cert))
    meta = MetaClient(cluster.meta.grpc_address)
    try:
        nodes = {n.node_id for n in await meta.list_nodes()}
    finally:
        await meta.close()
        tls.configure_client(None)
    assert "query-0" in nodes and "intruder" not in nodes


def _presented(port: int, certs: CertSet) -> str:
    """Common name of the certificate a new TLS connection to ``port`` gets."""
    context = ssl.create_default_context(cafile=str(certs.ca.cert))
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


async def test_replaced_certificate_serves_new_connections_without_restart(cluster: TlsCluster) -> None:
    certs = cluster.certs
    http_port, grpc_port = cluster.gateway.http_port, cluster.gateway.grpc_port
    assert "CN=vecraft-gateway" in _presented(grpc_port, certs)
    assert "CN=vecraft-gateway" in _presented(http_port, certs)
    # A new certificate of the same CA (the snapshot service's, as a stand-in for a renewal).
    shutil.copy(certs.services["snapshot"].key, cluster.gateway_key)
    shutil.copy(certs.services["snapshot"].cert, cluster.gateway_cert)
    assert "CN=vecraft-snapshot" in _presented(grpc_port, certs)  # gRPC: at the next handshake
    await until(lambda: "CN=vecraft-snapshot" in _presented(http_port, certs), timeout=30)
    with VecraftClient(cluster.grpcs, transport="grpc", ca_cert=certs.ca.cert) as client:
        client.list_collections()
    with VecraftClient(cluster.https, ca_cert=certs.ca.cert) as client:
        client.list_collections()
    assert cluster.gateway.alive()
