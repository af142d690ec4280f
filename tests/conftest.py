"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.procs import ServiceProcess


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
