"""Session tokens: which journal positions a read-your-writes session must see.

A token is base64url(JSON ``{partition: offset}``) as the gateway issues it in
every write response. The SDK merges tokens (maximum offset per partition) so
that concurrent writes of one session never lose a position. The gateway may
add a session identity under the key ``~sid`` (a string, not an offset); it
pins the session's reads to one query processor, and a merge keeps it (the
current token's, else the new one's).
"""

from __future__ import annotations

import base64
import binascii

import orjson

#: Key of the session identity in a token (never a partition name).
SESSION_ID_KEY = "~sid"


def _load(token: str) -> dict[str, object]:
    if not token:
        return {}
    try:
        padded = token + "=" * (-len(token) % 4)
        obj = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return {}
    return obj if isinstance(obj, dict) else {}


def session_id(token: str) -> str:
    """The session identity a token carries ("" when none)."""
    sid = _load(token).get(SESSION_ID_KEY)
    return sid if isinstance(sid, str) else ""


def decode(token: str) -> dict[str, int]:
    """Offsets per partition of a token; {} for an empty or unreadable token."""
    obj = _load(token)
    return {str(k): int(v) for k, v in obj.items() if isinstance(v, int) and not isinstance(v, bool)}


def encode(offsets: dict[str, int], sid: str = "") -> str:
    if not offsets:
        return ""
    obj: dict[str, object] = dict(sorted(offsets.items()))
    if sid:
        obj[SESSION_ID_KEY] = sid
    raw = orjson.dumps(obj)
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def merge(current: str, new: str) -> str:
    """A token at least as far as both (max offset per partition)."""
    a, b = decode(current), decode(new)
    if not b:
        return current or new
    for partition, offset in b.items():
        if offset > a.get(partition, 0):
            a[partition] = offset
    return encode(a, session_id(current) or session_id(new))
