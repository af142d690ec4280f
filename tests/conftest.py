"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.support.procs import ServiceProcess

# Hypothesis, suite-wide (a test's own @settings still wins for what it sets):
# - no per-example deadline and no "too slow" health check: run time depends on the machine's
#   load, and either fails a correct test on a busy CI machine;
# - under CI, derandomized and without the example database: the same examples every run, so a
#   CI failure is reproducible and never depends on which random examples a run drew.
settings.register_profile("vecraft", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("vecraft-ci", parent=settings.get_profile("vecraft"), derandomize=True,
                          database=None, print_blob=True)
settings.load_profile("vecraft-ci" if os.environ.get("CI") else "vecraft")


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start real service processes; every one started is stopped at teardown.

    ``start_service("vecraft.services.journal_service", ["--data-dir", str(d)])``
    returns a ready :class:`ServiceProcess` on free loopback ports.
    """
    started: list[ServiceProcess] = []
    log_dir = tmp_path / "logs"
    log_dir.mkdir(exist_ok=True)

    def _start(module: str, args: list[str] | None = None, *, wait_ready: bool = True,
               **kwargs: object) -> ServiceProcess:
        proc = ServiceProcess(module, args or [], log_dir, **kwargs)  # type: ignore[arg-type]
        started.append(proc)
        return proc.start(wait_ready=wait_ready)

    yield _start
    for proc in reversed(started):
        proc.stop(timeout=5)
