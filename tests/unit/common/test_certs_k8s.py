"""`vecraft certs init --k8s-namespace/--k8s-release`: the Kubernetes names in each certificate
(vecraft.shared.common.certs.k8s_names). deployment/overlays/mtls's tests check them against
every address the manifests give a pod."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509

from vecraft.shared.common.certs import K8S_MAX_PODS, init_certs, k8s_names

pytestmark = pytest.mark.unit


def _dns(path: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName)


def test_names_of_a_service_and_of_a_statefulset() -> None:
    assert k8s_names("meta", "prod") == ["vecraft-peer", "vecraft-meta", "vecraft-meta.prod",
                                         "vecraft-meta.prod.svc", "vecraft-meta.prod.svc.cluster.local"]
    storage = k8s_names("storage", "prod", release="db", pods=3)
    assert storage[:5] == ["db-peer", "db-storage", "db-storage.prod", "db-storage.prod.svc",
                           "db-storage.prod.svc.cluster.local"]
    assert storage[5:] == ["db-storage-0.db-storage", "db-storage-1.db-storage", "db-storage-2.db-storage",
                           "*.db-storage.prod", "*.db-storage.prod.svc",
                           "*.db-storage.prod.svc.cluster.local"]
    assert "vecraft-etcd-client.prod.svc" in k8s_names("etcd", "prod")
    assert k8s_names("snapshot", "prod") == ["vecraft-peer"]
    assert "vecraft-peer" not in k8s_names("etcd", "prod") + k8s_names("nats", "prod")


def test_init_adds_each_services_own_names_only(tmp_path: Path) -> None:
    made = init_certs(tmp_path, services=["journal", "meta"], hosts=["db.example.com"],
                      service_hosts={"journal": k8s_names("journal", "prod")})
    journal, meta = _dns(made.services["journal"].cert), _dns(made.services["meta"].cert)
    assert journal[:2] == ["localhost", "db.example.com"]
    assert f"vecraft-journal-{K8S_MAX_PODS - 1}.vecraft-journal" in journal
    assert "vecraft-journal.prod.svc.cluster.local" in journal
    assert meta == ["localhost", "db.example.com"]
