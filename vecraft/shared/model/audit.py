"""Audit records: entries of the journal's ``system`` partition that record admin actions.

One place builds them for every service that records actions: the gateway (API keys,
collections, quotas), the snapshot service (base backups) and a restored cluster's
meta manager (its restore). The format and what reads them:
docs/audit.md, :mod:`vecraft.services.api_gateway.audit`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import orjson

from vecraft.shared.rpc.v1 import journal_pb2

#: Every action recorded, by the service that records it.
GATEWAY_ACTIONS = ("key.create", "key.revoke", "collection.create", "collection.alter", "collection.drop",
                   "quota.set", "quota.clear")
SNAPSHOT_ACTIONS = ("backup.create", "backup.delete")
#: Appended by a restored cluster's meta manager at its first start (meta_manager/restore_audit.py).
RESTORE_ACTIONS = ("backup.restore",)
ACTIONS = GATEWAY_ACTIONS + SNAPSHOT_ACTIONS + RESTORE_ACTIONS


def audit_payload(action: str, *, actor_key_id: str = "", actor_key_name: str = "", tenant: str = "",
                  target: str = "", outcome: str = "ok", details: Mapping[str, Any] | None = None) -> bytes:
    """The journal payload of one audit entry (a single ``Mutation.audit``)."""
    record = journal_pb2.AuditRecord(
        action=action, actor_key_id=actor_key_id, actor_key_name=actor_key_name, tenant=tenant,
        target=target, outcome=outcome, details_json=orjson.dumps(dict(details)).decode() if details else "")
    return journal_pb2.JournalPayload(mutations=[journal_pb2.Mutation(audit=record)]).SerializeToString()


def audit_request_id() -> str:
    """A request id of its own for each audit entry, in the ``~a`` namespace no client id uses."""
    return f"~a{uuid.uuid4().hex}"
