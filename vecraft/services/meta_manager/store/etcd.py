"""`EtcdMetaStore`: the cluster backend, a real etcd cluster through the aetcd client.

Key layout under the prefix (``--etcd-prefix``, default ``/vecraft``)::

    <prefix>/ddl/watermark                      "<offset>" of the last materialized system entry
    <prefix>/ddl/records/<request_id>           DdlRecord JSON
    <prefix>/collections/<tenant>/<name>        CollectionSchema JSON
    <prefix>/tenants/<tenant>                   "<data partition>"
    <prefix>/nodes/<node_id>                    NodeInfo JSON, attached to the node's etcd lease
    <prefix>/placement                          PlacementMap JSON; its etcd version is the map's
    <prefix>/leases/<name>                      {"holder": ...}, attached to the holder's etcd lease
    <prefix>/keys/<id>                          ApiKeyInfo JSON (the key's hash, never the key)
    <prefix>/quotas/<tenant>/<key_id or "-">    Quota JSON

DDL materialization is one etcd transaction guarded by a compare on the
watermark value, so several meta managers sharing the cluster apply the
system partition exactly once and in order. Node leases are etcd leases: when
one is not renewed etcd deletes the node key itself, and every meta manager's
watch turns that into a ``DELETE`` event. A named lease is a key attached to an
etcd lease and created only when absent; its fencing token is the key's create
revision, which etcd makes larger for every new holding. A placement map
update is one transaction comparing the map key's version (compare-and-swap)
and the lease key's create revision (the fence). Each meta manager runs a single etcd
watch on the prefix (with previous values, so a DELETE carries the last
NodeInfo / schema) and fans it out in-process to its gRPC watchers.

Several endpoints become one gRPC channel over all of them (``ipv4:`` target,
pick-first), so when a member dies the channel reconnects to a live one; calls
that fail meanwhile (or during a leader election) are retried for up to
``retry_seconds`` before :class:`Unavailable` is raised.

The channel is TLS when the endpoints are ``https://``, or carry no scheme and
the store is given TLS files (the meta manager's ``--tls-cert``/``--tls-key``/
``--tls-ca``): the members are verified with the CA and the certificate is
presented to them (etcd's ``--client-cert-auth``). ``http://`` endpoints are
plain text whatever the files. aetcd dials only in plain text, so a TLS channel
goes through :class:`_TlsClient`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import aetcd
import aetcd.exceptions
import aetcd.rpc
import aetcd.watcher
import grpc
import orjson

from vecraft.services.meta_manager.store import codec
from vecraft.services.meta_manager.store.base import (
    DdlRecord,
    EventType,
    LeaseHolding,
    MetaStore,
    StoreEvent,
)
from vecraft.services.meta_manager.store.events import EventHub, Subscription
from vecraft.shared.common import tls
from vecraft.shared.common.errors import Conflict, FencedOut, InvalidRequest, Unavailable
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2, meta_pb2

log = logging.getLogger(__name__)

R = TypeVar("R")

_TRANSIENT_CODES = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN}
_CHANNEL_OPTIONS = {
    # Reconnect quickly to a surviving member after one dies.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 1000,
}


async def _transaction(client: aetcd.Client, *, compare: list[Any], success: list[Any]) -> Any:
    return await client.transaction(compare=compare, success=success, failure=[])


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, (aetcd.exceptions.ConnectionFailedError, aetcd.exceptions.ConnectionTimeoutError,
                        aetcd.exceptions.InternalError, asyncio.TimeoutError)):
        return True
    cause = exc.__cause__ if isinstance(exc, aetcd.exceptions.ClientError) else exc
    return isinstance(cause, grpc.aio.AioRpcError) and cause.code() in _TRANSIENT_CODES


def endpoint_scheme(endpoints: list[str]) -> str | None:
    """``"https"`` or ``"http"`` when the endpoints say so, None when none carries a scheme.

    Raises:
        InvalidRequest: endpoints with different schemes (one channel is TLS or not).
    """
    schemes = {e.strip().partition("://")[0] if "://" in e else None for e in endpoints}
    if len(schemes) > 1:
        raise InvalidRequest(f"etcd endpoints {endpoints} mix schemes: use https:// (or http://) for all")
    scheme = schemes.pop() if schemes else None
    if scheme not in (None, "http", "https"):
        raise InvalidRequest(f"etcd endpoint scheme {scheme!r} is not http or https")
    return scheme


def host_ports(endpoints: list[str]) -> list[tuple[str, int]]:
    """``(host, port)`` of each endpoint, its scheme dropped.

    Raises:
        InvalidRequest: no endpoint, or one that is not ``[http[s]://]host:port``.
    """
    parsed: list[tuple[str, int]] = []
    for endpoint in endpoints:
        bare = endpoint.strip().removeprefix("http://").removeprefix("https://")
        host, sep, port = bare.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise InvalidRequest(f"etcd endpoint {endpoint!r} is not host:port")
        parsed.append((host, int(port)))
    if not parsed:
        raise InvalidRequest("no etcd endpoints given")
    return parsed


def channel_target(endpoints: list[str]) -> tuple[str, int]:
    """``(host, port)`` for aetcd.Client whose ``host:port`` is a gRPC target over every endpoint.

    aetcd dials ``f"{host}:{port}"``; for several endpoints that string must be
    gRPC's ``ipv4:a:p1,b:p2,...`` form, which wants IP addresses, so host
    names are resolved here.

    Raises:
        InvalidRequest: an endpoint is not ``[http[s]://]host:port``.
    """
    parsed = host_ports(endpoints)
    if len(parsed) == 1:
        return parsed[0]
    ips = [socket.getaddrinfo(h, p, socket.AF_INET, socket.SOCK_STREAM)[0][4][0] for h, p in parsed]
    head = ",".join(f"{ip}:{p}" for ip, (_, p) in zip(ips[:-1], parsed[:-1], strict=True))
    return f"ipv4:{head},{ips[-1]}", parsed[-1][1]


def channel_credentials(endpoints: list[str], files: tls.TlsFiles | None) -> grpc.ChannelCredentials | None:
    """TLS credentials of the channel to ``endpoints``, or None for plain text.

    ``https://`` endpoints, or endpoints without a scheme when ``files`` are given, are TLS:
    the members verified with ``files.ca`` (else the system's trust store), ``files.cert``
    presented to them. ``http://`` endpoints are plain text.

    Raises:
        InvalidRequest: endpoints that mix schemes.
    """
    scheme = endpoint_scheme(endpoints)
    if scheme == "http" or (scheme is None and files is None):
        return None
    return tls.channel_credentials(files) if files is not None else grpc.ssl_channel_credentials()


class _TlsClient(aetcd.Client):
    """aetcd's client over a TLS channel (aetcd 1.0 dials only in plain text).

    Same stubs as :meth:`aetcd.Client.connect` builds, on a secure channel; no
    user/password authentication (the certificate authenticates).
    """

    def __init__(self, *, credentials: grpc.ChannelCredentials, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._credentials = credentials

    async def connect(self) -> None:
        if self._connected.is_set():
            return
        self.channel = grpc.aio.secure_channel(f"{self._host}:{self._port}", self._credentials,
                                               options=list(self._options.items()))
        self.kvstub = aetcd.rpc.KVStub(self.channel)
        self.clusterstub = aetcd.rpc.ClusterStub(self.channel)
        self.leasestub = aetcd.rpc.LeaseStub(self.channel)
        self.maintenancestub = aetcd.rpc.MaintenanceStub(self.channel)
        self._watcher = aetcd.watcher.Watcher(aetcd.rpc.WatchStub(self.channel), timeout=self._timeout,
                                              metadata=self.metadata)
        self._connected.set()


class EtcdMetaStore(MetaStore):
    """The etcd backend; ``endpoints`` are ``[http[s]://]host:port`` client URLs of the members,
    ``tls`` the files of a TLS channel to them (:func:`channel_credentials`)."""

    backend = "etcd"

    def __init__(self, endpoints: list[str], prefix: str = "/vecraft", *, retry_seconds: float = 15.0,
                 call_timeout_s: int = 5, tls_files: tls.TlsFiles | None = None) -> None:
        # Checked now: a bad scheme fails the start, not the first call.
        self._credentials = channel_credentials(endpoints, tls_files)
        self._endpoints = endpoints
        self._prefix = prefix.rstrip("/")
        self._retry_seconds = retry_seconds
        self._call_timeout_s = call_timeout_s
        self._client: aetcd.Client | None = None
        self._hub: EventHub[StoreEvent] = EventHub()
        self._watch_task: asyncio.Task[None] | None = None
        # Heartbeats do not write to etcd (that would be a Raft write per beat);
        # the last one this manager saw is reported in list_nodes.
        self._last_beat: dict[str, int] = {}

    # ---- keys ------------------------------------------------------------------
    def _key(self, *parts: str) -> bytes:
        return "/".join((self._prefix, *parts)).encode()

    @property
    def _watermark_key(self) -> bytes:
        return self._key("ddl", "watermark")

    # ---- plumbing --------------------------------------------------------------
    async def _call(self, what: str, fn: Callable[[aetcd.Client], Awaitable[R]]) -> R:
        """Run ``fn`` with the client, retrying transient failures until ``retry_seconds``."""
        if self._client is None:
            raise Unavailable("meta store is not open")
        deadline = time.monotonic() + self._retry_seconds
        delay = 0.05
        while True:
            try:
                return await fn(self._client)
            except Exception as exc:  # classified right below
                if not _is_transient(exc):
                    raise
                if time.monotonic() + delay > deadline:
                    raise Unavailable(f"etcd {what} failed: {exc}") from exc
                log.info("etcd %s failed, retrying: %s", what, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def start(self) -> None:
        host, port = channel_target(self._endpoints)
        if self._credentials is None:
            self._client = aetcd.Client(host=host, port=port, timeout=self._call_timeout_s,
                                        options=_CHANNEL_OPTIONS)
        else:
            # An ipv4: target over several members names no host to check their certificates
            # against: each is checked against the first endpoint's host, which every member's
            # certificate must therefore hold (127.0.0.1 and localhost in `vecraft certs init`'s).
            server_name = {"grpc.ssl_target_name_override": host_ports(self._endpoints)[0][0]}
            self._client = _TlsClient(host=host, port=port, timeout=self._call_timeout_s,
                                      options={**_CHANNEL_OPTIONS, **server_name},
                                      credentials=self._credentials)
        t = self._client.transactions
        wm = self._watermark_key
        # Create the watermark once, so commit_ddl can always compare its value.
        await self._call("init", lambda c: c.transaction(
            compare=[t.version(wm) == 0], success=[t.put(wm, b"0")], failure=[]))
        head = await self._call("revision", lambda c: c.get(wm))
        start_revision = head.header.revision + 1 if head is not None else 1
        self._watch_task = asyncio.create_task(self._watch_loop(start_revision), name="meta-etcd-watch")

    async def stop(self) -> None:
        if self._watch_task is not None:
            self._watch_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch_task
            self._watch_task = None
        self._hub.close_all()
        if self._client is not None:
            client, self._client = self._client, None
            with contextlib.suppress(Exception):
                await client.close()

    # ---- collections -----------------------------------------------------------
    async def get_collection(self, tenant: str, name: str) -> collection_pb2.CollectionSchema | None:
        kv = await self._call("get", lambda c: c.get(self._key("collections", tenant, name)))
        return codec.decode_message(kv.value, collection_pb2.CollectionSchema) if kv is not None else None

    async def list_collections(self, tenant: str | None = None) -> list[collection_pb2.CollectionSchema]:
        prefix = self._key("collections", tenant, "") if tenant is not None else self._key("collections", "")
        rng = await self._call("list", lambda c: c.get_prefix(prefix, sort_order="ascend"))
        schemas = [codec.decode_message(kv.value, collection_pb2.CollectionSchema) for kv in rng.kvs]
        return sorted(schemas, key=lambda s: (s.tenant, s.name))

    async def ddl_watermark(self) -> int:
        kv = await self._call("get", lambda c: c.get(self._watermark_key))
        return int(kv.value) if kv is not None else 0

    async def get_ddl_record(self, request_id: str) -> DdlRecord | None:
        kv = await self._call("get", lambda c: c.get(self._key("ddl", "records", request_id)))
        return codec.decode_record(kv.value) if kv is not None else None

    async def commit_ddl(self, expected_watermark: int, new_watermark: int,
                         record: DdlRecord | None) -> bool:
        assert self._client is not None
        t = self._client.transactions
        wm = self._watermark_key
        ops: list[Any] = [t.put(wm, str(new_watermark).encode())]
        if record is not None:
            ops.append(t.put(self._key("ddl", "records", record.request_id), codec.encode_record(record)))
            if record.applied and record.schema is not None:
                key = self._key("collections", record.tenant, record.name)
                if record.kind == journal_pb2.CollectionDDL.DROP:
                    ops.append(t.delete(key))
                else:
                    ops.append(t.put(key, codec.encode_message(record.schema)))
        # A retry after a lost answer fails the compare: the caller re-reads the watermark.
        succeeded, _ = await self._call("commit", lambda c: c.transaction(
            compare=[t.value(wm) == str(expected_watermark).encode()], success=ops, failure=[]))
        return bool(succeeded)

    # ---- tenants ---------------------------------------------------------------
    async def get_tenant_partition(self, tenant: str) -> str | None:
        kv = await self._call("get", lambda c: c.get(self._key("tenants", tenant)))
        return kv.value.decode() if kv is not None else None

    async def set_tenant_partition(self, tenant: str, partition: str) -> None:
        await self._call("put", lambda c: c.put(self._key("tenants", tenant), partition.encode()))

    # ---- nodes -----------------------------------------------------------------
    async def register_node(self, node: meta_pb2.NodeInfo, ttl_ms: int) -> tuple[str, int]:
        stored = meta_pb2.NodeInfo()
        stored.CopyFrom(node)
        stored.state = "up"
        stored.last_heartbeat_unix_ms = time.time_ns() // 1_000_000
        lease = await self._call("lease", lambda c: c.lease(max(1, math.ceil(ttl_ms / 1000))))
        # Putting the key under the new lease detaches it from any older one.
        await self._call("put", lambda c: c.put(self._key("nodes", node.node_id),
                                                codec.encode_message(stored), lease=lease))
        self._last_beat[node.node_id] = stored.last_heartbeat_unix_ms
        return str(lease.id), int(lease.ttl) * 1000

    async def heartbeat(self, node_id: str, lease_id: str) -> bool:
        try:
            lease = int(lease_id)
        except ValueError:
            return False
        kv = await self._call("get", lambda c: c.get(self._key("nodes", node_id)))
        if kv is None or kv.lease != lease:
            return False
        reply = await self._call("keepalive", lambda c: c.refresh_lease(lease))
        if reply is None or reply.TTL <= 0:
            return False
        self._last_beat[node_id] = time.time_ns() // 1_000_000
        return True

    async def list_nodes(self, role: str = "") -> list[meta_pb2.NodeInfo]:
        rng = await self._call("list", lambda c: c.get_prefix(self._key("nodes", ""), sort_order="ascend"))
        nodes = []
        for kv in rng.kvs:
            node = codec.decode_message(kv.value, meta_pb2.NodeInfo)
            beat = self._last_beat.get(node.node_id, 0)
            node.last_heartbeat_unix_ms = max(node.last_heartbeat_unix_ms, beat)
            if not role or node.role == role:
                nodes.append(node)
        return sorted(nodes, key=lambda n: n.node_id)

    async def deregister_node(self, node_id: str, lease_id: str) -> bool:
        try:
            lease = int(lease_id)
        except ValueError:
            return False
        kv = await self._call("get", lambda c: c.get(self._key("nodes", node_id)))
        if kv is None or kv.lease != lease:
            return False
        # Revoking the lease deletes the key; the watch publishes the DELETE.
        await self._call("revoke", lambda c: c.revoke_lease(lease))
        return True

    # ---- placement map ---------------------------------------------------------
    @property
    def _placement_key(self) -> bytes:
        return self._key("placement")

    async def get_placement_map(self) -> meta_pb2.PlacementMap:
        kv = await self._call("get", lambda c: c.get(self._placement_key))
        if kv is None:
            return meta_pb2.PlacementMap()
        placement = codec.decode_message(kv.value, meta_pb2.PlacementMap)
        placement.version = kv.version
        return placement

    async def update_placement_map(self, new: meta_pb2.PlacementMap, expected_version: int,
                                   lease_name: str, fencing_token: int) -> meta_pb2.PlacementMap:
        assert self._client is not None
        t = self._client.transactions
        stored = meta_pb2.PlacementMap()
        stored.CopyFrom(new)
        stored.version = expected_version + 1
        stored.fencing_token = fencing_token
        stored.updated_unix_ms = time.time_ns() // 1_000_000
        lease_key = self._key("leases", lease_name)
        succeeded, _ = await self._call("placement", lambda c: c.transaction(
            compare=[t.create(lease_key) == fencing_token,
                     t.version(self._placement_key) == expected_version],
            success=[t.put(self._placement_key, codec.encode_message(stored))], failure=[]))
        if succeeded:
            return stored
        holding = await self.get_lease(lease_name)
        if not holding.holder or holding.fencing_token != fencing_token:
            raise FencedOut(f"fencing token {fencing_token} of lease {lease_name!r} is not the live holding "
                            f"(holder {holding.holder or 'none'}, token {holding.fencing_token})",
                            details={"lease": lease_name, "fencing_token": holding.fencing_token})
        current = (await self.get_placement_map()).version
        raise Conflict(f"the placement map is at version {current}, not {expected_version}",
                       details={"version": current, "expected_version": expected_version})

    # ---- named leases ----------------------------------------------------------
    async def _lease_kv(self, name: str) -> tuple[Any, str]:
        kv = await self._call("get", lambda c: c.get(self._key("leases", name)))
        return kv, (orjson.loads(kv.value)["holder"] if kv is not None else "")

    async def acquire_lease(self, name: str, holder: str, ttl_ms: int) -> LeaseHolding:
        assert self._client is not None
        t = self._client.transactions
        key = self._key("leases", name)
        kv, current = await self._lease_kv(name)
        if kv is not None and current == holder:
            return await self.renew_lease(name, holder, int(kv.create_revision))
        if kv is not None:
            return LeaseHolding(name, current, int(kv.create_revision), held=False)
        lease = await self._call("lease", lambda c: c.lease(max(1, math.ceil(ttl_ms / 1000))))
        succeeded, _ = await self._call("acquire", lambda c: c.transaction(
            compare=[t.version(key) == 0],
            success=[t.put(key, orjson.dumps({"holder": holder}), lease=lease)], failure=[]))
        if not succeeded:
            await self._call("revoke", lambda c: c.revoke_lease(lease.id))
        kv, current = await self._lease_kv(name)
        token = int(kv.create_revision) if kv is not None else 0
        return LeaseHolding(name, current, token, held=succeeded and current == holder,
                            ttl_ms=int(lease.ttl) * 1000)

    async def renew_lease(self, name: str, holder: str, fencing_token: int) -> LeaseHolding:
        kv, current = await self._lease_kv(name)
        if kv is None or current != holder or int(kv.create_revision) != fencing_token:
            return LeaseHolding(name, current, int(kv.create_revision) if kv is not None else 0, held=False)
        reply = await self._call("keepalive", lambda c: c.refresh_lease(kv.lease))
        ttl = int(reply.TTL) if reply is not None else 0
        return LeaseHolding(name, current if ttl > 0 else "", fencing_token, held=ttl > 0, ttl_ms=ttl * 1000)

    async def release_lease(self, name: str, holder: str, fencing_token: int) -> LeaseHolding:
        kv, current = await self._lease_kv(name)
        if kv is not None and current == holder and int(kv.create_revision) == fencing_token:
            await self._call("revoke", lambda c: c.revoke_lease(kv.lease))
        return await self.get_lease(name)

    async def get_lease(self, name: str) -> LeaseHolding:
        kv, current = await self._lease_kv(name)
        return LeaseHolding(name, current, int(kv.create_revision) if kv is not None else 0, held=False)

    # ---- API keys --------------------------------------------------------------
    async def create_api_key(self, info: meta_pb2.ApiKeyInfo) -> None:
        assert self._client is not None
        t = self._client.transactions
        key = self._key("keys", info.id)
        succeeded, _ = await self._call("put", lambda c: c.transaction(
            compare=[t.version(key) == 0], success=[t.put(key, codec.encode_message(info))], failure=[]))
        if not succeeded:
            raise Conflict(f"an API key with id {info.id!r} exists")

    async def list_api_keys(self) -> list[meta_pb2.ApiKeyInfo]:
        rng = await self._call("list", lambda c: c.get_prefix(self._key("keys", ""), sort_order="ascend"))
        keys = [codec.decode_message(kv.value, meta_pb2.ApiKeyInfo) for kv in rng.kvs]
        return sorted(keys, key=lambda k: k.id)

    async def revoke_api_key(self, key_id: str, at_unix_ms: int) -> meta_pb2.ApiKeyInfo | None:
        assert self._client is not None
        t = self._client.transactions
        key = self._key("keys", key_id)
        while True:
            kv = await self._call("get", lambda c: c.get(key))
            if kv is None:
                return None
            info = codec.decode_message(kv.value, meta_pb2.ApiKeyInfo)
            if info.revoked:
                return info
            info.revoked, info.revoked_unix_ms = True, at_unix_ms
            # Compare-and-swap on the record's version: a concurrent revoke keeps its first time.
            compare, put = [t.version(key) == kv.version], [t.put(key, codec.encode_message(info))]
            succeeded, _ = await self._call("revoke", functools.partial(
                _transaction, compare=compare, success=put))
            if succeeded:
                return info

    # ---- quotas ----------------------------------------------------------------
    def _quota_key(self, tenant: str, key_id: str) -> bytes:
        # Key ids are hex and tenants are names ([A-Za-z0-9_-]), so "-" never is a key id.
        return self._key("quotas", tenant, key_id or "-")

    async def set_quota(self, quota: meta_pb2.Quota) -> None:
        key = self._quota_key(quota.tenant, quota.key_id)
        await self._call("put", lambda c: c.put(key, codec.encode_message(quota)))

    async def list_quotas(self) -> list[meta_pb2.Quota]:
        rng = await self._call("list", lambda c: c.get_prefix(self._key("quotas", ""), sort_order="ascend"))
        quotas = [codec.decode_message(kv.value, meta_pb2.Quota) for kv in rng.kvs]
        return sorted(quotas, key=lambda q: (q.tenant, q.key_id))

    async def delete_quota(self, tenant: str, key_id: str) -> meta_pb2.Quota | None:
        key = self._quota_key(tenant, key_id)
        kv = await self._call("get", lambda c: c.get(key))
        if kv is None:
            return None
        await self._call("delete", lambda c: c.delete(key))
        return codec.decode_message(kv.value, meta_pb2.Quota)

    # ---- change stream ---------------------------------------------------------
    def subscribe(self) -> Subscription[StoreEvent]:
        return self._hub.subscribe()

    def _to_event(self, event: Any) -> StoreEvent | None:
        key = event.kv.key.decode()
        rel = key[len(self._prefix) + 1:].split("/")
        deleted = event.kind == "DELETE"
        kind = EventType.DELETE if deleted else EventType.PUT
        value = event.prev_kv.value if deleted and event.prev_kv is not None else event.kv.value
        revision = int(event.kv.mod_revision)
        if rel[0] == "collections" and len(rel) == 3:
            schema = (codec.decode_message(value, collection_pb2.CollectionSchema) if value
                      else collection_pb2.CollectionSchema(tenant=rel[1], name=rel[2]))
            return StoreEvent(kind, revision, collection=schema)
        if rel[0] == "nodes" and len(rel) == 2:
            node = (codec.decode_message(value, meta_pb2.NodeInfo) if value
                    else meta_pb2.NodeInfo(node_id=rel[1]))
            if deleted:
                node.state = "down"
                self._last_beat.pop(node.node_id, None)
            return StoreEvent(kind, revision, node=node)
        if rel[0] == "keys" and len(rel) == 2 and not deleted:
            return StoreEvent(kind, revision, api_key=codec.decode_message(value, meta_pb2.ApiKeyInfo))
        if rel[0] == "quotas" and len(rel) == 3:
            quota = (codec.decode_message(value, meta_pb2.Quota) if value
                     else meta_pb2.Quota(tenant=rel[1], key_id="" if rel[2] == "-" else rel[2]))
            return StoreEvent(kind, revision, quota=quota)
        if rel == ["placement"] and not deleted:
            placement = codec.decode_message(value, meta_pb2.PlacementMap)
            placement.version = int(event.kv.version)
            return StoreEvent(kind, revision, placement=placement)
        return None

    async def _watch_loop(self, start_revision: int) -> None:
        """Follow the prefix forever; after a broken stream resume from the next revision."""
        next_revision = start_revision
        delay = 0.1
        while True:
            client = self._client
            if client is None:
                return
            try:
                watch = await client.watch_prefix(self._key(""), start_revision=next_revision, prev_kv=True)
                delay = 0.1
                async for event in watch:
                    next_revision = int(event.kv.mod_revision) + 1
                    converted = self._to_event(event)
                    if converted is not None:
                        self._hub.publish(converted)
            except aetcd.exceptions.RevisionCompactedError as exc:
                log.warning("etcd history compacted; watch resumes at revision %d", exc.compacted_revision)
                next_revision = exc.compacted_revision
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any broken stream is re-established
                log.info("etcd watch interrupted, resuming at revision %d: %s", next_revision, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
