"""Collection schemas cached from the meta manager, kept fresh by its Watch stream.

Every write and search needs its collection's schema (dimension, metric,
shard count, journal partition, incarnation id). Asking the meta manager each
time would double the latency of small requests, so the gateway caches
schemas and applies the meta manager's change stream to the cache.

Correctness rule: the cache only *keeps* entries while the Watch stream is
connected. When the stream breaks, events may be missed, so the cache is
emptied and every lookup goes to the meta manager until the stream is back.
Concurrent misses for the same collection share one GetCollection call.
"""

from __future__ import annotations

import asyncio
import logging

from vecraft.services.api_gateway.downstream import DELETE, PUT, Downstream
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.common.metrics import counter
from vecraft.shared.model.schema import CollectionSchema

log = logging.getLogger(__name__)

_LOOKUPS = counter("gateway", "schema_lookups", "schema cache lookups by outcome", ["outcome"])

#: Reconnect backoff of the Watch stream, seconds.
_BACKOFF_MIN, _BACKOFF_MAX = 0.2, 5.0

Key = tuple[str, str]


class SchemaCache:
    """Schemas by ``(tenant, name)``; see the module doc for the freshness rule."""

    def __init__(self, downstream: Downstream) -> None:
        self._downstream = downstream
        self._schemas: dict[Key, CollectionSchema] = {}
        self._inflight: dict[Key, asyncio.Future[CollectionSchema]] = {}
        self._watching = False

    @property
    def watching(self) -> bool:
        """True while the Watch stream is connected (cached entries are trusted)."""
        return self._watching

    async def get(self, tenant: str, name: str) -> CollectionSchema:
        """The schema of ``tenant/name``; ``NotFound`` when the collection does not exist."""
        key = (tenant, name)
        schema = self._schemas.get(key)
        if schema is not None:
            _LOOKUPS.labels("hit").inc()
            return schema
        _LOOKUPS.labels("miss").inc()
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CollectionSchema] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            schema = await self._downstream.get_collection(tenant, name)
        except BaseException as exc:
            future.set_exception(exc)
            # Retrieve the exception so an unawaited future does not log "never retrieved".
            future.exception()
            raise
        else:
            future.set_result(schema)
            self.put(schema)
            return schema
        finally:
            self._inflight.pop(key, None)

    def put(self, schema: CollectionSchema) -> None:
        """Remember ``schema`` (only while the Watch stream is connected)."""
        if self._watching:
            self._schemas[(schema.tenant, schema.name)] = schema

    def invalidate(self, tenant: str, name: str) -> None:
        """Forget one collection, e.g. after a downstream said it does not exist."""
        self._schemas.pop((tenant, name), None)

    def clear(self) -> None:
        self._schemas.clear()

    async def run_watch(self) -> None:
        """Apply the meta manager's collection events until cancelled; reconnect with backoff."""
        backoff = _BACKOFF_MIN
        while True:
            try:
                async for event_type, schema in self._downstream.watch_collections():
                    if not self._watching:
                        # The first event proves the stream is live; entries cached
                        # from now on are kept up to date by it.
                        self._watching = True
                        backoff = _BACKOFF_MIN
                    key = (schema.tenant, schema.name)
                    if event_type == PUT:
                        self._schemas[key] = schema
                    elif event_type == DELETE:
                        self._schemas.pop(key, None)
            except asyncio.CancelledError:
                raise
            except VecraftError as exc:
                log.warning("collection watch interrupted: %s", exc.message)
            except Exception:
                log.exception("collection watch failed")
            self._watching = False
            self.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)
