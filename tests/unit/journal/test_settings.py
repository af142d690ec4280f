"""The journal's settings: max_entry_bytes is one request at most (MAX_REQUEST_BYTES)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from vecraft.services.journal_service.journal import JournalLimits
from vecraft.services.journal_service.settings import JournalSettings
from vecraft.shared.common.config import load_settings
from vecraft.shared.model.limits import MAX_REQUEST_BYTES

pytestmark = pytest.mark.unit


def test_max_entry_bytes_defaults_to_the_largest_request() -> None:
    assert JournalSettings().max_entry_bytes == MAX_REQUEST_BYTES
    assert JournalLimits().max_entry_bytes == MAX_REQUEST_BYTES
    assert load_settings(JournalSettings, ["--max-entry-bytes", str(MAX_REQUEST_BYTES)],
                         section="journal").max_entry_bytes == MAX_REQUEST_BYTES
    assert JournalSettings(max_entry_bytes=1000).max_entry_bytes == 1000


def test_max_entry_bytes_above_the_largest_request_is_refused() -> None:
    with pytest.raises(ValidationError, match=rf"--max-entry-bytes {MAX_REQUEST_BYTES + 1} is above "
                                              rf"MAX_REQUEST_BYTES \({MAX_REQUEST_BYTES}"):
        load_settings(JournalSettings, ["--max-entry-bytes", str(MAX_REQUEST_BYTES + 1)], section="journal")
    with pytest.raises(ValueError,
                       match=rf"max_entry_bytes {MAX_REQUEST_BYTES + 1} is outside 1\.\.{MAX_REQUEST_BYTES}"):
        JournalLimits(max_entry_bytes=MAX_REQUEST_BYTES + 1)


def test_the_journal_refuses_to_start_with_max_entry_bytes_above_the_largest_request(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "vecraft.services.journal_service", "--data-dir", str(tmp_path / "data"),
         "--max-entry-bytes", str(2 * MAX_REQUEST_BYTES)],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert f"--max-entry-bytes {2 * MAX_REQUEST_BYTES} is above MAX_REQUEST_BYTES" in proc.stderr
    assert not (tmp_path / "data").exists()  # refused before anything was opened


def test_partition_ownership_needs_the_jetstream_backend_and_a_meta_manager() -> None:
    nats = {"backend": "jetstream", "nats_url": "nats://127.0.0.1:4222"}
    assert JournalSettings(**nats, meta_address="127.0.0.1:7000").partition_ownership
    assert not JournalSettings(**nats).partition_ownership  # owns every partition, as one instance
    assert not JournalSettings(meta_address="127.0.0.1:7000").partition_ownership  # local files: one writer
    assert JournalSettings().partition_lease_ttl_ms == 1500
    with pytest.raises(ValidationError):
        JournalSettings(partition_lease_ttl_ms=100)
