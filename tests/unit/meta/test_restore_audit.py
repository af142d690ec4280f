"""The restore's audit entry (meta_manager/restore_audit.py): its request id is the restore's identity,
so a retried start is deduplicated by the journal; the marker stops later starts from appending."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from vecraft.services.journal_service.journal import MAX_REQUEST_ID_BYTES
from vecraft.services.meta_manager.restore_audit import (
    AUDITED,
    RESTORED_FROM,
    record_restore,
    restore_request_id,
)
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

ORIGIN = {"backup": "20261204T101500Z-1a2b", "target": "/b", "hlc": 123 << 16,
          "moment": {"time": "2026-12-04"}, "restored_by": "ops", "restored_at_ms": 1764867600123,
          "partitions": {"system": [4, 4, 100 << 16], "data-0": [9, 12, 123 << 16]}}


class Journal:
    """Appends to ``system`` with the journal's idempotency: a known request id answers its first offset."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, bytes]] = []
        self.calls: list[str] = []
        self.fail = 0

    async def append(self, partition: str, payload: bytes, *, request_id: str, **_: Any) -> Any:
        assert partition == "system"
        self.calls.append(request_id)
        if self.fail:
            self.fail -= 1
            raise Unavailable("journal starting")
        known = [i for i, (rid, _) in enumerate(self.entries) if rid == request_id]
        if not known:
            self.entries.append((request_id, payload))
        offset = 5 + (known[0] if known else len(self.entries) - 1)
        return journal_pb2.AppendResponse(partition=partition, offset=offset, duplicate=bool(known))


def restored(tmp_path: Path, origin: dict[str, Any] = ORIGIN) -> Path:
    (tmp_path / RESTORED_FROM).write_text(json.dumps(origin, indent=1) + "\n")
    return tmp_path


def test_the_request_id_is_the_restores_identity() -> None:
    raw = json.dumps(ORIGIN).encode()
    assert restore_request_id(raw) == restore_request_id(bytes(raw))
    assert restore_request_id(raw) != restore_request_id(json.dumps({**ORIGIN, "restored_at_ms": 1}).encode())
    assert restore_request_id(raw).startswith("~a")  # the audit namespace no client id uses
    assert len(restore_request_id(raw).encode()) <= MAX_REQUEST_ID_BYTES


async def test_a_plain_data_dir_appends_nothing(tmp_path: Path) -> None:
    journal = Journal()
    assert await record_restore(journal, tmp_path) is None  # type: ignore[arg-type]
    assert journal.calls == [] and not (tmp_path / AUDITED).exists()


async def test_one_entry_with_the_restores_details(tmp_path: Path) -> None:
    journal, data_dir = Journal(), restored(tmp_path)
    assert await record_restore(journal, data_dir) == 5  # type: ignore[arg-type]
    [(_, payload)] = journal.entries
    [mutation] = journal_pb2.JournalPayload.FromString(payload).mutations
    a = mutation.audit
    assert (a.action, a.target, a.actor_key_name, a.actor_key_id, a.tenant, a.outcome) \
        == ("backup.restore", ORIGIN["backup"], "cli:ops", "", "", "ok")
    assert json.loads(a.details_json) == {
        "backup": ORIGIN["backup"], "moment": {"time": "2026-12-04"}, "hlc": 123 << 16,
        "restored_at_ms": 1764867600123, "last_offsets": {"data-0": 12, "system": 4}}
    assert json.loads((data_dir / AUDITED).read_text())["offset"] == 5


async def test_a_start_after_a_crash_before_the_marker_is_deduplicated(tmp_path: Path) -> None:
    journal, data_dir = Journal(), restored(tmp_path)
    await record_restore(journal, data_dir)  # type: ignore[arg-type]
    (data_dir / AUDITED).unlink()  # the crash: appended, marker never written
    assert await record_restore(journal, data_dir) == 5  # type: ignore[arg-type]
    assert len(journal.entries) == 1 and journal.calls[0] == journal.calls[1]
    assert await record_restore(journal, data_dir) is None  # type: ignore[arg-type]
    assert len(journal.calls) == 2  # the marker: no third append


async def test_a_failed_append_leaves_no_marker(tmp_path: Path) -> None:
    journal, data_dir = Journal(), restored(tmp_path)
    journal.fail = 1
    with pytest.raises(Unavailable):
        await record_restore(journal, data_dir)  # type: ignore[arg-type]
    assert not (data_dir / AUDITED).exists()
    assert await record_restore(journal, data_dir) == 5  # type: ignore[arg-type]
    assert len(journal.entries) == 1
