"""API keys: how they are made, hashed and checked for shape (docs/security.md).

A key is ``vk_<id>_<secret>``: ``id`` is 12 hex characters (public: it names the
key in listings and revocations), ``secret`` 43 URL-safe characters from 32
random bytes. The meta manager stores the SHA-256 of the whole key, never the
key; a fast hash is enough because keys are random, not chosen by people (no
dictionary to try). Gateways follow the key records through the meta manager's
Watch stream (topic ``keys``) and check a presented key by its hash.
"""

from __future__ import annotations

import hashlib
import re
import secrets

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.model.validation import validate_name
from vecraft.shared.rpc.v1 import meta_pb2

ROLES = ("read", "write", "admin")
ALL_TENANTS = "*"
KEY_PREFIX = "vk_"
MAX_KEY_NAME = 200
MAX_SCOPE_COLLECTIONS = 1000
_KEY_RE = re.compile(r"^vk_([0-9a-f]{12})_[A-Za-z0-9_-]{43}$")


def new_key() -> tuple[str, str]:
    """A fresh ``(id, key)``."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def key_sha256(key: str) -> str:
    """Hex SHA-256 of ``key`` (what the meta manager stores)."""
    return hashlib.sha256(key.encode()).hexdigest()


def looks_like_key(text: str) -> bool:
    """True when ``text`` has the shape of a Vecraft key (says nothing about its validity)."""
    return bool(_KEY_RE.match(text))


def validate_grant(role: str, tenant: str, collections: list[str], name: str) -> None:
    """Check a new key's grant.

    Raises:
        InvalidRequest: unknown role, bad tenant or collection name, too long a name.
    """
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", details={"roles": list(ROLES)})
    if tenant != ALL_TENANTS:
        validate_name(tenant, "tenant")
    if len(collections) > MAX_SCOPE_COLLECTIONS:
        raise InvalidRequest(f"a key is scoped to at most {MAX_SCOPE_COLLECTIONS} collections")
    for collection in collections:
        validate_name(collection, "collection")
    if len(name) > MAX_KEY_NAME:
        raise InvalidRequest(f"a key's name has at most {MAX_KEY_NAME} characters")


def public(info: meta_pb2.ApiKeyInfo) -> meta_pb2.ApiKeyInfo:
    """``info`` without its hash (what listings show)."""
    shown = meta_pb2.ApiKeyInfo()
    shown.CopyFrom(info)
    shown.key_sha256 = ""
    return shown
