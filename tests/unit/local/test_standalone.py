"""The standalone process's start-up failures: named, and the exit code says so."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vecraft.local.standalone import run
from vecraft.local.standalone_services import ServiceEntry, read_services, write_services

pytestmark = pytest.mark.unit


def test_the_services_file_round_trips(tmp_path: Path) -> None:
    entries = [ServiceEntry(name="journal", role="journal", module="vecraft.services.journal_service",
                            group=2, args=("--grpc-port", "1")),
               ServiceEntry(name="gateway", role="gateway", module="vecraft.services.api_gateway",
                            group=8, args=())]
    path = tmp_path / "services.json"
    path.write_text(write_services(entries))
    assert read_services(path) == entries


def test_a_service_that_cannot_be_built_fails_the_start_naming_it(caplog: pytest.LogCaptureFixture) -> None:
    # A gateway on every interface without --auth or --insecure is refused when it is built.
    gateway = ServiceEntry(name="gateway", role="gateway", module="vecraft.services.api_gateway", group=0,
                           args=("--host", "0.0.0.0", "--meta-address", "127.0.0.1:1",
                                 "--journal-address", "127.0.0.1:1"))
    assert asyncio.run(run([gateway], ready_timeout_s=1.0)) == 1
    assert "gateway cannot be built" in caplog.text and "--insecure" in caplog.text


def test_nothing_installed_fails_the_start(caplog: pytest.LogCaptureFixture) -> None:
    missing = ServiceEntry(name="ghost", role="ghost", module="vecraft.services.no_such_service", group=0,
                           args=())
    assert asyncio.run(run([missing], ready_timeout_s=1.0)) == 1
    assert "none of the services to run is installed" in caplog.text
