"""Session tokens: which journal positions a read-your-writes session must see.

A token is base64url(JSON ``{partition: offset}``) as the gateway issues it in
every write response. The SDK merges tokens (maximum offset per partition) so
that concurrent writes of one session never lose a position.
"""

from __future__ import annotations

import base64
import binascii

import orjson


def decode(token: str) -> dict[str, int]:
    """Offsets per partition of a token; {} for an empty or unreadable token."""
    if not token:
        return {}
    try:
        padded = token + "=" * (-len(token) % 4)
        obj = orjson.loads(base64.urlsafe_b64decode(padded.encode()))
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        return {}
    if not isinstance(obj, dict):
        return {}
    return {str(k): int(v) for k, v in obj.items() if isinstance(v, int) and not isinstance(v, bool)}


def encode(offsets: dict[str, int]) -> str:
    if not offsets:
        return ""
    raw = orjson.dumps(dict(sorted(offsets.items())))
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def merge(current: str, new: str) -> str:
    """A token at least as far as both (max offset per partition)."""
    a, b = decode(current), decode(new)
    if not b:
        return current or new
    for partition, offset in b.items():
        if offset > a.get(partition, 0):
            a[partition] = offset
    return encode(a)
