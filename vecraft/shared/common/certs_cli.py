"""``vecraft certs init``: a local CA and one certificate per service (docs/security.md#tls).

Writes ``ca.pem``/``ca.key`` and ``<service>.pem``/``<service>.key`` into ``--dir``
(default ``./vecraft-data/certs``, where ``vecraft up --tls`` looks), keys mode 0600.
Files already there are kept; ``--force`` replaces them all.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vecraft.shared.common.certs import DEFAULT_SERVICES, LOCAL_NAMES, init_certs

DEFAULT_DIR = Path("vecraft-data") / "certs"


def _split(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _init(ns: argparse.Namespace) -> int:
    services = _split(ns.services) or list(DEFAULT_SERVICES)
    try:
        made = init_certs(ns.dir, hosts=_split(ns.hosts), services=services, force=ns.force)
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
    init.set_defaults(handler=_init)
