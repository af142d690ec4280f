"""Audit entries of the system partition (docs/audit.md) are skipped by everything that applies entries:
the meta manager's DDL materialization and a replica's decoding, without halting."""

from __future__ import annotations

import pytest

from vecraft.services.api_gateway.journal_router.payloads import summarize_entry
from vecraft.services.meta_manager.ddl import ddl_of
from vecraft.shared.index import decode_entry
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]


def _audit_entry(partition: str = "system") -> journal_pb2.JournalEntry:
    record = journal_pb2.AuditRecord(action="key.create", actor_key_id="0123456789ab", tenant="acme",
                                     target="ba9876543210", outcome="ok", details_json='{"role":"read"}')
    payload = journal_pb2.JournalPayload(mutations=[journal_pb2.Mutation(audit=record)])
    return journal_pb2.JournalEntry(partition=partition, offset=7, hlc=1 << 20, request_id="~a1",
                                    payload=payload.SerializeToString())


def test_the_meta_manager_sees_no_ddl_in_an_audit_entry() -> None:
    assert ddl_of(_audit_entry()) is None  # materialization commits the watermark past it


def test_a_replica_decodes_an_audit_entry_to_no_operation() -> None:
    # Replicas follow data partitions only; even there an audit mutation would be no operation.
    assert decode_entry(_audit_entry("data-0"), 0, {}) == []


def test_journal_reads_summarize_an_audit_entry_without_any_key() -> None:
    summary = summarize_entry(_audit_entry().payload)
    assert summary == {"mutations": [{"kind": "audit", "action": "key.create", "tenant": "acme",
                                      "target": "ba9876543210", "outcome": "ok",
                                      "actor_key_id": "0123456789ab"}]}
