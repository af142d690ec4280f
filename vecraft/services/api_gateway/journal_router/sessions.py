"""Read-your-writes session tokens.

A session token is opaque to clients: base64url (no padding) of the compact
JSON object ``{partition: offset}``, the highest journal position the session
has written in each partition. Every write answer carries the incoming token
merged with that write's position; a READ_YOUR_WRITES read carrying the token
is served from an index that has applied at least that offset of the
collection's partition.

Tokens are merged by taking the maximum offset per partition, so a client may
combine tokens from concurrent writers in any order.

A token also carries the session's identity under :data:`SESSION_ID_KEY`
(``"~sid"``, never a partition name): chosen at random by the first write of a
session, kept by every later write and by the SDK's merges. The gateway pins
the session's READ_YOUR_WRITES reads to the query processor this identity
hashes to ("client affinity"), so only that processor pays the pull-before-read
sync. Tokens without it (issued before it existed) stay valid.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Mapping

import orjson

from vecraft.shared.common.errors import InvalidRequest

# A token names at most every partition of a journal; this bounds what a
# hostile client can make the gateway decode.
MAX_TOKEN_CHARS = 4096
MAX_TOKEN_PARTITIONS = 256
#: Key of the session identity in a token.
SESSION_ID_KEY = "~sid"
_SESSION_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def new_session_id() -> str:
    """A fresh random session identity."""
    return secrets.token_urlsafe(12)


def encode_session(offsets: Mapping[str, int], session_id: str = "") -> str:
    """The opaque token of ``offsets`` and ``session_id`` ("" for an empty session)."""
    if not offsets:
        return ""
    obj: dict[str, int | str] = dict(sorted(offsets.items()))
    if session_id:
        obj[SESSION_ID_KEY] = session_id
    raw = orjson.dumps(obj)
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_session(token: str | None) -> dict[str, int]:
    """The ``{partition: offset}`` map of a token; ``{}`` for None or "".

    Raises:
        InvalidRequest: see :func:`decode_token`.
    """
    return decode_token(token)[0]


def decode_token(token: str | None) -> tuple[dict[str, int], str]:
    """The ``{partition: offset}`` map and the session identity ("" if none) of a token.

    Raises:
        InvalidRequest: the token was not issued by Vecraft (bad base64, bad
            JSON, negative or non-integer offsets, too long).
    """
    if not token:
        return {}, ""
    if len(token) > MAX_TOKEN_CHARS:
        raise InvalidRequest(f"session token is longer than {MAX_TOKEN_CHARS} characters",
                             details={"field": "session_token"})
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        obj = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError) as exc:
        raise InvalidRequest("session token is malformed: pass the session_token value of a write "
                             "response unchanged", details={"field": "session_token"}) from exc
    if not isinstance(obj, dict) or len(obj) > MAX_TOKEN_PARTITIONS:
        raise InvalidRequest("session token is malformed: expected a map of partition offsets",
                             details={"field": "session_token"})
    offsets: dict[str, int] = {}
    session_id = obj.pop(SESSION_ID_KEY, "")
    if not isinstance(session_id, str) or (session_id and not _SESSION_ID_RE.fullmatch(session_id)):
        raise InvalidRequest("session token has an invalid session identity",
                             details={"field": "session_token"})
    for partition, offset in obj.items():
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise InvalidRequest(f"session token has an invalid offset for partition {partition!r}",
                                 details={"field": "session_token"})
        offsets[partition] = offset
    return offsets, session_id


def merge_sessions(*sessions: Mapping[str, int]) -> dict[str, int]:
    """Per-partition maximum of several sessions."""
    merged: dict[str, int] = {}
    for session in sessions:
        for partition, offset in session.items():
            if offset > merged.get(partition, 0):
                merged[partition] = offset
    return merged

