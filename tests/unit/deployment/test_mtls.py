"""Mutual TLS between every pod: deployment/overlays/mtls and the chart's ``tls.internal.enabled``.

The overlay is rendered with ``kubectl kustomize`` (skipped without kubectl, as the base's
rendering tests are), the chart as test_helm_chart.py renders it (release ``db``, so names
other than the base's), and every object validated. Then: every Vecraft service runs with
``--tls-cert/--tls-key/--tls-ca`` pointing into its own mounted Secret and its settings parser
accepts them; every probe's scheme is the one its port speaks; certificates from ``vecraft certs
init --k8s-namespace`` name every address a pod is given (flags, etcd URLs, NATS routes), as a TLS
host check would match it; and ``vecraft certs k8s-secrets`` makes exactly the Secrets the
overlay mounts.
"""

from __future__ import annotations

import argparse
import base64
import re
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from cryptography import x509

from tests.unit.deployment.manifests import (
    DEPLOYMENT,
    K8S_VERSION,
    Container,
    by_kind,
    containers,
    helm_renderer,
    kubectl,
    parse_service_args,
    pod_argv,
    pod_names,
    render_helm,
    workloads,
)
from vecraft.shared.common import certs_cli
from vecraft.shared.common.certs import DEFAULT_SERVICES, init_certs, k8s_names, k8s_peer_name

pytestmark = pytest.mark.unit

OVERLAY = DEPLOYMENT / "overlays" / "mtls"
MOUNT = "/etc/vecraft/mtls"
NAMESPACE = "vecraft-prod"
#: Ports of etcd and NATS that stay plain HTTP under TLS (as `vecraft up --cluster --tls` runs them).
PLAIN_PORTS = {"etcd": {"metrics"}, "nats": {"monitor"}}
_ADDRESS = r"({release}-[a-z0-9.-]+):\d+"


@pytest.fixture(scope="module", params=["overlay", "helm"])
def source(request: pytest.FixtureRequest) -> tuple[list[dict[str, Any]], str]:
    """The rendered objects and the prefix of their names (the release)."""
    if request.param == "helm":
        if helm_renderer() is None:
            pytest.skip("no Helm renderer (neither helm nor helm-python-sdk)")
        return render_helm({"tls": {"internal": {"enabled": True}}}, release="db"), "db"
    exe = kubectl()
    if exe is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run([exe, "kustomize", str(OVERLAY)], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc], "vecraft"


@pytest.fixture(scope="module")
def rendered(source: tuple[list[dict[str, Any]], str]) -> list[dict[str, Any]]:
    return source[0]


@pytest.fixture(scope="module")
def release(source: tuple[list[dict[str, Any]], str]) -> str:
    return source[1]


def _component(c: Container) -> str:
    return str(c.workload["metadata"]["labels"]["app.kubernetes.io/component"])


def _secret_mount(c: Container) -> str:
    """The Secret mounted at MOUNT in this container."""
    volumes = {v["name"]: v for v in c.pod.get("volumes", [])}
    mounts = [m for m in c.spec.get("volumeMounts", []) if m["mountPath"] == MOUNT]
    assert len(mounts) == 1 and mounts[0].get("readOnly"), f"{c.id}: {MOUNT} mounted once, read-only"
    return str(volumes[mounts[0]["name"]]["secret"]["secretName"])


def test_every_object_is_valid_kubernetes(rendered: list[dict[str, Any]]) -> None:
    assert len(rendered) >= 20
    for obj in rendered:
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{obj['kind']}/{obj['metadata']['name']}: {exc.caught.message}")


def test_every_service_runs_with_its_own_certificate_and_the_ca(
        rendered: list[dict[str, Any]], release: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    services = [c for c in containers(rendered) if c.module is not None]
    assert len(services) == 7
    for c in services:
        assert _secret_mount(c) == f"{release}-{_component(c)}-mtls", c.id
        assert (c.flag("tls-cert"), c.flag("tls-key"), c.flag("tls-ca")) == (
            [f"{MOUNT}/tls.crt"], [f"{MOUNT}/tls.key"], [f"{MOUNT}/ca.crt"]), c.id
        # Peers register their pod IPs: every service checks the release's peer name instead.
        assert c.flag("tls-server-name") == [k8s_peer_name(release)], c.id
        argv = pod_argv(rendered, c, pod_names(c.workload)[0], tmp_path, monkeypatch)
        settings = parse_service_args(c.module or "", argv)
        assert (settings.tls_cert, settings.tls_key, settings.tls_ca, settings.tls_server_name) == (
            f"{MOUNT}/tls.crt", f"{MOUNT}/tls.key", f"{MOUNT}/ca.crt", k8s_peer_name(release)), c.id
    journal = next(c for c in services if _component(c) == "journal")
    assert all(url.startswith("tls://") for url in journal.flag("nats-url")[0].split(","))


def test_etcd_and_nats_require_client_certificates(rendered: list[dict[str, Any]], release: str) -> None:
    by_name = {_component(c): c for c in containers(rendered) if c.module is None}
    etcd = by_name["etcd"]
    assert _secret_mount(etcd) == f"{release}-etcd-mtls"
    args = etcd.args
    for flag in ("--client-cert-auth", "--peer-client-cert-auth", f"--trusted-ca-file={MOUNT}/ca.crt",
                 f"--peer-trusted-ca-file={MOUNT}/ca.crt", f"--cert-file={MOUNT}/tls.crt"):
        assert flag in args
    urls = [a.split("=", 1)[1] for a in args if a.split("=", 1)[0].endswith("-urls")]
    assert {u.split(":", 1)[0] for u in urls} == {"https", "http"}
    assert [u for u in urls if u.startswith("http:")] == ["http://0.0.0.0:2381"]
    assert "=http://" not in next(a for a in args if a.startswith("--initial-cluster="))
    nats = by_name["nats"]
    assert _secret_mount(nats) == f"{release}-nats-mtls"
    conf = next(m for m in by_kind(rendered, "ConfigMap")
                if m["metadata"]["name"] == f"{release}-nats-config")
    text = conf["data"]["nats.conf"]
    block = (f'tls {{ cert_file: "{MOUNT}/tls.crt", key_file: "{MOUNT}/tls.key", '
             f'ca_file: "{MOUNT}/ca.crt", verify: true')
    cluster = text.index("cluster {")
    assert text.count(block) == 2 and text.index(block) < cluster < text.rindex(block)


def test_every_probe_uses_the_scheme_of_its_port(rendered: list[dict[str, Any]]) -> None:
    checked = 0
    for c in containers(rendered):
        plain = PLAIN_PORTS.get(_component(c), set()) if c.module is None else set()
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = c.spec.get(kind, {}).get("httpGet")
            if get is None:
                continue
            expected = "HTTP" if get["port"] in plain else "HTTPS"
            assert get.get("scheme", "HTTP") == expected, f"{c.id} {kind} on {get['port']}"
            checked += 1
    assert checked >= 7 * 3 + 1 + 3


def _san_matches(pattern: str, host: str) -> bool:
    """RFC 6125 matching as gRPC and OpenSSL do it: a wildcard stands for the whole leftmost
    label only, and needs two labels after it."""
    if not pattern.startswith("*."):
        return pattern == host
    rest = pattern[2:]
    return rest.count(".") >= 1 and host.count(".") == rest.count(".") + 1 and host.endswith("." + rest)


def test_every_address_a_pod_is_given_is_named_in_the_certificate_it_reaches(
        rendered: list[dict[str, Any]], release: str, tmp_path: Path) -> None:
    made = init_certs(tmp_path, services=DEFAULT_SERVICES,
                      service_hosts={s: k8s_names(s, NAMESPACE, release) for s in DEFAULT_SERVICES})
    sans = {name: x509.load_pem_x509_certificate(pair.cert.read_bytes()).extensions
            .get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
            for name, pair in made.services.items()}
    # Which certificate answers at each Service name (and at its pods' names, when headless).
    owner = {s["metadata"]["name"]: s["metadata"]["labels"]["app.kubernetes.io/component"]
             for s in by_kind(rendered, "Service")}
    texts: list[str] = []
    for c in containers(rendered):
        for pod in pod_names(c.workload):
            texts += c.expanded_args(c.env(pod))
    texts += [v for m in by_kind(rendered, "ConfigMap") for v in m["data"].values()]
    pattern = re.compile(_ADDRESS.format(release=release))
    addresses = {m.group(1) for text in texts for m in pattern.finditer(text)}
    expected = {"meta", "etcd-client", "etcd-2.{r}-etcd", "nats-1.{r}-nats"}
    assert {f"{release}-{e.format(r=release)}" for e in expected} <= addresses
    for host in sorted(addresses):
        service = host.split(".")[-1]
        component = owner[service]
        for form in (host, *(f"{host}.{NAMESPACE}{zone}" for zone in ("", ".svc", ".svc.cluster.local"))):
            assert any(_san_matches(p, form) for p in sans[component]), f"{form} not in {component}'s cert"
    # What services dial by registered pod IP is checked against the peer name: every Vecraft
    # service's certificate holds it.
    for name in DEFAULT_SERVICES:
        assert (k8s_peer_name(release) in sans[name]) is (name not in ("etcd", "nats")), name


def test_san_matching_refuses_a_one_label_wildcard() -> None:
    assert _san_matches("*.vecraft-storage.ns", "vecraft-storage-1.vecraft-storage.ns")
    assert not _san_matches("*.vecraft-storage", "vecraft-storage-1.vecraft-storage")
    assert not _san_matches("*.vecraft-storage.ns", "a.b.vecraft-storage.ns")


def test_k8s_secrets_are_the_secrets_the_overlay_mounts(
        rendered: list[dict[str, Any]], release: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="vecraft")
    certs_cli.add_commands(parser.add_subparsers(), argparse.HelpFormatter, str)

    def run(argv: list[str]) -> int:
        ns = parser.parse_args(argv)
        return int(ns.handler(ns))

    certs = tmp_path / "certs"
    assert run(["certs", "k8s-secrets", "--dir", str(certs), "--namespace", NAMESPACE]) == 1
    assert "vecraft certs init --k8s-namespace" in capsys.readouterr().err
    assert run(["certs", "init", "--dir", str(certs), "--k8s-namespace", NAMESPACE,
                "--k8s-release", release]) == 0
    capsys.readouterr()
    assert run(["certs", "k8s-secrets", "--dir", str(certs), "--namespace", NAMESPACE,
                "--release", release]) == 0
    secrets = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    mounted = {v["secret"]["secretName"] for w in workloads(rendered)
               for v in w["spec"]["template"]["spec"].get("volumes", [])
               if "secret" in v and v["secret"]["secretName"].endswith("-mtls")}
    assert {s["metadata"]["name"] for s in secrets} == mounted
    ca = (certs / "ca.pem").read_bytes()
    for secret in secrets:
        kubernetes_validate.validate(secret, K8S_VERSION, strict=True)
        assert secret["metadata"]["namespace"] == NAMESPACE and secret["type"] == "kubernetes.io/tls"
        name = secret["metadata"]["labels"]["app.kubernetes.io/component"]
        data = {k: base64.b64decode(v) for k, v in secret["data"].items()}
        assert data == {"tls.crt": (certs / f"{name}.pem").read_bytes(),
                        "tls.key": (certs / f"{name}.key").read_bytes(), "ca.crt": ca}
        cert = x509.load_pem_x509_certificate(data["tls.crt"])
        assert f"{release}-{name}.{NAMESPACE}.svc" in cert.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
