"""The audit log of admin actions: entries of the journal's ``system`` partition (docs/audit.md).

Every admin action the gateway runs (API key create and revoke, collection create, alter
and drop, quota set and clear) appends one entry whose payload is a single
``Mutation.audit`` (:class:`journal_pb2.AuditRecord`): the action, the API key that asked
(its id and name, never the key), the tenant acted on, the target, the outcome (``ok`` or the
error's wire name) and a few parameters as JSON. The entry's HLC says when. Requests refused
for their role or scope are not recorded (a read key could otherwise fill the journal); they
are in the access log.

Nobody applies these entries: the meta manager materializes only system entries carrying
DDL and skips the others (its watermark moves past them), and storage nodes and query caches
follow data partitions only. The append waits for the journal's own durability
(``ACK_JOURNAL``), so an action's entry is in the log when its answer is sent; when the
append fails, the action stands, a warning is logged and
``vecraft_gateway_audit_failures_total`` counts it.

:meth:`AuditLog.read` pages through the partition by offset (the cursor), keeping the
entries the reader may see and that match its filters.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from google.protobuf.message import DecodeError

from vecraft.services.api_gateway.auth.principal import Principal
from vecraft.services.api_gateway.downstream import Downstream
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.common.metrics import counter
from vecraft.shared.hlc import physical_ms
from vecraft.shared.model.audit import audit_payload, audit_request_id
from vecraft.shared.model.routing import SYSTEM_PARTITION
from vecraft.shared.rpc.v1 import journal_pb2

log = logging.getLogger(__name__)

#: Entries of the system partition one read looks at, at most (a page may hold fewer matches).
MAX_SCAN = 10_000
MAX_PAGE = 1000
_PULL = 1000

RECORDED = counter("gateway", "audit_records", "admin actions recorded in the audit log, by action",
                   ["action"])
FAILURES = counter("gateway", "audit_failures", "admin actions whose audit entry could not be appended")


@dataclasses.dataclass(frozen=True, slots=True)
class AuditEntry:
    offset: int
    hlc: int
    request_id: str
    record: journal_pb2.AuditRecord

    def to_json(self) -> dict[str, Any]:
        r = self.record
        try:
            details = orjson.loads(r.details_json) if r.details_json else {}
        except orjson.JSONDecodeError:
            details = {}
        return {"offset": self.offset, "hlc": self.hlc, "unix_ms": physical_ms(self.hlc),
                "action": r.action, "actor": {"key_id": r.actor_key_id, "key_name": r.actor_key_name},
                "tenant": r.tenant, "target": r.target, "outcome": r.outcome, "details": details}


@dataclasses.dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    #: Where the next page starts (the offset after the last entry looked at).
    next_cursor: int
    #: True when entries after ``next_cursor`` exist already.
    more: bool


@dataclasses.dataclass(frozen=True, slots=True)
class AuditFilter:
    #: An action ("key.create") or a family ("key"); "" = every action.
    action: str = ""
    since_ms: int = 0
    until_ms: int = 0

    def matches(self, entry: AuditEntry) -> bool:
        action = entry.record.action
        if self.action and action != self.action and action.split(".")[0] != self.action:
            return False
        when = physical_ms(entry.hlc)
        return not (self.since_ms and when < self.since_ms) and not (self.until_ms and when > self.until_ms)


def may_see(principal: Principal, record: journal_pb2.AuditRecord) -> bool:
    """Admins for every tenant see everything; a tenant's admin its tenant's entries (a collection scope:
    only actions on its collections)."""
    if principal.open or principal.unrestricted:
        return True
    if not principal.all_tenants and record.tenant != principal.tenant:
        return False
    if principal.collections:
        return record.action.startswith("collection.") and record.target in principal.collections
    return True


class AuditLog:
    """Appends and reads audit entries through the gateway's journal client.

    ``key_name(key_id)`` names the actor's key (the gateway's key ring).
    """

    def __init__(self, downstream: Downstream, key_name: Callable[[str], str] | None = None) -> None:
        self._downstream = downstream
        self._key_name = key_name or (lambda _: "")

    @contextlib.asynccontextmanager
    async def action(self, principal: Principal, action: str, *, tenant: str, target: str,
                     details: dict[str, Any] | None = None) -> AsyncIterator[None]:
        """Record the action run in the ``async with`` block, with its outcome.

        A request refused as the client's mistake (a 4xx: invalid, conflict, not found, over a
        quota) is not recorded: a refused request changes nothing, the journal included. One that
        failed on the system's side (unavailable, deadline, internal) may have happened: recorded.
        """
        try:
            yield
        except VecraftError as err:
            if err.http_status >= 500:
                await self.record(principal, action, tenant=tenant, target=target, outcome=err.wire_name,
                                  details=details)
            raise
        except Exception:
            await self.record(principal, action, tenant=tenant, target=target, outcome="internal",
                              details=details)
            raise
        await self.record(principal, action, tenant=tenant, target=target, outcome="ok", details=details)

    async def record(self, principal: Principal, action: str, *, tenant: str, target: str, outcome: str,
                     details: dict[str, Any] | None = None) -> None:
        """Append one entry; never raises (a failure is logged and counted)."""
        payload = audit_payload(
            action, actor_key_id=principal.key_id,
            actor_key_name=self._key_name(principal.key_id) if principal.key_id else "",
            tenant=tenant, target=target, outcome=outcome, details=details)
        try:
            await self._downstream.append(SYSTEM_PARTITION, payload, request_id=audit_request_id(), shards=[],
                                          ack=journal_pb2.ACK_JOURNAL, client_hlc=0)
        except VecraftError as err:
            FAILURES.inc()
            log.warning("audit entry not appended: %s", err.message,
                        extra={"action": action, "tenant": tenant, "target": target, "outcome": outcome})
            return
        RECORDED.labels(action).inc()

    async def read(self, principal: Principal, *, cursor: int, limit: int, where: AuditFilter,
                   tenant: str | None = None) -> AuditPage:
        """A page of the entries ``principal`` may see, from offset ``cursor`` on (``tenant``: only
        that tenant's)."""
        head, _ = await self._downstream.head(SYSTEM_PARTITION)
        found: list[AuditEntry] = []
        offset = cursor
        scanned = 0
        while offset <= head and len(found) < limit and scanned < MAX_SCAN:
            answer = await self._downstream.pull(SYSTEM_PARTITION, offset, head, _PULL)
            if not answer.entries:
                break
            for entry in answer.entries:
                offset = entry.offset + 1
                scanned += 1
                audit = _audit_of(entry)
                if audit is None or not may_see(principal, audit.record) or not where.matches(audit):
                    continue
                if tenant is not None and audit.record.tenant != tenant:
                    continue
                found.append(audit)
                if len(found) == limit:
                    break
        return AuditPage(entries=found, next_cursor=max(offset, cursor), more=offset <= head)


def _audit_of(entry: journal_pb2.JournalEntry) -> AuditEntry | None:
    try:
        payload = journal_pb2.JournalPayload.FromString(entry.payload)
    except DecodeError:
        return None
    if len(payload.mutations) != 1 or payload.mutations[0].WhichOneof("kind") != "audit":
        return None
    return AuditEntry(offset=entry.offset, hlc=entry.hlc, request_id=entry.request_id,
                      record=payload.mutations[0].audit)
