"""`vecraft up --cluster --tls`: the etcd and NATS flags and configuration planned, and the TLS choice
of their clients (the meta manager's etcd channel, the journal's NATS connection)."""

from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path

import pytest

from vecraft.local import topology
from vecraft.local.etcd import tls_args
from vecraft.local.nats import nats_config
from vecraft.local.ports import PortPair
from vecraft.local.topology import ClusterParams, PlanConflict
from vecraft.services.journal_service.wal import jetstream_io
from vecraft.services.meta_manager.store.etcd import channel_credentials, endpoint_scheme
from vecraft.shared.common import tls
from vecraft.shared.common.certs import init_certs
from vecraft.shared.common.errors import InvalidRequest

pytestmark = pytest.mark.unit

ETCD_TLS_FLAGS = ("--cert-file", "--key-file", "--trusted-ca-file", "--peer-cert-file", "--peer-key-file",
                  "--peer-trusted-ca-file")


def _value(args: tuple[str, ...], flag: str) -> str:
    return args[args.index(flag) + 1]


def _plan(tmp_path: Path, *, tls_on: bool) -> tuple[topology.ClusterPlan, dict[str, PortPair]]:
    params = ClusterParams(shards=1, cluster=True, tls=tls_on)
    names = [p.name for p in topology.process_names(params) if p.name != "gateway"]
    ports = {n: PortPair(grpc=30000 + 3 * i, http=30001 + 3 * i, peer=30002 + 3 * i)
             for i, n in enumerate(names)}
    return topology.plan_cluster(tmp_path, params, ports, binaries={"etcd": "etcd", "nats": "nats"}), ports


def test_etcd_members_serve_clients_and_peers_over_mutual_tls(tmp_path: Path) -> None:
    plan, ports = _plan(tmp_path, tls_on=True)
    certs = tmp_path / "certs"
    for i in range(3):
        spec, pair = plan.get(f"etcd-{i}"), ports[f"etcd-{i}"]
        args = spec.args
        assert [_value(args, f) for f in ETCD_TLS_FLAGS] == [
            str(certs / "etcd.pem"), str(certs / "etcd.key"), str(certs / "ca.pem")] * 2
        assert "--client-cert-auth" in args and "--peer-client-cert-auth" in args
        assert _value(args, "--listen-client-urls") == _value(args, "--advertise-client-urls") \
            == f"https://127.0.0.1:{pair.grpc}"
        assert _value(args, "--listen-peer-urls") == _value(args, "--initial-advertise-peer-urls") \
            == f"https://127.0.0.1:{pair.peer}"
        assert _value(args, "--initial-cluster") == ",".join(
            f"etcd-{m}=https://127.0.0.1:{ports[f'etcd-{m}'].peer}" for m in range(3))
        # The supervisor's /health probe: plain HTTP on the metrics URL, no certificate.
        assert _value(args, "--listen-metrics-urls") == f"http://127.0.0.1:{pair.http}"
        assert (spec.http_scheme, spec.ready_path, spec.tls_ca) == ("http", "/health", None)
    meta = plan.get("meta")
    assert _value(meta.args, "--etcd-endpoints") == ",".join(
        f"https://127.0.0.1:{ports[f'etcd-{i}'].grpc}" for i in range(3))
    assert _value(meta.args, "--tls-cert") == str(certs / "meta.pem")


def test_nats_servers_have_tls_blocks_for_clients_and_routes(tmp_path: Path) -> None:
    plan, ports = _plan(tmp_path, tls_on=True)
    certs = tmp_path / "certs"
    block = (f'tls {{ cert_file: "{certs / "nats.pem"}", key_file: "{certs / "nats.key"}", '
             f'ca_file: "{certs / "ca.pem"}", verify: true')
    for i in range(3):
        spec, pair = plan.get(f"nats-{i}"), ports[f"nats-{i}"]
        [(_, conf)] = spec.files
        top, cluster = conf.split("\ncluster ")
        assert block in top and block in cluster  # clients, and routes inside the cluster block
        assert f"listen: 127.0.0.1:{pair.grpc}" in top
        assert f"http: 127.0.0.1:{pair.http}" in top and "https:" not in conf  # monitoring stays HTTP
        assert "jetstream" in top
        assert (spec.http_scheme, spec.ready_path, spec.tls_ca) == ("http", "/healthz", None)
    for journal in ("journal-0", "journal-1"):
        args = plan.get(journal).args
        assert _value(args, "--nats-url") == ",".join(
            f"tls://127.0.0.1:{ports[f'nats-{i}'].grpc}" for i in range(3))
        assert _value(args, "--tls-cert") == str(certs / "journal.pem")
        assert _value(args, "--tls-ca") == str(certs / "ca.pem")


def test_without_tls_etcd_and_nats_stay_plain(tmp_path: Path) -> None:
    plan, _ = _plan(tmp_path, tls_on=False)
    assert not any(f in plan.get("etcd-0").args for f in ("--cert-file", "--client-cert-auth"))
    assert "tls {" not in plan.get("nats-0").files[0][1]
    assert _value(plan.get("meta").args, "--etcd-endpoints").startswith("127.0.0.1:")


@pytest.mark.parametrize("stored_tls", [False, True])
def test_tls_cannot_be_toggled_on_a_cluster_mode_directory(stored_tls: bool) -> None:
    stored = ClusterParams(cluster=True, tls=stored_tls)
    with pytest.raises(PlanConflict, match="peer") as caught:
        topology.resolve_params(stored, {"tls": not stored_tls})
    assert caught.value.details == {"parameter": "tls", "stored": stored_tls, "requested": not stored_tls}
    assert topology.resolve_params(stored, {"tls": stored_tls}).tls is stored_tls
    # Outside cluster mode there is no etcd: TLS may come and go.
    local = dataclasses.replace(stored, cluster=False)
    assert topology.resolve_params(local, {"tls": not stored_tls}).tls is (not stored_tls)


def test_launchers_refuse_tls_without_a_ca(tmp_path: Path) -> None:
    files = tls.TlsFiles(tmp_path / "x.pem", tmp_path / "x.key")
    with pytest.raises(ValueError, match="CA"):
        tls_args(files)
    with pytest.raises(ValueError, match="CA"):
        nats_config(name="n", client_port=1, monitor_port=2, store_dir=tmp_path, tls=files)


def test_etcd_channel_is_tls_for_https_endpoints_or_with_tls_files(tmp_path: Path) -> None:
    certs = init_certs(tmp_path / "certs", services=["meta"])
    files = tls.TlsFiles(certs.services["meta"].cert, certs.services["meta"].key, certs.ca.cert)
    assert channel_credentials(["127.0.0.1:1", "127.0.0.1:2"], None) is None
    assert channel_credentials(["http://127.0.0.1:1"], files) is None  # http:// says plain text
    assert channel_credentials(["127.0.0.1:1"], files) is not None
    assert channel_credentials(["https://127.0.0.1:1"], files) is not None
    assert channel_credentials(["https://127.0.0.1:1"], None) is not None  # the system's trust store
    assert endpoint_scheme(["https://a:1", "https://b:2"]) == "https"
    with pytest.raises(InvalidRequest, match="mix"):
        endpoint_scheme(["https://a:1", "b:2"])
    with pytest.raises(InvalidRequest, match="scheme"):
        endpoint_scheme(["unix://a:1"])


def test_nats_connection_uses_the_process_certificate(tmp_path: Path) -> None:
    certs = init_certs(tmp_path / "certs", services=["journal"])
    assert jetstream_io.tls_context() is None
    tls.configure_client(tls.TlsFiles(certs.services["journal"].cert, certs.services["journal"].key,
                                      certs.ca.cert))
    try:
        context = jetstream_io.tls_context()
    finally:
        tls.configure_client(None)
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("organizationName", "Vecraft"),), (("commonName", "Vecraft local CA"),))]
