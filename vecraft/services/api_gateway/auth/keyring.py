"""The API keys a gateway accepts, followed from the meta manager's Watch stream (topic ``keys``).

The gateway holds every key record (id, role, scope, the key's SHA-256) in memory, so
checking a key costs one hash and one dictionary lookup, and a revocation takes effect
at the moment its event arrives. Until the first snapshot arrived no key can be checked
(503, and the gateway is not ready). While the meta manager is unreachable the last
records stay in force; the stream is re-opened with backoff and its next snapshot
replaces them.

The key itself is never stored or logged: only its hash is compared.
"""

from __future__ import annotations

import asyncio
import hmac
import logging

from vecraft.clients.meta import MetaClient, follow_watch
from vecraft.services.api_gateway.auth.principal import Principal, Role
from vecraft.services.meta_manager.api_keys import key_sha256
from vecraft.shared.common.errors import Unauthenticated, Unavailable
from vecraft.shared.rpc.v1 import meta_pb2

log = logging.getLogger(__name__)

#: Longest Authorization header looked at (a key is 59 characters).
MAX_HEADER = 512


def bearer_token(header: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header value.

    Raises:
        Unauthenticated: no header, another scheme, or no key after it.
    """
    if not header:
        raise Unauthenticated("an API key is required: send the header Authorization: Bearer <key> "
                              "(gRPC: metadata authorization: Bearer <key>)")
    scheme, _, token = header[:MAX_HEADER].strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the Authorization header must be Bearer <key>")
    return token.strip()


class KeyRing:
    """Key records by hash, kept current from the meta manager."""

    def __init__(self, meta: MetaClient) -> None:
        self.meta = meta
        self._by_hash: dict[str, meta_pb2.ApiKeyInfo] = {}
        self._loaded = asyncio.Event()

    @property
    def loaded(self) -> bool:
        return self._loaded.is_set()

    async def wait_loaded(self) -> None:
        await self._loaded.wait()

    def records(self) -> list[meta_pb2.ApiKeyInfo]:
        """Every record this gateway knows (with hashes), sorted by id."""
        return sorted(self._by_hash.values(), key=lambda k: k.id)

    def name_of(self, key_id: str) -> str:
        """The name of the key with public id ``key_id`` ("" when unknown)."""
        return next((k.name for k in self._by_hash.values() if k.id == key_id), "")

    def put(self, info: meta_pb2.ApiKeyInfo) -> None:
        """Apply one record (a gateway that created or revoked a key applies it before the event)."""
        if info.key_sha256:
            self._by_hash[info.key_sha256] = info
        else:
            for record in self._by_hash.values():
                if record.id == info.id and info.revoked:
                    record.revoked, record.revoked_unix_ms = True, info.revoked_unix_ms

    def authenticate(self, header: str | None) -> Principal:
        """The principal of an Authorization header value.

        Raises:
            Unauthenticated: no key, a malformed header, an unknown or revoked key.
            Unavailable: the key records have not arrived from the meta manager yet.
        """
        key = bearer_token(header)
        if not self.loaded:
            raise Unavailable("the gateway has not loaded the API keys from the meta manager yet")
        digest = key_sha256(key)
        info = self._by_hash.get(digest)
        # compare_digest: the lookup above is by hash already; this keeps the final check constant-time.
        if info is None or not hmac.compare_digest(info.key_sha256, digest) or info.revoked:
            raise Unauthenticated("the API key is not valid (unknown or revoked)")
        return Principal(key_id=info.id, role=Role.parse(info.role), tenant=info.tenant,
                         collections=frozenset(info.collections))

    async def run_watch(self) -> None:
        """Follow the ``keys`` topic until cancelled (:func:`follow_watch`: reconnects with backoff)."""
        await follow_watch(self.meta, ["keys"], snapshot=self._snapshot, change=self._change, what="API key")

    def _snapshot(self, events: list[meta_pb2.WatchEvent]) -> None:
        self._by_hash = {e.api_key.key_sha256: e.api_key for e in events if _key_record(e)}
        self._loaded.set()
        log.info("API keys loaded", extra={"keys": len(self._by_hash)})

    def _change(self, event: meta_pb2.WatchEvent) -> None:
        if _key_record(event):
            self._by_hash[event.api_key.key_sha256] = event.api_key


def _key_record(event: meta_pb2.WatchEvent) -> bool:
    """An API key record the ring can look up (by its key's hash)."""
    return event.WhichOneof("item") == "api_key" and bool(event.api_key.key_sha256)
