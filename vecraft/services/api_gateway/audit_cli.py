"""``vecraft audit``: read the audit log of admin actions through a gateway (docs/audit.md).

Calls ``GET /v1/audit`` at ``--endpoint`` (or ``$VECRAFT_ENDPOINT``) with an admin key
(``--api-key`` or ``$VECRAFT_API_KEY``), page after page from ``--cursor`` until
``--limit`` entries were printed or the log's end; ``--since``/``--until`` take an
ISO-8601 time (``2026-12-04T17:00:00Z``) or unix milliseconds.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from vecraft.services.api_gateway.keys_cli import _call, _Failed, _guarded, add_gateway_arguments

_PAGE = 1000


def _time_ms(text: str | None, flag: str) -> int:
    if not text:
        return 0
    if text.isdigit():
        return int(text)
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise _Failed(f"{flag} {text!r} is neither an ISO-8601 time nor unix milliseconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def _line(e: dict[str, Any]) -> str:
    when = datetime.fromtimestamp(e["unix_ms"] / 1000, UTC).isoformat(timespec="milliseconds")
    actor = e["actor"]["key_id"] or "-"
    if e["actor"]["key_name"]:
        actor += f" ({e['actor']['key_name']})"
    details = json.dumps(e["details"], separators=(",", ":")) if e["details"] else ""
    return f"{when}  {e['offset']:>8}  {e['action']:<18} {e['outcome']:<18} tenant={e['tenant']} " \
           f"target={e['target'] or '-'} by {actor} {details}".rstrip()


def _audit(ns: argparse.Namespace) -> int:
    params: dict[str, Any] = {"cursor": ns.cursor}
    if ns.action:
        params["action"] = ns.action
    if ns.tenant:
        params["tenant"] = ns.tenant
    since, until = _time_ms(ns.since, "--since"), _time_ms(ns.until, "--until")
    if since:
        params["since_ms"] = since
    if until:
        params["until_ms"] = until
    shown: list[dict[str, Any]] = []
    while len(shown) < ns.limit:
        page = _call(ns, "GET", "/v1/audit", params={**params, "limit": min(_PAGE, ns.limit - len(shown))})
        shown += page["entries"]
        params["cursor"] = page["next_cursor"]
        if not page["more"]:
            break
    if ns.json:
        print(json.dumps({"entries": shown, "next_cursor": params["cursor"]}, indent=2))
    else:
        for entry in shown:
            print(_line(entry))
    return 0


def add_commands(sub: Any, formatter: type[argparse.HelpFormatter], wrap: Callable[[str], str]) -> None:
    """Add ``vecraft audit`` to the CLI's sub-command parser ``sub``."""
    p = sub.add_parser(
        "audit", formatter_class=formatter, help="read the audit log of admin actions",
        description=wrap("Admin actions (API keys, collections, quotas), oldest first, from the journal's "
                         "system partition (docs/audit.md). Needs an admin key (--api-key or "
                         "$VECRAFT_API_KEY); a tenant's admin sees its tenant's entries."))
    p.add_argument("--action", default=None,
                   help="an action (key.create) or a family (key, collection or quota)")
    p.add_argument("--since", default=None, help="entries at or after this time (ISO-8601 or unix ms)")
    p.add_argument("--until", default=None, help="entries at or before this time (ISO-8601 or unix ms)")
    p.add_argument("--tenant", default=None, help="only this tenant's entries")
    p.add_argument("--cursor", type=int, default=1, help="start at this offset (a previous next_cursor)")
    p.add_argument("--limit", type=int, default=100, help="print at most this many entries")
    add_gateway_arguments(p)
    p.set_defaults(handler=_guarded(_audit, "audit"), tenant_header=None)
