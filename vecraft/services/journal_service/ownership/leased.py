"""Partition ownership through meta-manager leases, fenced into the JetStream streams (cluster mode).

Several journal instances may serve the same JetStream streams. Each
partition is written by one of them, its *owner*, which holds the meta
manager's named lease ``journal-<prefix>-<partition>``; the lease's fencing
token is the owner's *epoch*. Taking a partition over:

1. acquire the lease (a candidate retries when the holder's lease runs out:
   the SQLite backend says how long it has left, so a candidate asks again
   just after; otherwise every quarter of the TTL). Meanwhile it knocks on the
   holder's gRPC port every :data:`PROBE_INTERVAL_S`: a port that refuses
   connections has no process behind it (killed, crashed), so the candidate
   breaks that holding (``ReleaseLease`` with the holder's name and token) and
   takes over at once instead of waiting out the TTL. The holding of this
   instance's own previous incarnation is broken likewise. A holder that is
   alive, even paused, still accepts connections and is never broken; and
   were a live owner ever broken, the stream's fencing refuses its writes;
2. fence the stream: :meth:`JetStreamPartitionLog.take_over` publishes the
   epoch marker (conditional on the stream's last sequence, after catching up
   with it: the HLC moves above the stream's last entry, request ids of every
   earlier entry are indexed);
3. announce it: re-register in the node registry with the partition in
   ``NodeInfo.partitions``.

An owner renews at a third of the TTL and stops writing at TTL (minus a
guard) after the last renewal it sent that succeeded, measured on its
monotonic clock, whether or not it could reach the meta manager since — before
the lease could have expired for anyone else. A renewal the meta manager
refuses (someone else holds it) ends ownership at once, and so does a newer
owner's marker found in the stream (:attr:`JetStreamPartitionLog.on_deposed`).
Mutual exclusion itself never rests on the lease: the stream refuses a
deposed owner's writes (see :mod:`vecraft.services.journal_service.wal.jetstream`).

A non-owner answers appends with :class:`~vecraft.shared.common.errors.NotOwner`
carrying the owner's address when it knows it (the live holder from its last
acquire attempt, mapped to an address through the node registry), so clients
go there directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vecraft.services.journal_service import metrics
from vecraft.services.journal_service.ownership import Ownership
from vecraft.services.journal_service.wal.jetstream import (
    Holding,
    JetStreamJournalBackend,
    JetStreamPartitionLog,
)
from vecraft.shared.common.errors import FencedOut, NotOwner, Unavailable, VecraftError
from vecraft.shared.rpc.v1 import meta_pb2

if TYPE_CHECKING:
    from vecraft.clients.meta import MetaClient

log = logging.getLogger(__name__)

#: How much earlier than the lease TTL an owner stops writing: covers the time the renewal took to
#: reach the meta manager (expiry is set from its receipt there) and clock rate differences.
MIN_GUARD_S = 0.05
#: An unknown holder's address is looked up in the registry at most this often.
REGISTRY_REFRESH_S = 0.25
#: How often a candidate checks that the holder's gRPC port still accepts connections.
PROBE_INTERVAL_S = 0.1
#: A connection attempt that neither succeeds nor is refused within this is "alive" (paused, busy).
PROBE_TIMEOUT_S = 0.25


@dataclass
class _Partition:
    name: str
    lease: str
    plog: JetStreamPartitionLog
    holding: Holding | None = None  # ours, once the marker is stored
    until: float = 0.0  # monotonic; we stop writing then unless renewed
    renewed_at: float = 0.0  # monotonic send time of the last successful renewal
    owner: str = ""  # node id of the live holder, when it is another instance
    generation: int = 0
    stale_tokens: int = 0  # holdings given back because the stream already held their epoch
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def owned(self) -> bool:
        return self.holding is not None and time.monotonic() < self.until


class LeasedOwnership(Ownership):
    """Ownership through the meta manager's named leases, fenced into the JetStream streams.

    Args:
        backend: a fenced JetStream backend (opened before :meth:`run`).
        meta: a client of the meta manager (short timeouts: a renewal must not wait past the TTL).
        node_id: this instance's node id in the registry.
        address / http_address: where clients and probes reach it.
        lease_ttl_ms: the partition leases' TTL; renewed every third of it.
        node_ttl_ms: the registration lease's TTL.
        stream_prefix: the backend's stream prefix (names the leases).
    """

    def __init__(self, backend: JetStreamJournalBackend, meta: MetaClient, *, node_id: str, address: str,
                 http_address: str, lease_ttl_ms: int, node_ttl_ms: int, stream_prefix: str) -> None:
        self._meta = meta
        self.node_id = node_id
        # One holder per process incarnation: a restarted instance never inherits its predecessor's
        # holding (it takes a new one, with a larger token, and writes its own marker).
        self.holder = f"{node_id}/{uuid.uuid4().hex[:12]}"
        self._address = address
        self._http_address = http_address
        self._ttl_ms = lease_ttl_ms
        self._ttl_s = lease_ttl_ms / 1000.0
        self._guard_s = max(MIN_GUARD_S, self._ttl_s / 10)
        self._node_ttl_ms = node_ttl_ms
        self._parts = {name: _Partition(name, f"journal-{stream_prefix}-{name}", backend.partition(name))
                       for name in backend.partitions()}
        for part in self._parts.values():
            part.plog.on_deposed = self._deposed
        self._addresses: dict[str, str] = {}  # node id -> gRPC address (journal role)
        self._looked_up = -REGISTRY_REFRESH_S
        self.changed = asyncio.Event()
        self._unreachable = False

    # ---- Ownership -------------------------------------------------------------------
    def check_write(self, partition: str) -> None:
        part = self._parts[partition]
        if not (part.owned and part.plog.writable):
            raise self.not_owner(partition)

    def check_tracking(self, partition: str) -> None:
        part = self._parts[partition]
        if not part.owned and part.owner and self._addresses.get(part.owner):
            raise self.not_owner(partition)

    def not_owner(self, partition: str, why: str = "") -> NotOwner:
        part = self._parts[partition]
        address = self._addresses.get(part.owner, "") if part.owner else ""
        if part.owner:
            where = f"it is owned by {part.owner}" + (f" at {address}" if address else "")
        else:
            where = "no live owner is known yet (a take-over may be under way); retry shortly"
        return NotOwner(f"journal instance {self.node_id} does not own partition {partition}: {where}"
                        + (f" ({why})" if why else ""), retry_after_ms=100,
                        details={"partition": partition, "owner": part.owner, "owner_address": address})

    def generation(self, partition: str) -> int:
        return self._parts[partition].generation

    def owned(self) -> list[str]:
        return [name for name, part in self._parts.items() if part.owned]

    def describe(self) -> dict[str, object]:
        return {"owned_partitions": self.owned(),
                "partition_owners": {name: (self.node_id if part.owned else part.owner) or None
                                     for name, part in self._parts.items()}}

    # ---- running -----------------------------------------------------------------------
    async def run(self) -> None:
        """Take, keep and give up partitions, and stay registered; until cancelled."""
        tasks = [asyncio.create_task(self._run_partition(part), name=f"journal-ownership:{part.name}")
                 for part in self._parts.values()]
        tasks.append(asyncio.create_task(
            self._meta.keep_registered(self._node_info, self._node_ttl_ms, changed=self.changed),
            name="journal-registration"))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # a loop that failed fails the service
            raise RuntimeError("a partition ownership loop ended")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def release_all(self) -> None:
        """Stop writing and hand every owned partition back (graceful shutdown: another instance takes
        them over at its next attempt instead of waiting out the TTL). Call after the backend closed."""
        releases = []
        for part in self._parts.values():
            holding = part.holding
            if holding is None:
                continue
            self._lose(part, "shutting down", quiet=True)
            releases.append(self._meta.release_lease(part.lease, self.holder, holding.epoch))
        if releases:
            await asyncio.gather(*releases, return_exceptions=True)

    def _node_info(self) -> meta_pb2.NodeInfo:
        return meta_pb2.NodeInfo(node_id=self.node_id, role="journal", address=self._address,
                                 http_address=self._http_address, partitions=self.owned(), pid=os.getpid())

    async def _run_partition(self, part: _Partition) -> None:
        while True:
            if part.holding is not None:
                await self._keep(part)
            else:
                await self._try_take(part)

    async def _try_take(self, part: _Partition) -> None:
        """One attempt to take ``part`` over; sleeps until the next attempt when it is held elsewhere."""
        sent = time.monotonic()
        try:
            state = await self._meta.acquire_lease(part.lease, self.holder, self._ttl_ms)
        except VecraftError as exc:
            self._meta_failed(exc)
            await self._sleep(part, self._ttl_s / 4)
            return
        self._unreachable = False
        if not state.held:
            await self._note_owner(part, state.holder.split("/", 1)[0])
            # SQLite says how long the holder's lease has left: ask again just after it.
            left = state.ttl_ms / 1000.0 if state.ttl_ms > 0 else self._ttl_s
            await self._wait_or_break(part, state, min(self._ttl_s / 4, left + 0.02))
            return
        holding = Holding(int(state.fencing_token), self.holder)
        until = sent + self._ttl_s - self._guard_s
        began = time.monotonic()
        try:
            marker = await asyncio.wait_for(part.plog.take_over(holding, until),
                                            max(until - time.monotonic(), 0.01))
        except FencedOut as exc:
            # The stream holds this epoch or a newer one: either a newer holding wrote (this lease is
            # stale already) or the lease store's tokens went backwards (a new meta store). A new
            # holding has a larger token: give this one back and take the next one at once.
            part.plog.revoke()
            if part.stale_tokens % 100 == 0:
                log.warning("partition %s: fencing token %d is not above the stream's epochs (%s); taking "
                            "a newer lease (%d so far)", part.name, holding.epoch, exc.message,
                            part.stale_tokens + 1, extra={"partition": part.name})
            part.stale_tokens += 1
            with contextlib.suppress(VecraftError):
                await self._meta.release_lease(part.lease, self.holder, holding.epoch)
            return
        except (NotOwner, Unavailable, TimeoutError) as exc:
            part.plog.revoke()
            log.warning("partition %s: take-over failed: %s", part.name, exc, extra={"partition": part.name})
            with contextlib.suppress(VecraftError):
                await self._meta.release_lease(part.lease, self.holder, holding.epoch)
            await self._sleep(part, self._ttl_s / 4)
            return
        part.holding, part.until, part.renewed_at = holding, until, sent
        part.owner, part.stale_tokens = "", 0
        part.wake.clear()
        metrics.OWNED.labels(part.name).set(1)
        metrics.TAKE_OVERS.labels(part.name).inc()
        self.changed.set()
        log.info("took partition %s over: epoch %d, marker at offset %d (%.0f ms)", part.name, holding.epoch,
                 marker.offset, (time.monotonic() - began) * 1000,
                 extra={"partition": part.name, "epoch": holding.epoch, "offset": marker.offset})

    async def _keep(self, part: _Partition) -> None:
        """Renew ``part``'s lease every third of the TTL until ownership ends."""
        holding = part.holding
        assert holding is not None
        while part.holding is holding:
            wait = part.renewed_at + self._ttl_s / 3 - time.monotonic()
            if wait > 0:
                await self._sleep(part, wait)
                if part.holding is not holding:
                    return
            if time.monotonic() >= part.until:
                self._lose(part, "its lease could not be renewed in time")
                return
            sent = time.monotonic()
            try:
                state = await self._meta.renew_lease(part.lease, self.holder, holding.epoch)
            except VecraftError as exc:
                self._meta_failed(exc)
                # Try again soon; writing stops at `until` on its own if no renewal gets through.
                part.renewed_at = min(time.monotonic(), part.until) - self._ttl_s / 3 + 0.1
                continue
            self._unreachable = False
            if part.holding is not holding:
                return
            if not state.held:
                self._lose(part, f"the lease is held by {state.holder or 'nobody'} now")
                return
            part.until, part.renewed_at = sent + self._ttl_s - self._guard_s, sent
            part.plog.extend(holding, part.until)

    async def _wait_or_break(self, part: _Partition, state: meta_pb2.LeaseState, seconds: float) -> None:
        """Wait ``seconds`` for the next attempt, or less: break the holding at once when its holder is
        gone (see the module doc)."""
        end = time.monotonic() + seconds
        while True:
            if state.holder and await self._holder_gone(part, state.holder):
                with contextlib.suppress(VecraftError):
                    await self._meta.release_lease(part.lease, state.holder, state.fencing_token)
                    metrics.LEASES_BROKEN.labels(part.name).inc()
                    log.warning("partition %s: its owner %s does not accept connections; broke its lease "
                                "(epoch %d) to take over", part.name, state.holder, state.fencing_token,
                                extra={"partition": part.name})
                    return
            left = end - time.monotonic()
            if left <= 0:
                return
            generation = part.generation
            await self._sleep(part, min(PROBE_INTERVAL_S, left))
            if part.generation != generation:
                return  # something changed (deposed, new owner): attempt again now

    async def _holder_gone(self, part: _Partition, holder: str) -> bool:
        """Whether the process holding ``part`` is certainly gone."""
        if holder.split("/", 1)[0] == self.node_id:
            return holder != self.holder  # our previous incarnation: this process replaced it
        address = self._addresses.get(part.owner) if part.owner else None
        if not address:
            return False
        host, _, port = address.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), PROBE_TIMEOUT_S)
        except ConnectionRefusedError:
            return True
        except (OSError, TimeoutError, ValueError):
            return False  # unreachable or slow: not proof that it is gone
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return False

    def _lose(self, part: _Partition, why: str, *, quiet: bool = False) -> None:
        if part.holding is None:
            return
        part.holding, part.until = None, 0.0
        part.plog.revoke()
        part.generation += 1
        part.wake.set()
        metrics.OWNED.labels(part.name).set(0)
        self.changed.set()
        if not quiet:
            log.warning("partition %s: no longer its owner: %s", part.name, why,
                        extra={"partition": part.name})

    def _deposed(self, partition: str) -> None:
        self._lose(self._parts[partition], "a newer owner's epoch marker is in the stream")

    async def _note_owner(self, part: _Partition, node_id: str) -> None:
        if node_id == self.node_id:
            node_id = ""  # our own previous incarnation: not an address to send anyone to
        if node_id != part.owner:
            part.owner = node_id
            part.generation += 1
        if node_id and node_id not in self._addresses and \
                time.monotonic() - self._looked_up >= REGISTRY_REFRESH_S:
            self._looked_up = time.monotonic()
            try:
                nodes = await self._meta.list_nodes("journal")
            except VecraftError as exc:
                self._meta_failed(exc)
                return
            self._addresses = {n.node_id: n.address for n in nodes if n.address}

    def _meta_failed(self, exc: VecraftError) -> None:
        if not self._unreachable:
            log.warning("meta manager unreachable for partition leases (retrying): %s", exc.message)
        self._unreachable = True

    @staticmethod
    async def _sleep(part: _Partition, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(part.wake.wait(), max(seconds, 0.0))
        part.wake.clear()

