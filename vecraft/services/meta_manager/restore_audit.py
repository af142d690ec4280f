"""The audit entry of a restore, appended by the restored cluster itself the first time it starts.

``vecraft restore`` (snapshot_service/restore.py) is offline and writes exactly the entries up
to the cut, so it cannot append its own audit entry without breaking that property
(docs/backup.md). Instead the meta manager, at start, calls :func:`record_restore`: while
the cluster's data directory holds ``restored-from.json`` and no ``restore-audited.json``, it
appends one ``backup.restore`` entry to ``system`` (after the cut: a higher offset) and then
writes the marker.

Exactly once, also across a crash between the append and the marker: the entry's request id is
derived from ``restored-from.json``'s bytes, so a retried start is answered by the journal's
idempotency (``duplicate=True``, the first entry's offset) instead of appending a second one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vecraft.shared.model.audit import audit_payload
from vecraft.shared.model.routing import SYSTEM_PARTITION
from vecraft.shared.rpc.v1 import journal_pb2

if TYPE_CHECKING:
    from vecraft.clients.journal import JournalClient

log = logging.getLogger(__name__)

RESTORED_FROM = "restored-from.json"
AUDITED = "restore-audited.json"
ACTION = "backup.restore"


def restore_request_id(restored_from: bytes) -> str:
    """The request id of a restore's audit entry: the same for the same restore, in the ``~a`` namespace."""
    return "~a" + hashlib.sha256(restored_from).hexdigest()[:32]


def restore_details(record: dict[str, Any]) -> dict[str, Any]:
    """The audit entry's details, from ``restored-from.json``: backup, moment, restored heads."""
    return {"backup": record.get("backup", ""), "moment": record.get("moment") or {},
            "hlc": record.get("hlc", 0), "restored_at_ms": record.get("restored_at_ms", 0),
            "last_offsets": {p: v[1] for p, v in sorted(record.get("partitions", {}).items())}}


async def record_restore(journal: JournalClient, data_dir: Path) -> int | None:
    """Append the restore's audit entry of ``data_dir`` once; its offset, or None with nothing to do.

    Raises what the append raises (the caller retries with the same request id).
    """
    source, marker = data_dir / RESTORED_FROM, data_dir / AUDITED
    if not source.is_file() or marker.exists():
        return None
    raw = source.read_bytes()
    record = json.loads(raw)
    request_id = restore_request_id(raw)
    payload = audit_payload(ACTION, actor_key_name=f"cli:{record.get('restored_by') or 'unknown'}",
                            target=str(record.get("backup", "")), details=restore_details(record))
    resp = await journal.append(SYSTEM_PARTITION, payload, request_id=request_id,
                                ack=journal_pb2.ACK_JOURNAL, timeout_s=10.0)
    staging = marker.with_suffix(".tmp")
    staging.write_text(json.dumps({"request_id": request_id, "offset": resp.offset}) + "\n")
    os.replace(staging, marker)
    log.info("restore recorded in the audit log",
             extra={"backup": record.get("backup"), "offset": resp.offset, "duplicate": resp.duplicate})
    return int(resp.offset)
