"""`SqliteMetaStore`: the embedded backend, one SQLite file under the data directory.

Layout (``<data-dir>/meta.sqlite3``)::

    meta(key PRIMARY KEY, value)                 'ddl_watermark', 'revision'
    collections(tenant, name, revision, schema)  PRIMARY KEY (tenant, name)
    ddl_records(request_id PRIMARY KEY, ddl_offset, record)
    tenants(tenant PRIMARY KEY, partition)
    nodes(node_id PRIMARY KEY, lease_id, ttl_ms, expires_unix_ms, last_heartbeat_unix_ms, info)
    placement(id = 1, version, map)              the one placement map
    leases(name PRIMARY KEY, holder, fencing_token, ttl_ms, expires_unix_ms)
    api_keys(id PRIMARY KEY, info)               ApiKeyInfo JSON (the key's hash, never the key)
    quotas(tenant, key_id, info)                 Quota JSON; PRIMARY KEY (tenant, key_id)

Every statement runs on one worker thread (a single-thread executor), so the
connection is never shared between threads and commits are serialized; the
event loop never blocks on fsync. Leases are wall-clock deadlines stored with
the node, so they survive a restart of the meta manager; a background sweep
removes expired nodes and publishes their DELETE. Named leases are wall-clock
deadlines too; a lease's row stays when it is released or expires, so its
fencing token keeps growing. Only one meta manager may use a SQLite file; the
watermark compare-and-swap still guards the catalog.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from vecraft.services.meta_manager.store import codec
from vecraft.services.meta_manager.store.base import (
    DdlRecord,
    EventType,
    LeaseHolding,
    MetaStore,
    StoreEvent,
)
from vecraft.services.meta_manager.store.events import EventHub, Subscription
from vecraft.shared.common.errors import Conflict, FencedOut, Unavailable
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2, meta_pb2

log = logging.getLogger(__name__)

R = TypeVar("R")

DB_FILE = "meta.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS collections (
    tenant TEXT NOT NULL, name TEXT NOT NULL, revision INTEGER NOT NULL, schema TEXT NOT NULL,
    PRIMARY KEY (tenant, name));
CREATE TABLE IF NOT EXISTS ddl_records (
    request_id TEXT PRIMARY KEY, ddl_offset INTEGER NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenants (tenant TEXT PRIMARY KEY, partition TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    node_id TEXT PRIMARY KEY, lease_id TEXT NOT NULL, ttl_ms INTEGER NOT NULL,
    expires_unix_ms INTEGER NOT NULL, last_heartbeat_unix_ms INTEGER NOT NULL, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS placement (
    id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL, map TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, fencing_token INTEGER NOT NULL, ttl_ms INTEGER NOT NULL,
    expires_unix_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, info TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS quotas (
    tenant TEXT NOT NULL, key_id TEXT NOT NULL, info TEXT NOT NULL, PRIMARY KEY (tenant, key_id));
INSERT OR IGNORE INTO meta (key, value) VALUES ('ddl_watermark', 0), ('revision', 0);
"""


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class SqliteMetaStore(MetaStore):
    """The embedded backend. ``sweep_interval_ms`` bounds how late an expired lease is noticed."""

    backend = "sqlite"

    def __init__(self, data_dir: Path, *, sweep_interval_ms: int = 100) -> None:
        self._path = Path(data_dir) / DB_FILE
        self._sweep_interval = sweep_interval_ms / 1000
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._hub: EventHub[StoreEvent] = EventHub()
        self._sweeper: asyncio.Task[None] | None = None

    # ---- plumbing --------------------------------------------------------------
    async def _run(self, fn: Callable[[sqlite3.Connection], R]) -> R:
        if self._executor is None or self._conn is None:
            raise Unavailable("meta store is not open")
        conn = self._conn
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, conn)
        except sqlite3.OperationalError as exc:
            raise Unavailable(f"meta store: {exc}") from exc

    @staticmethod
    def _next_revision(conn: sqlite3.Connection) -> int:
        conn.execute("UPDATE meta SET value = value + 1 WHERE key = 'revision'")
        return int(conn.execute("SELECT value FROM meta WHERE key = 'revision'").fetchone()[0])

    async def start(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meta-sqlite")

        def _open() -> sqlite3.Connection:
            conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            # The catalog is small and changes rarely: pay an fsync per commit for durability.
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(_SCHEMA)
            return conn

        self._conn = await asyncio.get_running_loop().run_in_executor(self._executor, _open)
        await self._grant_grace()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="meta-sqlite-lease-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        self._hub.close_all()
        if self._conn is not None and self._executor is not None:
            conn, self._conn = self._conn, None
            await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    # ---- collections -----------------------------------------------------------
    async def get_collection(self, tenant: str, name: str) -> collection_pb2.CollectionSchema | None:
        row = await self._run(lambda c: c.execute(
            "SELECT schema FROM collections WHERE tenant = ? AND name = ?", (tenant, name)).fetchone())
        return codec.decode_message(row[0], collection_pb2.CollectionSchema) if row else None

    async def list_collections(self, tenant: str | None = None) -> list[collection_pb2.CollectionSchema]:
        if tenant is None:
            rows = await self._run(lambda c: c.execute(
                "SELECT schema FROM collections ORDER BY tenant, name").fetchall())
        else:
            rows = await self._run(lambda c: c.execute(
                "SELECT schema FROM collections WHERE tenant = ? ORDER BY name", (tenant,)).fetchall())
        return [codec.decode_message(r[0], collection_pb2.CollectionSchema) for r in rows]

    async def ddl_watermark(self) -> int:
        row = await self._run(lambda c: c.execute(
            "SELECT value FROM meta WHERE key = 'ddl_watermark'").fetchone())
        return int(row[0])

    async def get_ddl_record(self, request_id: str) -> DdlRecord | None:
        row = await self._run(lambda c: c.execute(
            "SELECT record FROM ddl_records WHERE request_id = ?", (request_id,)).fetchone())
        return codec.decode_record(row[0]) if row else None

    async def commit_ddl(self, expected_watermark: int, new_watermark: int,
                         record: DdlRecord | None) -> bool:
        def _commit(conn: sqlite3.Connection) -> StoreEvent | bool | None:
            conn.execute("BEGIN IMMEDIATE")
            try:
                current = conn.execute("SELECT value FROM meta WHERE key = 'ddl_watermark'").fetchone()[0]
                if current != expected_watermark:
                    conn.execute("ROLLBACK")
                    return False
                conn.execute("UPDATE meta SET value = ? WHERE key = 'ddl_watermark'", (new_watermark,))
                event = None
                if record is not None:
                    conn.execute("INSERT OR REPLACE INTO ddl_records (request_id, ddl_offset, record) "
                                 "VALUES (?, ?, ?)",
                                 (record.request_id, record.offset, codec.encode_record(record).decode()))
                    event = _apply_change(conn, record)
                conn.execute("COMMIT")
                return event
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        outcome = await self._run(_commit)
        if outcome is False:
            return False
        if isinstance(outcome, StoreEvent):
            self._hub.publish(outcome)
        return True

    # ---- tenants ---------------------------------------------------------------
    async def get_tenant_partition(self, tenant: str) -> str | None:
        row = await self._run(lambda c: c.execute(
            "SELECT partition FROM tenants WHERE tenant = ?", (tenant,)).fetchone())
        return str(row[0]) if row else None

    async def set_tenant_partition(self, tenant: str, partition: str) -> None:
        await self._run(lambda c: c.execute(
            "INSERT OR REPLACE INTO tenants (tenant, partition) VALUES (?, ?)", (tenant, partition)))

    # ---- nodes -----------------------------------------------------------------
    async def register_node(self, node: meta_pb2.NodeInfo, ttl_ms: int) -> tuple[str, int]:
        lease_id = uuid.uuid4().hex
        stored = meta_pb2.NodeInfo()
        stored.CopyFrom(node)
        stored.state = "up"

        def _register(conn: sqlite3.Connection) -> StoreEvent:
            now = _now_ms()
            stored.last_heartbeat_unix_ms = now
            with conn:
                revision = self._next_revision(conn)
                conn.execute(
                    "INSERT OR REPLACE INTO nodes (node_id, lease_id, ttl_ms, expires_unix_ms, "
                    "last_heartbeat_unix_ms, info) VALUES (?, ?, ?, ?, ?, ?)",
                    (node.node_id, lease_id, ttl_ms, now + ttl_ms, now,
                     codec.encode_message(stored).decode()))
            return StoreEvent(EventType.PUT, revision, node=stored)

        self._hub.publish(await self._run(_register))
        return lease_id, ttl_ms

    async def heartbeat(self, node_id: str, lease_id: str) -> bool:
        def _beat(conn: sqlite3.Connection) -> bool:
            now = _now_ms()
            with conn:
                cur = conn.execute(
                    "UPDATE nodes SET expires_unix_ms = ? + ttl_ms, last_heartbeat_unix_ms = ? "
                    "WHERE node_id = ? AND lease_id = ? AND expires_unix_ms >= ?",
                    (now, now, node_id, lease_id, now))
            return cur.rowcount == 1

        return await self._run(_beat)

    async def list_nodes(self, role: str = "") -> list[meta_pb2.NodeInfo]:
        def _list(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            return conn.execute(
                "SELECT info, last_heartbeat_unix_ms FROM nodes WHERE expires_unix_ms >= ? "
                "ORDER BY node_id", (_now_ms(),)).fetchall()

        nodes = []
        for info, beat in await self._run(_list):
            node = codec.decode_message(info, meta_pb2.NodeInfo)
            node.last_heartbeat_unix_ms = beat
            if not role or node.role == role:
                nodes.append(node)
        return nodes

    async def deregister_node(self, node_id: str, lease_id: str) -> bool:
        def _delete(conn: sqlite3.Connection) -> StoreEvent | None:
            with conn:
                row = conn.execute("SELECT info, last_heartbeat_unix_ms FROM nodes "
                                   "WHERE node_id = ? AND lease_id = ?", (node_id, lease_id)).fetchone()
                if row is None:
                    return None
                conn.execute("DELETE FROM nodes WHERE node_id = ?", (node_id,))
                node = codec.decode_message(row[0], meta_pb2.NodeInfo)
                node.state, node.last_heartbeat_unix_ms = "down", row[1]
                return StoreEvent(EventType.DELETE, self._next_revision(conn), node=node)

        event = await self._run(_delete)
        if event is None:
            return False
        self._hub.publish(event)
        return True

    async def _expire(self) -> None:
        def _delete_expired(conn: sqlite3.Connection) -> list[StoreEvent]:
            now = _now_ms()
            events = []
            with conn:
                rows = conn.execute("SELECT node_id, info, last_heartbeat_unix_ms FROM nodes "
                                    "WHERE expires_unix_ms < ?", (now,)).fetchall()
                for node_id, info, beat in rows:
                    conn.execute("DELETE FROM nodes WHERE node_id = ?", (node_id,))
                    node = codec.decode_message(info, meta_pb2.NodeInfo)
                    node.state = "down"
                    node.last_heartbeat_unix_ms = beat
                    events.append(StoreEvent(EventType.DELETE, self._next_revision(conn), node=node))
            return events

        for event in await self._run(_delete_expired):
            log.warning("node lease expired", extra={"node": event.node.node_id if event.node else ""})
            self._hub.publish(event)

    async def _grant_grace(self) -> None:
        """Give every lease a whole TTL from now: this manager was not there to receive heartbeats."""
        def _extend(conn: sqlite3.Connection) -> int:
            now = _now_ms()
            with conn:
                return conn.execute("UPDATE nodes SET expires_unix_ms = MAX(expires_unix_ms, ? + ttl_ms)",
                                    (now,)).rowcount

        try:
            extended = await self._run(_extend)
        except Unavailable:
            log.exception("extending the node leases failed")
            return
        if extended:
            log.info("node leases extended by their TTL after a restart or a stall",
                     extra={"nodes": extended})

    async def _sweep_loop(self) -> None:
        # As etcd does on a leader change: after a restart or a stall of this process (SIGSTOP,
        # a long GC, a hung disk) nodes could not renew their leases through it, so expiring them
        # all at once would mark a healthy cluster down. Leases get one TTL of grace instead
        # (at start: in start()).
        last = time.monotonic()
        while True:
            if time.monotonic() - last > max(1.0, 10 * self._sweep_interval):
                await self._grant_grace()
            try:
                await self._expire()
            except Unavailable:
                log.exception("lease sweep failed")
            last = time.monotonic()
            await asyncio.sleep(self._sweep_interval)

    # ---- placement map ---------------------------------------------------------
    async def get_placement_map(self) -> meta_pb2.PlacementMap:
        row = await self._run(lambda c: c.execute(
            "SELECT version, map FROM placement WHERE id = 1").fetchone())
        if row is None:
            return meta_pb2.PlacementMap()
        placement = codec.decode_message(row[1], meta_pb2.PlacementMap)
        placement.version = row[0]
        return placement

    async def update_placement_map(self, new: meta_pb2.PlacementMap, expected_version: int,
                                   lease_name: str, fencing_token: int) -> meta_pb2.PlacementMap:
        stored = meta_pb2.PlacementMap()
        stored.CopyFrom(new)
        stored.version = expected_version + 1
        stored.fencing_token = fencing_token

        def _update(conn: sqlite3.Connection) -> StoreEvent:
            conn.execute("BEGIN IMMEDIATE")
            try:
                _check_fence(conn, lease_name, fencing_token)
                row = conn.execute("SELECT version FROM placement WHERE id = 1").fetchone()
                current = row[0] if row else 0
                if current != expected_version:
                    raise Conflict(f"the placement map is at version {current}, not {expected_version}",
                                   details={"version": current, "expected_version": expected_version})
                stored.updated_unix_ms = _now_ms()
                conn.execute("INSERT OR REPLACE INTO placement (id, version, map) VALUES (1, ?, ?)",
                             (stored.version, codec.encode_message(stored).decode()))
                event = StoreEvent(EventType.PUT, self._next_revision(conn), placement=stored)
                conn.execute("COMMIT")
                return event
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        self._hub.publish(await self._run(_update))
        return stored

    # ---- named leases ----------------------------------------------------------
    async def acquire_lease(self, name: str, holder: str, ttl_ms: int) -> LeaseHolding:
        def _acquire(conn: sqlite3.Connection) -> LeaseHolding:
            now = _now_ms()
            with conn:
                row = conn.execute("SELECT holder, fencing_token, expires_unix_ms FROM leases WHERE name = ?",
                                   (name,)).fetchone()
                token = row[1] if row else 0
                live = row is not None and row[0] != "" and row[2] >= now
                if live and row[0] != holder:
                    return LeaseHolding(name, row[0], token, held=False, ttl_ms=row[2] - now)
                if not live:
                    token += 1  # a new holding: larger than every earlier one
                conn.execute("INSERT OR REPLACE INTO leases (name, holder, fencing_token, ttl_ms, "
                             "expires_unix_ms) VALUES (?, ?, ?, ?, ?)",
                             (name, holder, token, ttl_ms, now + ttl_ms))
            return LeaseHolding(name, holder, token, held=True, ttl_ms=ttl_ms)

        return await self._run(_acquire)

    async def renew_lease(self, name: str, holder: str, fencing_token: int) -> LeaseHolding:
        def _renew(conn: sqlite3.Connection) -> LeaseHolding:
            now = _now_ms()
            with conn:
                cur = conn.execute("UPDATE leases SET expires_unix_ms = ? + ttl_ms WHERE name = ? "
                                   "AND holder = ? AND fencing_token = ? AND expires_unix_ms >= ?",
                                   (now, name, holder, fencing_token, now))
            current = _lease_row(conn, name, now)
            return dataclasses.replace(current, held=cur.rowcount == 1)

        return await self._run(_renew)

    async def release_lease(self, name: str, holder: str, fencing_token: int) -> LeaseHolding:
        def _release(conn: sqlite3.Connection) -> LeaseHolding:
            with conn:
                conn.execute("UPDATE leases SET holder = '', expires_unix_ms = 0 WHERE name = ? "
                             "AND holder = ? AND fencing_token = ?", (name, holder, fencing_token))
            return _lease_row(conn, name, _now_ms())

        return await self._run(_release)

    async def get_lease(self, name: str) -> LeaseHolding:
        return await self._run(lambda c: _lease_row(c, name, _now_ms()))

    # ---- API keys --------------------------------------------------------------
    async def create_api_key(self, info: meta_pb2.ApiKeyInfo) -> None:
        def _create(conn: sqlite3.Connection) -> StoreEvent:
            with conn:
                if conn.execute("SELECT 1 FROM api_keys WHERE id = ?", (info.id,)).fetchone():
                    raise Conflict(f"an API key with id {info.id!r} exists")
                conn.execute("INSERT INTO api_keys (id, info) VALUES (?, ?)",
                             (info.id, codec.encode_message(info).decode()))
                return StoreEvent(EventType.PUT, self._next_revision(conn), api_key=info)

        self._hub.publish(await self._run(_create))

    async def list_api_keys(self) -> list[meta_pb2.ApiKeyInfo]:
        rows = await self._run(lambda c: c.execute("SELECT info FROM api_keys ORDER BY id").fetchall())
        return [codec.decode_message(r[0], meta_pb2.ApiKeyInfo) for r in rows]

    async def revoke_api_key(self, key_id: str, at_unix_ms: int) -> meta_pb2.ApiKeyInfo | None:
        def _revoke(conn: sqlite3.Connection) -> StoreEvent | None:
            with conn:
                row = conn.execute("SELECT info FROM api_keys WHERE id = ?", (key_id,)).fetchone()
                if row is None:
                    return None
                info = codec.decode_message(row[0], meta_pb2.ApiKeyInfo)
                if not info.revoked:
                    info.revoked, info.revoked_unix_ms = True, at_unix_ms
                    conn.execute("UPDATE api_keys SET info = ? WHERE id = ?",
                                 (codec.encode_message(info).decode(), key_id))
                return StoreEvent(EventType.PUT, self._next_revision(conn), api_key=info)

        event = await self._run(_revoke)
        if event is None:
            return None
        self._hub.publish(event)
        return event.api_key

    # ---- quotas ----------------------------------------------------------------
    async def set_quota(self, quota: meta_pb2.Quota) -> None:
        def _set(conn: sqlite3.Connection) -> StoreEvent:
            with conn:
                conn.execute("INSERT OR REPLACE INTO quotas (tenant, key_id, info) VALUES (?, ?, ?)",
                             (quota.tenant, quota.key_id, codec.encode_message(quota).decode()))
                return StoreEvent(EventType.PUT, self._next_revision(conn), quota=quota)

        self._hub.publish(await self._run(_set))

    async def list_quotas(self) -> list[meta_pb2.Quota]:
        rows = await self._run(lambda c: c.execute(
            "SELECT info FROM quotas ORDER BY tenant, key_id").fetchall())
        return [codec.decode_message(r[0], meta_pb2.Quota) for r in rows]

    async def delete_quota(self, tenant: str, key_id: str) -> meta_pb2.Quota | None:
        def _delete(conn: sqlite3.Connection) -> StoreEvent | None:
            with conn:
                row = conn.execute("SELECT info FROM quotas WHERE tenant = ? AND key_id = ?",
                                   (tenant, key_id)).fetchone()
                if row is None:
                    return None
                conn.execute("DELETE FROM quotas WHERE tenant = ? AND key_id = ?", (tenant, key_id))
                return StoreEvent(EventType.DELETE, self._next_revision(conn),
                                  quota=codec.decode_message(row[0], meta_pb2.Quota))

        event = await self._run(_delete)
        if event is None:
            return None
        self._hub.publish(event)
        return event.quota

    # ---- change stream ---------------------------------------------------------
    def subscribe(self) -> Subscription[StoreEvent]:
        return self._hub.subscribe()


def _lease_row(conn: sqlite3.Connection, name: str, now: int) -> LeaseHolding:
    """The live holding of ``name`` (holder "" when free or expired)."""
    row = conn.execute("SELECT holder, fencing_token, expires_unix_ms FROM leases WHERE name = ?",
                       (name,)).fetchone()
    if row is None:
        return LeaseHolding(name, "", 0, held=False)
    live = row[0] != "" and row[2] >= now
    if not live:
        return LeaseHolding(name, "", row[1], held=False)
    return LeaseHolding(name, row[0], row[1], held=False, ttl_ms=max(0, row[2] - now))


def _check_fence(conn: sqlite3.Connection, lease_name: str, fencing_token: int) -> None:
    current = _lease_row(conn, lease_name, _now_ms())
    if not current.holder or current.fencing_token != fencing_token:
        raise FencedOut(f"fencing token {fencing_token} of lease {lease_name!r} is not the live holding "
                        f"(holder {current.holder or 'none'}, token {current.fencing_token})",
                        details={"lease": lease_name, "fencing_token": current.fencing_token})


def _apply_change(conn: sqlite3.Connection, record: DdlRecord) -> StoreEvent | None:
    """Apply an applied DDL record to the collections table; the event to publish."""
    if not record.applied or record.schema is None:
        return None
    revision = SqliteMetaStore._next_revision(conn)
    if record.kind == journal_pb2.CollectionDDL.DROP:
        conn.execute("DELETE FROM collections WHERE tenant = ? AND name = ?", (record.tenant, record.name))
        return StoreEvent(EventType.DELETE, revision, collection=record.schema)
    conn.execute("INSERT OR REPLACE INTO collections (tenant, name, revision, schema) VALUES (?, ?, ?, ?)",
                 (record.tenant, record.name, revision, codec.encode_message(record.schema).decode()))
    return StoreEvent(EventType.PUT, revision, collection=record.schema)
