"""`vecraft up --tls` in the plan: every service gets its certificate, the CA and HTTPS probes."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from vecraft.local.ports import PortPair
from vecraft.local.topology import ClusterParams, plan_cluster
from vecraft.shared.common.certs import DEFAULT_SERVICES, init_certs

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def _ports(names: list[str]) -> dict[str, PortPair]:
    return {name: PortPair(grpc=20000 + 2 * i, http=20001 + 2 * i) for i, name in enumerate(names)}


@pytest.mark.parametrize("distributed", [True, False])
def test_every_service_gets_its_certificate_and_the_ca(tmp_path: Path, distributed: bool) -> None:
    names = ["journal", "meta", "storage-0", "query-0", "failover", "compactor", "gateway"]
    init_certs(tmp_path / "certs")
    plan = plan_cluster(tmp_path, ClusterParams(shards=1, storage_nodes=1, tls=True, distributed=distributed),
                        _ports(names))
    certs = tmp_path / "certs"
    for spec in plan.services:
        args = list(spec.args)
        assert args[args.index("--tls-cert") + 1] == str(certs / f"{spec.role}.pem")
        assert args[args.index("--tls-key") + 1] == str(certs / f"{spec.role}.key")
        assert args[args.index("--tls-ca") + 1] == str(certs / "ca.pem")
        assert "--tls-client-ca" not in args
        assert spec.http_scheme == "https"
    assert all(p.tls_ca == certs / "ca.pem" for p in plan.processes)
    assert plan.http_verify() is not True


def test_without_tls_nothing_changes(tmp_path: Path) -> None:
    plan = plan_cluster(tmp_path, ClusterParams(shards=1, storage_nodes=1, distributed=True),
                        _ports(["journal", "meta", "storage-0", "query-0", "failover", "compactor",
                                "gateway"]))
    assert all("--tls-cert" not in s.args and s.http_scheme == "http" for s in plan.services)
    assert plan.http_verify() is True


def test_up_completes_a_certs_dir_made_before_etcd_and_nats_had_certificates(tmp_path: Path) -> None:
    """`vecraft up --tls` calls init_certs with the defaults: what an older directory lacks is added,
    signed by its CA; what it holds is kept."""
    older = [s for s in DEFAULT_SERVICES if s not in ("etcd", "nats")]
    first = init_certs(tmp_path / "certs", services=older)
    kept = {p: p.read_bytes() for p in first.created}
    again = init_certs(tmp_path / "certs")
    assert sorted(p.name for p in again.created) == ["etcd.key", "etcd.pem", "nats.key", "nats.pem"]
    assert all(p.read_bytes() == data for p, data in kept.items())
    ca = x509.load_pem_x509_certificate(again.ca.cert.read_bytes())
    for role in ("etcd", "nats"):
        x509.load_pem_x509_certificate(again.services[role].cert.read_bytes()).verify_directly_issued_by(ca)
