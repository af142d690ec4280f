"""A local certificate authority and one certificate per service (``vecraft certs init``).

:func:`init_certs` writes, into one directory::

    ca.pem  ca.key                 the CA (self-signed, 10 years)
    <service>.pem  <service>.key   one per service name, signed by the CA (825 days)

Keys are ECDSA P-256, written PKCS#8 unencrypted with mode 0600. A service
certificate is good for both ends of a connection (extended key usage
``serverAuth`` and ``clientAuth``): the same files serve a service's ports and
authenticate it to the services it calls (mutual TLS). Its subject alternative
names are ``localhost``, ``127.0.0.1``, ``::1`` and every ``hosts`` entry (a DNS
name or an IP address).

Files already there are kept (an existing CA signs new service certificates), so
``init`` can run again to add a service; ``force=True`` replaces every file of
the given names (a new CA invalidates every certificate signed by the old one).

For Kubernetes (deployment/k8s, the Helm chart) :func:`k8s_names` gives the names a
service's pods are reached by, so that mutual TLS between pods verifies host names, and
:func:`k8s_secrets` turns the files into one Secret per service (docs/deployment.md).
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

#: The certificates ``vecraft certs init`` writes by default: one per service role of a cluster,
#: etcd and NATS (cluster mode) included.
DEFAULT_SERVICES: tuple[str, ...] = ("gateway", "journal", "meta", "storage", "query", "failover", "snapshot",
                                     "compactor", "etcd", "nats")
#: Names every certificate holds besides the hosts given.
LOCAL_NAMES: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
CERT_DAYS = 825
CA_NAME = "ca"

#: The Kubernetes Services of each certificate in deployment/k8s and the Helm chart, without the
#: ``<release>-`` prefix (``vecraft-`` in deployment/k8s). A test checks that every address a pod
#: is given there is one of :func:`k8s_names`.
K8S_SERVICES: dict[str, tuple[str, ...]] = {
    "gateway": ("gateway",), "journal": ("journal",), "meta": ("meta",), "storage": ("storage",),
    "query": ("query",), "failover": ("failover",), "compactor": ("compactor",),
    "etcd": ("etcd", "etcd-client"), "nats": ("nats",)}
#: Headless Services of StatefulSets: their pods are dialed as ``<service>-<n>.<service>``.
K8S_HEADLESS: frozenset[str] = frozenset({"journal", "storage", "etcd", "nats"})
#: Pods per StatefulSet named in full. A one-label wildcard (``*.vecraft-storage``) is refused
#: by TLS host checks (gRPC, OpenSSL), so the short per-pod names are listed one by one.
K8S_MAX_PODS = 16
K8S_DOMAIN = "cluster.local"


@dataclass(frozen=True, slots=True)
class CertPair:
    """A certificate and its private key on disk (PEM)."""

    cert: Path
    key: Path


@dataclass(frozen=True, slots=True)
class CertSet:
    """What :func:`init_certs` wrote (or found): the CA and one pair per service."""

    directory: Path
    ca: CertPair
    services: dict[str, CertPair]
    #: Files written by this call (the others were there already).
    created: tuple[Path, ...]


def pair_paths(directory: Path, name: str) -> CertPair:
    """Where the certificate and key of ``name`` live in ``directory``."""
    return CertPair(directory / f"{name}.pem", directory / f"{name}.key")


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())
    # Created 0600 from the start: never readable by others, even for a moment.
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _san(hosts: Iterable[str]) -> x509.SubjectAlternativeName:
    names: list[x509.GeneralName] = []
    seen: set[str] = set()
    for host in (*LOCAL_NAMES, *hosts):
        host = host.strip()
        if not host or host in seen:
            continue
        seen.add(host)
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _validity(days: int) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    # An hour of slack for clocks a little behind this machine's.
    return now - datetime.timedelta(hours=1), now + datetime.timedelta(days=days)


def make_ca(common_name: str = "Vecraft local CA") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A new self-signed CA certificate and its key (in memory)."""
    key = _new_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vecraft"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    not_before, not_after = _validity(CA_DAYS)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def make_service_cert(name: str, hosts: Sequence[str], ca_cert: x509.Certificate,
                      ca_key: ec.EllipticCurvePrivateKey
                      ) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for service ``name`` (server and client use), signed by the CA."""
    key = _new_key()
    not_before, not_after = _validity(CERT_DAYS)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vecraft"),
                                     x509.NameAttribute(NameOID.COMMON_NAME, f"vecraft-{name}")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=True, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(_san(hosts), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, key


def _load_ca(pair: CertPair) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(pair.cert.read_bytes())
    key = serialization.load_pem_private_key(pair.key.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{pair.key} is not an EC key written by `vecraft certs init`")
    return cert, key


def _check_name(name: str) -> None:
    if not name or name == CA_NAME or not all(c.isalnum() or c in "-_" for c in name):
        raise ValueError(f"invalid service name {name!r}: letters, digits, '-' and '_' only, not {CA_NAME!r}")


def k8s_peer_name(release: str = "vecraft") -> str:
    """The name every service certificate of a release holds and every service verifies
    (``--tls-server-name``): services dial the pod IPs peers registered, which no certificate
    made in advance can name."""
    return f"{release}-peer"


def k8s_names(service: str, namespace: str, release: str = "vecraft",
              pods: int = K8S_MAX_PODS) -> list[str]:
    """The DNS names pods reach ``service`` by in namespace ``namespace``.

    For each of its Services (:data:`K8S_SERVICES`) ``<svc>``, ``<svc>.<ns>``, ``<svc>.<ns>.svc``
    and ``<svc>.<ns>.svc.cluster.local``; for a StatefulSet's headless Service also the pods'
    names ``<svc>-<n>.<svc>`` (``n < pods``) and ``*.<svc>.<ns>[.svc[.cluster.local]]``.
    Every Vecraft service (not etcd or NATS, which are dialed by name) also gets
    :func:`k8s_peer_name`; ``snapshot``, which has no Service, only that.
    """
    names: list[str] = [] if service in ("etcd", "nats") else [k8s_peer_name(release)]
    for suffix in K8S_SERVICES.get(service, ()):
        svc = f"{release}-{suffix}"
        zones = (namespace, f"{namespace}.svc", f"{namespace}.svc.{K8S_DOMAIN}")
        names += [svc, *(f"{svc}.{zone}" for zone in zones)]
        if suffix in K8S_HEADLESS:
            names += [f"{svc}-{n}.{svc}" for n in range(pods)]
            names += [f"*.{svc}.{zone}" for zone in zones]
    return names


def init_certs(directory: str | os.PathLike[str], *, hosts: Sequence[str] = (),
               services: Sequence[str] = DEFAULT_SERVICES, force: bool = False,
               service_hosts: Mapping[str, Sequence[str]] | None = None) -> CertSet:
    """Create (or complete) the CA and the service certificates in ``directory``.

    ``service_hosts`` adds names to one service's certificate only (:func:`k8s_names`).

    Raises:
        ValueError: a service name that is not a plain word, or a CA file whose other half
            is missing (a key without its certificate or the reverse).
    """
    for name in services:
        _check_name(name)
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    created: list[Path] = []
    ca = pair_paths(root, CA_NAME)
    if force or not (ca.cert.exists() or ca.key.exists()):
        ca_cert, ca_key = make_ca()
        _write_key(ca.key, ca_key)
        _write_cert(ca.cert, ca_cert)
        created += [ca.cert, ca.key]
        force = True  # certificates of the old CA (if any) are worthless now
    elif not (ca.cert.exists() and ca.key.exists()):
        raise ValueError(f"{root} holds only half of the CA ({ca.cert.name}, {ca.key.name}); "
                         "remove it or pass --force to create a new CA")
    else:
        ca_cert, ca_key = _load_ca(ca)
    pairs: dict[str, CertPair] = {}
    for name in dict.fromkeys(services):
        pair = pairs[name] = pair_paths(root, name)
        if not force and pair.cert.exists() and pair.key.exists():
            continue
        own = (service_hosts or {}).get(name, ())
        cert, key = make_service_cert(name, [*hosts, *own], ca_cert, ca_key)
        _write_key(pair.key, key)
        _write_cert(pair.cert, cert)
        created += [pair.cert, pair.key]
    return CertSet(directory=root, ca=ca, services=pairs, created=tuple(created))


def k8s_secret_name(service: str, release: str = "vecraft") -> str:
    """The Secret holding ``service``'s certificate, key and the CA (deployment/k8s/overlays/mtls)."""
    return f"{release}-{service}-mtls"


def k8s_secrets(directory: str | os.PathLike[str], namespace: str, *, release: str = "vecraft",
                services: Sequence[str] | None = None) -> str:
    """One ``kubernetes.io/tls`` Secret per service as YAML: ``tls.crt``, ``tls.key`` and ``ca.crt``.

    ``services`` defaults to every certificate in ``directory`` that has a Kubernetes Service.

    Raises:
        FileNotFoundError: the CA or a named service's certificate or key is missing.
    """
    root = Path(directory)
    ca = pair_paths(root, CA_NAME).cert.read_bytes()
    names = list(services) if services is not None else [
        n for n in K8S_SERVICES if pair_paths(root, n).cert.exists()]
    docs = []
    for name in names:
        pair = pair_paths(root, name)
        data = {"tls.crt": pair.cert.read_bytes(), "tls.key": pair.key.read_bytes(), "ca.crt": ca}
        lines = ["apiVersion: v1", "kind: Secret", "metadata:", f"  name: {k8s_secret_name(name, release)}",
                 f"  namespace: {namespace}",
                 "  labels: {app.kubernetes.io/name: vecraft, app.kubernetes.io/component: " + name + "}",
                 "type: kubernetes.io/tls", "data:"]
        lines += [f"  {key}: {base64.b64encode(value).decode()}" for key, value in data.items()]
        docs.append("\n".join(lines) + "\n")
    return "---\n".join(docs)
