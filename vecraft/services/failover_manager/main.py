"""The fail-over manager process.

One instance is active at a time (:mod:`.leadership`); the others stand by.
The active one follows the registry and the placement map (:mod:`.monitoring`)
and, whenever either changes and at every tick (grace periods run out between
events), asks the planner (:mod:`.planner`) for the next map and writes it:

- no map yet: after the registry has been quiet for ``bootstrap_settle_ms``
  (the nodes of a starting cluster have registered), the first map is what
  the registered nodes declare;
- then: nodes marked down as soon as their lease is gone, their shard
  replicas re-placed on live nodes after ``grace_ms``, missing replicas
  restored when nodes come back or join.

Every write is compare-and-swap on the map version and fenced by the lease's
token; a conflict means the map moved (the watch brings the new one, the next
step starts from it); ``FencedOut`` means this instance was deposed.

The process reports ready once a placement map exists (whoever wrote it), so
``vecraft up`` starts the gateway only when there is a map to route by.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from vecraft.clients.meta import MetaClient
from vecraft.services.failover_manager.cluster_view import ClusterView
from vecraft.services.failover_manager.leadership import LEASE_NAME, Leadership
from vecraft.services.failover_manager.planner import Plan, bootstrap, reconcile
from vecraft.services.failover_manager.settings import FailoverSettings
from vecraft.shared.common.config import load_settings
from vecraft.shared.common.errors import Conflict, FencedOut, VecraftError
from vecraft.shared.common.logging import setup_logging
from vecraft.shared.common.metrics import counter
from vecraft.shared.common.service import Service, run_service
from vecraft.shared.rpc.v1 import meta_pb2

log = logging.getLogger(__name__)

_ACTIONS = counter("failover", "placement_actions",
                   "placement changes made: bootstrap, mark-down, mark-up, re-place, restore, remove",
                   ["action"])


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class FailoverManager(Service):
    role = "failover"

    def __init__(self, settings: FailoverSettings) -> None:
        super().__init__(settings)
        self.cfg = settings
        if not settings.meta_address:
            raise ValueError("--meta-address is required: the fail-over manager works through it")
        self._meta = MetaClient(settings.meta_address, timeout_s=5.0)
        self.view = ClusterView(self._meta)
        self.leadership: Leadership | None = None
        self._registry_changed_ms = 0

    async def on_start(self) -> None:
        self.leadership = Leadership(self._meta, self.node_id, self.cfg.lease_ttl_ms)
        self.spawn(self.leadership.run(), "leadership", forever=True)
        self.spawn(self.view.run(), "cluster-view", forever=True)
        self.spawn(self._manage(), "manage", forever=True)

    async def on_stop(self) -> None:
        await self._meta.close()

    def health_payload(self) -> dict[str, Any]:
        lead = self.leadership
        placement = self.view.placement
        return {
            "active": bool(lead and lead.held), "fencing_token": lead.token if lead else 0,
            "active_since_unix_ms": lead.since_unix_ms if lead and lead.held else 0,
            "view_current": self.view.current, "placement_version": placement.version,
            "live_nodes": sorted(self.view.live), "down_nodes": list(placement.down_nodes),
            "down_since_unix_ms": dict(self.view.down_since_ms),
        }

    async def _manage(self) -> None:
        """Plan and write the next map whenever something changed or a grace period may have run out."""
        seen_nodes: set[str] = set()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.view.changed.wait(), self.cfg.tick_ms / 1000)
            self.view.changed.clear()
            if self.view.placement.version and not self.ready:
                # Ready once a map exists (written by this instance or another): a cluster whose
                # start waits for this process then routes by the map from its first request.
                self.set_ready()
            if set(self.view.live) != seen_nodes:
                seen_nodes = set(self.view.live)
                self._registry_changed_ms = _now_ms()
            lead = self.leadership
            if lead is None or not lead.held or not self.view.current:
                continue
            await self._step(lead)

    def _with_wanted_replicas(self, current: meta_pb2.PlacementMap, now: int) -> meta_pb2.PlacementMap:
        """``current`` with the replica counts of the flags when they are set and differ (a cluster
        restarted with other ``--replicas``); the planner then restores the missing replicas.
        Fewer replicas than placed only stops restoring: extra replicas are not removed."""
        wanted = (self.cfg.storage_replicas or current.storage_replicas,
                  self.cfg.query_replicas or current.query_replicas)
        if wanted == (current.storage_replicas, current.query_replicas):
            return current
        changed = meta_pb2.PlacementMap()
        changed.CopyFrom(current)
        changed.storage_replicas, changed.query_replicas = wanted
        changed.history.append(meta_pb2.PlacementAction(
            at_unix_ms=now, action="set-replicas",
            detail=f"{wanted[0]} storage and {wanted[1]} query replicas per shard"))
        return changed

    async def _step(self, lead: Leadership) -> None:
        now = _now_ms()
        current = self.view.placement
        if current.version == 0:
            if not self.view.live or now - self._registry_changed_ms < self.cfg.bootstrap_settle_ms:
                return
            plan = bootstrap(self.view.live, storage_replicas=self.cfg.storage_replicas,
                             query_replicas=self.cfg.query_replicas, now_ms=now)
        else:
            current = self._with_wanted_replicas(current, now)
            plan = reconcile(current, self.view.live, self.view.down_since_ms, grace_ms=self.cfg.grace_ms,
                             now_ms=now)
            if plan.placement is None and current is not self.view.placement:
                plan = Plan(current, list(current.history[-1:]))
        if plan.placement is None:
            return
        plan.placement.updated_by = self.node_id
        try:
            written = await self._meta.update_placement_map(
                plan.placement, expected_version=self.view.placement.version, lease_name=LEASE_NAME,
                fencing_token=lead.token)
        except Conflict:
            return  # the map moved; the watch brings the new one
        except FencedOut as exc:
            lead.lost(exc.message)
            return
        except VecraftError as exc:
            log.warning("placement map update failed; retrying at the next step",
                        extra={"error": exc.message})
            return
        if written.version > self.view.placement.version:
            self.view.placement = written
        for action in plan.actions:
            _ACTIONS.labels(action.action).inc()
            log.warning("placement %s", action.action, extra={
                "node": action.node_id, "role": action.role, "shards": list(action.shards),
                "detail": action.detail, "version": written.version})


def build(argv: list[str] | None = None) -> FailoverManager:
    """The service of ``argv`` (flags as for ``main``), not started."""
    return FailoverManager(load_settings(FailoverSettings, argv, section="failover"))


def main(argv: list[str] | None = None) -> None:
    service = build(argv)
    setup_logging("failover", service.settings.log_level)
    run_service(service)
