"""A journal process shared by the tests of one module (restarting it per test costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.procs import ServiceProcess

JOURNAL = "vecraft.services.journal_service"


@pytest.fixture(scope="module")
def journal(tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[ServiceProcess]:
    """A ready journal with 2 data partitions; a module may add flags with ``JOURNAL_ARGS``."""
    base = tmp_path_factory.mktemp("journal")
    args = ["--data-dir", str(base / "data"), "--data-partitions", "2", "--log-level", "info",
            *getattr(request.module, "JOURNAL_ARGS", [])]
    proc = ServiceProcess(JOURNAL, args, base, ready_timeout=60).start()
    yield proc
    proc.stop()
