"""``vecraft certs init``: a local CA and one certificate per service (docs/security.md#tls).

Writes ``ca.pem``/``ca.key`` and ``<service>.pem``/``<service>.key`` into ``--dir``
(default ``./vecraft-data/certs``, where ``vecraft up --tls`` looks), keys mode 0600.
Files already there are kept; ``--force`` replaces them all. ``--k8s-namespace`` adds
the names pods reach each service by in Kubernetes; ``vecraft certs k8s-secrets`` prints the
files as one Secret per service (docs/deployment.md#mutual-tls-between-pods).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vecraft.shared.common.certs import DEFAULT_SERVICES, LOCAL_NAMES, init_certs, k8s_names, k8s_secrets

DEFAULT_DIR = Path("vecraft-data") / "certs"


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _init(ns: argparse.Namespace) -> int:
    services = _split(ns.services) or list(DEFAULT_SERVICES)
    own = ({name: k8s_names(name, ns.k8s_namespace, ns.k8s_release) for name in services}
           if ns.k8s_namespace else None)
    try:
        made = init_certs(ns.dir, hosts=_split(ns.hosts), services=services, force=ns.force,
                          service_hosts=own)
    except (ValueError, OSError) as exc:
        print(f"vecraft certs init: {exc}", file=sys.stderr)
        return 1
    for path in made.created:
        print(f"wrote {path}")
    kept = [name for name, pair in made.services.items() if pair.cert not in made.created]
    if kept:
        print(f"kept the existing certificates of {', '.join(kept)} in {made.directory} "
              "(--force replaces them)")
    print(f"CA: {made.ca.cert} (give it to clients: ca_cert= in the SDK, --tls-ca for services)")
    return 0


def _k8s_secrets(ns: argparse.Namespace) -> int:
    try:
        text = k8s_secrets(ns.dir, ns.namespace, release=ns.release, services=_split(ns.services) or None)
    except OSError as exc:
        print(f"vecraft certs k8s-secrets: {exc} (run `vecraft certs init --k8s-namespace ...` first)",
              file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def add_commands(sub: Any, formatter: type[argparse.HelpFormatter], wrap: Callable[[str], str]) -> None:
    """Add ``vecraft certs`` and its actions to the CLI's sub-command parser ``sub``."""
    certs = sub.add_parser(
        "certs", formatter_class=formatter, help="create a local CA and service certificates",
        description=wrap("TLS certificates for HTTPS and gRPC TLS at the gateway and mutual TLS between "
                         "services (docs/security.md#tls)."))
    actions = certs.add_subparsers(dest="action", metavar="ACTION", required=True)
    init = actions.add_parser(
        "init", formatter_class=formatter, help="create the CA and one certificate per service",
        description=wrap("Create ca.pem/ca.key and <service>.pem/<service>.key (ECDSA P-256; keys mode "
                         "0600). Each certificate serves and authenticates its service (server and "
                         f"client use) and names {', '.join(LOCAL_NAMES)} and every --hosts entry. "
                         "Existing files are kept, so running it again adds missing services."))
    init.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                      help="where to write the files (default %(default)s; `vecraft up --tls` uses "
                           "DATA_DIR/certs)")
    init.add_argument("--hosts", nargs="*", default=None, metavar="HOST",
                      help="more DNS names or IP addresses the certificates are valid for "
                           "(space- or comma-separated)")
    init.add_argument("--services", nargs="*", default=None, metavar="NAME",
                      help=f"certificates to create (default: {' '.join(DEFAULT_SERVICES)})")
    init.add_argument("--force", action="store_true",
                      help="replace existing files, the CA included (every old certificate stops working)")
    init.add_argument("--k8s-namespace", default=None, metavar="NS",
                      help="also name, in each certificate, the Kubernetes Services pods reach that "
                           "service by in namespace NS (<svc>, <svc>.NS, <svc>.NS.svc, "
                           "<svc>.NS.svc.cluster.local, "
                           "StatefulSet pods); docs/deployment.md#mutual-tls-between-pods")
    init.add_argument("--k8s-release", default="vecraft", metavar="NAME",
                      help="prefix of the Service names: vecraft in deployment/k8s, the Helm release "
                           "(its full name) with the chart (default %(default)s)")
    init.set_defaults(handler=_init)
    secrets = actions.add_parser(
        "k8s-secrets", formatter_class=formatter, help="print one Kubernetes Secret per service certificate",
        description=wrap("Print, as YAML for `kubectl apply -f -`, a Secret <release>-<service>-mtls "
                         "(type kubernetes.io/tls: tls.crt, tls.key, ca.crt) for every certificate in "
                         "--dir that a Kubernetes Service belongs to. The Secrets hold private keys: "
                         "pipe them to kubectl rather than committing them."))
    secrets.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                         help="the certificates (default %(default)s)")
    secrets.add_argument("--namespace", required=True, metavar="NS", help="the Secrets' namespace")
    secrets.add_argument("--release", default="vecraft", metavar="NAME",
                         help="prefix of the Secret names (default %(default)s)")
    secrets.add_argument("--services", nargs="*", default=None, metavar="NAME",
                         help="only these certificates (default: all with a Kubernetes Service)")
    secrets.set_defaults(handler=_k8s_secrets)
