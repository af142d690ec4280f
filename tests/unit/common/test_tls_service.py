"""TLS on a Service's ports, in process: mutual TLS on gRPC, HTTPS, certificate reload.

Real processes (a cluster with mutual TLS between them) are in tests/integration/tls/.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from grpc_health.v1 import health_pb2, health_pb2_grpc

from vecraft.shared.common import tls
from vecraft.shared.common.certs import CertSet, init_certs
from vecraft.shared.common.config import ServiceSettings
from vecraft.shared.common.service import Service, grpc_channel

pytestmark = [pytest.mark.unit, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    return init_certs(tmp_path_factory.mktemp("certs"), services=["server", "client", "next"])


@pytest.fixture(scope="module")
def foreign(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    """Certificates of another CA."""
    return init_certs(tmp_path_factory.mktemp("foreign"), services=["client"])


@pytest.fixture
async def service(certs: CertSet, tmp_path: Path) -> AsyncIterator[Service]:
    # A copy of the server's files, so a test may replace them.
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(certs.services["server"].cert, cert)
    shutil.copy(certs.services["server"].key, key)
    svc = Service(ServiceSettings(tls_cert=str(cert), tls_key=str(key), tls_ca=str(certs.ca.cert)))
    await svc.start()
    try:
        yield svc
    finally:
        await svc.shutdown(grace=1.0)
        tls.configure_client(None)


async def _check(address: str, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    channel = (grpc.aio.insecure_channel(address) if credentials is None
               else grpc.aio.secure_channel(address, credentials))
    try:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code()
    finally:
        await channel.close()


def _client(certs: CertSet, name: str = "client", ca: Path | None = None) -> grpc.ChannelCredentials:
    pair = certs.services[name]
    return tls.channel_credentials(tls.TlsFiles(pair.cert, pair.key, ca))


async def test_grpc_requires_a_client_certificate_of_the_cluster_ca(
        service: Service, certs: CertSet, foreign: CertSet) -> None:
    address = f"127.0.0.1:{service.grpc_port}"
    assert await _check(address, _client(certs, ca=certs.ca.cert)) is grpc.StatusCode.OK
    # A certificate from another CA, none at all, or no TLS: refused at the handshake.
    assert await _check(address, _client(foreign, ca=certs.ca.cert)) is grpc.StatusCode.UNAVAILABLE
    no_cert = grpc.ssl_channel_credentials(root_certificates=certs.ca.cert.read_bytes())
    assert await _check(address, no_cert) is grpc.StatusCode.UNAVAILABLE
    assert await _check(address, None) is grpc.StatusCode.UNAVAILABLE
    # The client refuses a server its CA did not sign.
    assert await _check(address, _client(foreign, ca=foreign.ca.cert)) is grpc.StatusCode.UNAVAILABLE


async def test_grpc_channel_of_a_tls_process_uses_its_files(service: Service, certs: CertSet) -> None:
    client = certs.services["client"]
    tls.configure_client(tls.TlsFiles(client.cert, client.key, certs.ca.cert))
    async with grpc_channel(f"127.0.0.1:{service.grpc_port}") as channel:
        answer = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_https_port_verifies_but_does_not_require_client_certificates(
        service: Service, certs: CertSet, foreign: CertSet) -> None:
    url = f"https://127.0.0.1:{service.http_port}/readyz"
    trust = ssl.create_default_context(cafile=str(certs.ca.cert))
    async with httpx.AsyncClient(verify=trust) as http:
        assert (await http.get(url)).status_code == 200  # a probe: no certificate
    bad = ssl.create_default_context(cafile=str(certs.ca.cert))
    bad.load_cert_chain(str(foreign.services["client"].cert), str(foreign.services["client"].key))
    async with httpx.AsyncClient(verify=bad) as http:
        with pytest.raises(httpx.HTTPError):
            await http.get(url)  # a certificate is checked when one is given
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await http.get(url)  # the system's CAs do not know the cluster's


def _presented(port: int, certs: CertSet) -> str:
    """Common name of the certificate a new TLS connection to ``port`` sees."""
    context = ssl.create_default_context(cafile=str(certs.ca.cert))
    context.load_cert_chain(str(certs.services["client"].cert), str(certs.services["client"].key))
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()


async def test_replaced_files_serve_new_connections_without_restart(service: Service, certs: CertSet) -> None:
    assert service.tls_server is not None and service.https_context is not None
    assert "CN=vecraft-server" in await asyncio.to_thread(_presented, service.grpc_port, certs)
    shutil.copy(certs.services["next"].key, service.tls_server.key)
    shutil.copy(certs.services["next"].cert, service.tls_server.cert)
    # gRPC: the next connection's handshake reads the changed files.
    assert "CN=vecraft-next" in await asyncio.to_thread(_presented, service.grpc_port, certs)
    address = f"127.0.0.1:{service.grpc_port}"
    assert await _check(address, _client(certs, ca=certs.ca.cert)) is grpc.StatusCode.OK
    # HTTPS: the live context loads them (the service's reload task does it every RELOAD_CHECK_S).
    assert service.https_context.reload_if_changed() or service.https_context.reloads == 1
    assert "CN=vecraft-next" in await asyncio.to_thread(_presented, service.http_port, certs)


async def test_a_peer_dialed_at_an_address_its_certificate_does_not_name_is_checked_by_the_peer_name(
        tmp_path: Path) -> None:
    """Kubernetes: peers register pod IPs, which no certificate names; with --tls-server-name the
    client checks that name instead (every certificate of the release holds it)."""
    made = init_certs(tmp_path, services=["server", "client"],
                      service_hosts={"server": ["db-peer"], "client": ["db-peer"]})
    server = Service(ServiceSettings(host="127.0.0.2", tls_cert=str(made.services["server"].cert),
                                     tls_key=str(made.services["server"].key), tls_ca=str(made.ca.cert)))
    await server.start()
    client = made.services["client"]
    address = f"127.0.0.2:{server.grpc_port}"  # not in the server's certificate (127.0.0.1 is)
    try:
        for server_name, expected in (("", grpc.StatusCode.UNAVAILABLE), ("db-peer", grpc.StatusCode.OK),
                                      ("other-peer", grpc.StatusCode.UNAVAILABLE)):
            tls.configure_client(tls.TlsFiles(client.cert, client.key, made.ca.cert), server_name=server_name)
            channel = grpc_channel(address)
            code = grpc.StatusCode.OK
            try:
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            except grpc.RpcError as exc:
                code = exc.code()
            finally:
                await channel.close()
            assert code is expected, server_name
    finally:
        tls.configure_client(None)
        await server.shutdown(grace=1.0)
