"""``vecraft quotas set|get|list|clear``: tenant and key quotas through a gateway's admin endpoints.

The commands call ``PUT/GET/DELETE /v1/quotas/{tenant}`` and ``GET /v1/quotas``
(docs/quotas.md) at ``--endpoint`` (or ``$VECRAFT_ENDPOINT``) with ``--api-key`` (or
``$VECRAFT_API_KEY``; with auth on, an admin key for every tenant sets and clears quotas,
a tenant's admin key reads its own). ``set`` replaces the whole quota: a limit not given
is no limit.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from vecraft.services.api_gateway.keys_cli import _call, _guarded, add_gateway_arguments
from vecraft.services.meta_manager.quotas import LIMITS

_HELP = {
    "write_requests_per_s": "write requests (inserts, upserts, deletes, transactions, DDL) per second",
    "write_vectors_per_s": "rows written per second (vectors inserted or upserted, ids deleted)",
    "read_requests_per_s": "searches, reads by id, listings and other reads per second",
    "max_collections": "live collections of the tenant (tenant quotas only)",
    "max_vectors": "stored vectors of the tenant (tenant quotas only)",
    "max_request_bytes": "largest request body / gRPC message in bytes",
}


def _params(ns: argparse.Namespace) -> dict[str, str] | None:
    return {"key_id": ns.key_id} if ns.key_id else None


def _show(quota: dict[str, Any]) -> str:
    limits = ", ".join(f"{name}={quota[name]}" for name in LIMITS if quota.get(name)) or "no limits"
    who = f"key {quota['key_id']} of tenant {quota['tenant']}" if quota["key_id"] else \
        f"tenant {quota['tenant']}"
    return f"{who}: {limits}"


def _print(ns: argparse.Namespace, answer: Any, text: str) -> int:
    print(json.dumps(answer, indent=2) if ns.json else text)
    return 0


def _set(ns: argparse.Namespace) -> int:
    body = {name: getattr(ns, name) for name in LIMITS if getattr(ns, name) is not None}
    answer = _call(ns, "PUT", f"/v1/quotas/{ns.tenant}", params=_params(ns), json=body)
    return _print(ns, answer, f"set {_show(answer)}")


def _get(ns: argparse.Namespace) -> int:
    answer = _call(ns, "GET", f"/v1/quotas/{ns.tenant}", params=_params(ns))
    return _print(ns, answer, _show(answer))


def _list(ns: argparse.Namespace) -> int:
    quotas = _call(ns, "GET", "/v1/quotas", params={"tenant": ns.tenant} if ns.tenant else None)["quotas"]
    return _print(ns, quotas, "\n".join(_show(q) for q in quotas) or "no quotas")


def _clear(ns: argparse.Namespace) -> int:
    answer = _call(ns, "DELETE", f"/v1/quotas/{ns.tenant}", params=_params(ns))
    return _print(ns, answer, f"cleared the quota of {_show(answer).split(':')[0]}")


def add_commands(sub: Any, formatter: type[argparse.HelpFormatter], wrap: Callable[[str], str]) -> None:
    """Add ``vecraft quotas`` and its actions to the CLI's sub-command parser ``sub``."""
    quotas = sub.add_parser(
        "quotas", formatter_class=formatter, help="set, show and clear tenant and key quotas",
        description=wrap("Quotas and rate limits of a tenant, or of one API key acting for it "
                         "(docs/quotas.md). Rates are per gateway process. With auth on, setting and "
                         "clearing needs an admin key for every tenant (--api-key or $VECRAFT_API_KEY)."))

    def common(p: argparse.ArgumentParser, *, tenant: bool = True) -> None:
        if tenant:
            p.add_argument("tenant", help="the tenant")
            p.add_argument("--key-id", default=None,
                           help="an API key's id: that key's quota within the tenant (default: the tenant's)")
        add_gateway_arguments(p)
        p.set_defaults(tenant_header=None)

    actions = quotas.add_subparsers(dest="action", metavar="ACTION", required=True)
    setter = actions.add_parser("set", formatter_class=formatter, help="set (replace) a quota",
                                description=wrap("Replace the quota of a tenant or key; a limit not "
                                                 "given, or 0, is no limit."))
    for name in LIMITS:
        setter.add_argument(f"--{name.replace('_', '-')}", dest=name, type=int, default=None, metavar="N",
                            help=_HELP[name])
    common(setter)
    setter.set_defaults(handler=_guarded(_set, "set"))
    getter = actions.add_parser("get", formatter_class=formatter, help="show a quota")
    common(getter)
    getter.set_defaults(handler=_guarded(_get, "get"))
    listing = actions.add_parser("list", formatter_class=formatter, help="list quotas")
    listing.add_argument("--tenant", default=None, help="only this tenant's quotas")
    common(listing, tenant=False)
    listing.set_defaults(handler=_guarded(_list, "list"))
    clear = actions.add_parser("clear", formatter_class=formatter, help="remove a quota (no limits)")
    common(clear)
    clear.set_defaults(handler=_guarded(_clear, "clear"))
