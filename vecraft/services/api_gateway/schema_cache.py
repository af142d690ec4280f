"""Collection schemas cached from the meta manager, kept fresh by its Watch stream.

Every write and search needs its collection's schema (dimension, metric,
shard count, journal partition, incarnation id). Asking the meta manager each
time would double the latency of small requests and put it on the data path,
so the gateway caches schemas and applies the meta manager's change stream to
the cache.

The meta manager is not on the data path: reads and writes keep working from
the cache while it restarts, hangs or is down. The rules:

- **Disconnected, keep serving.** When the Watch stream breaks, the cached
  schemas stay in use, marked possibly stale (:attr:`SchemaCache.watching`
  False, ``vecraft_gateway_schema_watch_connected_state`` 0). Keeping them is
  safe because schemas only change by DDL, and DDL goes through the meta
  manager: while nobody can reach it, nothing changes. A schema that did
  change meanwhile (another gateway's DDL, a stream broken between a commit
  and its event) cannot send a write into the wrong incarnation either:
  writes carry the incarnation's ``collection_id`` and every replica skips
  writes of a dropped incarnation (``vecraft/shared/index/journal_ops.py``).
- **Reconnected, replace wholesale.** A (re)opened stream sends a snapshot of
  every collection, then an end-of-snapshot marker, then changes. The
  snapshot is collected aside and replaces the cache at the marker: a
  collection dropped while the gateway was away disappears, one recreated
  gets its new incarnation; events after the marker are applied one by one.
- **A miss asks the meta manager** (concurrent misses of one collection share
  one call). When it cannot be asked (down, refusing, not answering within
  its lookup deadline), the miss fails with 503 naming the meta manager,
  never 404: the gateway does not know that the collection does not exist.
"""

from __future__ import annotations

import asyncio
import logging

from vecraft.services.api_gateway.downstream import DELETE, PUT, SNAPSHOT_END, Downstream
from vecraft.shared.common.backoff import Backoff
from vecraft.shared.common.errors import DeadlineExceeded, Unavailable
from vecraft.shared.common.metrics import counter, gauge
from vecraft.shared.common.stream_follow import follow_snapshot_stream
from vecraft.shared.model.schema import CollectionSchema

log = logging.getLogger(__name__)

_LOOKUPS = counter("gateway", "schema_lookups",
                   "schema cache lookups by outcome (hit, stale_hit: served while the watch is "
                   "disconnected, miss, unavailable: a miss the meta manager could not answer)", ["outcome"])
_CONNECTED = gauge("gateway", "schema_watch_connected", "state",
                   "1 while the meta manager's Watch stream is connected and its snapshot applied; "
                   "0 while cached schemas are served possibly stale")
_DISCONNECTS = counter("gateway", "schema_watch_disconnects",
                       "times the meta manager's Watch stream broke after it was connected")

#: Reconnect backoff of the Watch stream, seconds: short, since every second spent
#: disconnected is a second of possibly stale schemas once the meta manager is back.
_BACKOFF_MIN, _BACKOFF_MAX = 0.1, 1.0

Key = tuple[str, str]


class SchemaCache:
    """Schemas by ``(tenant, name)``; see the module doc for the freshness rules."""

    def __init__(self, downstream: Downstream) -> None:
        self._downstream = downstream
        self._schemas: dict[Key, CollectionSchema] = {}
        self._inflight: dict[Key, asyncio.Future[CollectionSchema]] = {}
        self._watching = False
        _CONNECTED.set(0)

    @property
    def watching(self) -> bool:
        """True while the Watch stream is connected and its snapshot applied (entries are fresh);
        False while entries are served possibly stale."""
        return self._watching

    def cached(self, tenant: str, name: str) -> CollectionSchema | None:
        """The cached schema, without asking anyone (None when not cached)."""
        return self._schemas.get((tenant, name))

    async def get(self, tenant: str, name: str) -> CollectionSchema:
        """The schema of ``tenant/name``.

        Raises:
            NotFound: the meta manager says the collection does not exist.
            Unavailable: not cached, and the meta manager cannot be asked (503).
        """
        key = (tenant, name)
        schema = self._schemas.get(key)
        if schema is not None:
            _LOOKUPS.labels("hit" if self._watching else "stale_hit").inc()
            return schema
        _LOOKUPS.labels("miss").inc()
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[CollectionSchema] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            try:
                schema = await self._downstream.get_collection(tenant, name)
            except (Unavailable, DeadlineExceeded) as exc:
                # Not 404 (nobody said it does not exist) and not 504 (the request has not run).
                _LOOKUPS.labels("unavailable").inc()
                raise Unavailable(
                    f"collection {name!r} of tenant {tenant!r} is not in the gateway's schema cache and the "
                    f"meta manager cannot be asked: {exc.message}",
                    details={**exc.details, "tenant": tenant, "collection": name,
                             "service": exc.details.get("service", "meta manager")}) from exc
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
        """Remember ``schema``, an answer of the meta manager (a lookup or a DDL).

        Kept unless the cache already holds a later state of the name (a higher
        ``ddl_offset``: every DDL of a name, create, alter or drop, is ordered
        in the journal's ``system`` partition, so a later one has a higher offset).
        """
        key = (schema.tenant, schema.name)
        current = self._schemas.get(key)
        if current is None or schema.ddl_offset >= current.ddl_offset:
            self._schemas[key] = schema

    def invalidate(self, tenant: str, name: str) -> None:
        """Forget one collection: the meta manager answered that it was dropped."""
        self._schemas.pop((tenant, name), None)

    def clear(self) -> None:
        self._schemas.clear()

    def _set_watching(self, watching: bool) -> None:
        self._watching = watching
        _CONNECTED.set(1 if watching else 0)

    async def run_watch(self) -> None:
        """Apply the meta manager's collection events until cancelled; reconnect with backoff.

        While the stream is broken the cached entries stay (see the module doc: disconnected,
        keep serving)."""
        await follow_snapshot_stream(
            lambda: self._downstream.watch_collections(), is_end=lambda event: event[0] == SNAPSHOT_END,
            snapshot=self._take_snapshot, change=self._change, broken=self._broken,
            backoff=Backoff(_BACKOFF_MIN, _BACKOFF_MAX), what="collection (serving the cached schemas)")

    def _take_snapshot(self, events: list[tuple[int, CollectionSchema | None]]) -> None:
        schemas: dict[Key, CollectionSchema] = {}
        for event in events:
            self._apply(event, schemas)
        self._schemas = schemas
        self._set_watching(True)
        log.info("collection watch connected; %d schema(s) cached", len(self._schemas))

    def _change(self, event: tuple[int, CollectionSchema | None]) -> None:
        self._apply(event, self._schemas)

    @staticmethod
    def _apply(event: tuple[int, CollectionSchema | None], target: dict[Key, CollectionSchema]) -> None:
        event_type, schema = event
        if schema is None:
            return
        key = (schema.tenant, schema.name)
        if event_type == PUT:
            target[key] = schema
        elif event_type == DELETE:
            target.pop(key, None)

    def _broken(self) -> None:
        if self._watching:
            _DISCONNECTS.inc()
        self._set_watching(False)
