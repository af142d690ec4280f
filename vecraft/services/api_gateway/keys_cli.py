"""``vecraft keys create|list|revoke``: API key management through a gateway's admin endpoints.

The commands call ``POST /v1/keys``, ``GET /v1/keys`` and ``DELETE /v1/keys/{id}`` with an
admin key (``--api-key`` or ``$VECRAFT_API_KEY``) at ``--endpoint`` (or
``$VECRAFT_ENDPOINT``, default ``http://127.0.0.1:8000``). ``create`` prints the new
key once on stdout (with ``--json``: the whole answer), and nothing else there, so
``KEY=$(vecraft keys create --role read)`` works.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
from collections.abc import Callable
from typing import Any

import httpx

DEFAULT_ENDPOINT = "http://127.0.0.1:8000"


def add_gateway_arguments(p: argparse.ArgumentParser) -> None:
    """The flags every admin command (``vecraft keys``, ``quotas``, ``audit``) reaches the gateway with."""
    p.add_argument("--endpoint", default=os.environ.get("VECRAFT_ENDPOINT", DEFAULT_ENDPOINT),
                   help="gateway HTTP address, https:// for a gateway with TLS (default $VECRAFT_ENDPOINT, "
                        "else %(default)s)")
    p.add_argument("--api-key", default=os.environ.get("VECRAFT_API_KEY"),
                   help="an admin API key (default $VECRAFT_API_KEY)")
    p.add_argument("--ca-cert", default=os.environ.get("VECRAFT_CA_CERT"),
                   help="CA certificate that signed the gateway's (a `vecraft up --tls` cluster: "
                        "DATA/certs/ca.pem; default $VECRAFT_CA_CERT, else the system's CAs)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _client(ns: argparse.Namespace) -> httpx.Client:
    headers = {"Authorization": f"Bearer {ns.api_key}"} if ns.api_key else {}
    if ns.tenant_header:
        headers["X-Tenant"] = ns.tenant_header
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ns.ca_cert) if ns.ca_cert else True
    return httpx.Client(base_url=ns.endpoint.rstrip("/"), headers=headers, timeout=30, verify=verify)


def _call(ns: argparse.Namespace, method: str, path: str, **kwargs: Any) -> Any:
    """The JSON answer; raises SystemExit(1) with the server's message on an error."""
    try:
        with _client(ns) as client:
            response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise _Failed(f"cannot reach the gateway at {ns.endpoint}: {exc}") from exc
    if response.status_code >= 400:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise _Failed(f"HTTP {response.status_code}: {message}")
    return response.json()


class _Failed(Exception):
    pass


def _create(ns: argparse.Namespace) -> int:
    body: dict[str, Any] = {"role": ns.role}
    if ns.tenant:
        body["tenant"] = ns.tenant
    if ns.collections:
        body["collections"] = [c.strip() for c in ns.collections.split(",") if c.strip()]
    if ns.name:
        body["name"] = ns.name
    answer = _call(ns, "POST", "/v1/keys", json=body)
    if ns.json:
        print(json.dumps(answer, indent=2))
    else:
        info = answer["info"]
        print(f"created key {info['id']} (role {info['role']}, tenant {info['tenant']}); it is shown "
              "this once:", file=sys.stderr)
        print(answer["key"])
    return 0


def _list(ns: argparse.Namespace) -> int:
    keys = _call(ns, "GET", "/v1/keys", params={"include_revoked": "true"} if ns.all else None)["keys"]
    if ns.json:
        print(json.dumps(keys, indent=2))
        return 0
    print(f"{'ID':<14}{'ROLE':<7}{'TENANT':<16}{'COLLECTIONS':<24}{'STATE':<9}NAME")
    for k in keys:
        scope = ",".join(k["collections"]) or "*"
        print(f"{k['id']:<14}{k['role']:<7}{k['tenant']:<16}{scope:<24}"
              f"{'revoked' if k['revoked'] else 'active':<9}{k['name']}")
    return 0


def _revoke(ns: argparse.Namespace) -> int:
    info = _call(ns, "DELETE", f"/v1/keys/{ns.id}")
    print(f"revoked key {info['id']}")
    return 0


def _guarded(handler: Callable[[argparse.Namespace], int], name: str) -> Callable[[argparse.Namespace], int]:
    def run(ns: argparse.Namespace) -> int:
        try:
            return handler(ns)
        except _Failed as exc:
            print(f"vecraft keys {name}: {exc}", file=sys.stderr)
            return 1
    return run


def add_commands(sub: Any, formatter: type[argparse.HelpFormatter], wrap: Callable[[str], str]) -> None:
    """Add ``vecraft keys`` and its actions to the CLI's sub-command parser ``sub``."""
    keys = sub.add_parser(
        "keys", formatter_class=formatter, help="create, list and revoke API keys",
        description=wrap("API keys of a gateway started with --auth (docs/security.md): roles admin, "
                         "write and read, scoped to a tenant (or * for every tenant) and optionally to "
                         "collections. Needs an admin key (--api-key or $VECRAFT_API_KEY)."))

    def common(p: argparse.ArgumentParser) -> None:
        add_gateway_arguments(p)
        p.add_argument("--as-tenant", dest="tenant_header", default=None,
                       help="X-Tenant of the call (an admin key for every tenant acting for one)")

    actions = keys.add_subparsers(dest="action", metavar="ACTION", required=True)
    create = actions.add_parser("create", formatter_class=formatter, help="create a key (printed once)",
                                description=wrap("Create an API key and print it once on stdout; only "
                                                 "its hash is stored."))
    create.add_argument("--role", required=True, choices=["admin", "write", "read"])
    create.add_argument("--tenant", default=None,
                        help="the key's tenant, or * for every tenant (default: the calling key's tenant; "
                             "for an admin key for every tenant: default)")
    create.add_argument("--collections", default=None, help="comma-separated collection scope (default: all)")
    create.add_argument("--name", default=None, help="a label")
    common(create)
    create.set_defaults(handler=_guarded(_create, "create"))
    listing = actions.add_parser("list", formatter_class=formatter, help="list keys (never the keys)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    common(listing)
    listing.set_defaults(handler=_guarded(_list, "list"))
    revoke = actions.add_parser("revoke", formatter_class=formatter, help="revoke a key at once")
    revoke.add_argument("id", help="the key's id (from `vecraft keys list`)")
    common(revoke)
    revoke.set_defaults(handler=_guarded(_revoke, "revoke"))
