"""The journal service's endless loops: none may end unseen behind a READY probe.

The monitor (lags, metrics, back-pressure) is spawned ``forever=True``: one
that returns takes readiness and the process down like one that raises
(Service.spawn). A partition's writer task is the backend's own: one that
returns while the journal runs fails its partition (appends UNAVAILABLE,
readiness false) instead of leaving appends queued forever. The service runs
in this process on real files.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.waits import until
from vecraft.services.journal_service import main as journal_main
from vecraft.services.journal_service.journal import Journal
from vecraft.services.journal_service.settings import JournalSettings
from vecraft.services.journal_service.wal import LogWrite
from vecraft.services.journal_service.wal.local import LocalPartitionLog
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.common.service import BackgroundTaskFailed, ServiceState

pytestmark = pytest.mark.unit


async def _return(*_: Any, **__: Any) -> None:
    return None


@pytest.fixture(autouse=True)
async def _signal_handlers() -> AsyncIterator[None]:
    yield
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # installed by Service.run()
        loop.remove_signal_handler(sig)


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    await until(predicate, timeout)


def _service(tmp_path: Path) -> journal_main.JournalService:
    return journal_main.JournalService(JournalSettings(grpc_port=0, http_port=0, data_dir=tmp_path))


async def test_a_monitor_that_returns_fails_the_process(monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    monkeypatch.setattr(Journal, "monitor", _return)
    svc = _service(tmp_path)
    runner = asyncio.create_task(svc.run())
    try:
        await _until(lambda: svc.failure is not None or runner.done())
        assert svc.failure is not None and svc.failure.task == "monitor", svc.failure
        assert "meant to run until shutdown" in str(svc.failure) and not svc.ready
        with pytest.raises(BackgroundTaskFailed):
            await asyncio.wait_for(asyncio.shield(runner), 60)
        assert svc.state is ServiceState.STOPPED
    finally:
        if not runner.done():
            await svc.shutdown()
        await asyncio.gather(runner, return_exceptions=True)


async def test_a_partition_writer_that_returns_fails_its_partition(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Path) -> None:
    monkeypatch.setattr(LocalPartitionLog, "_write_loop", _return)
    svc = _service(tmp_path)
    runner = asyncio.create_task(svc.run())
    try:
        await _until(lambda: svc.state is not ServiceState.STARTING or runner.done())
        await _until(lambda: bool(svc.backend.failed_partitions()))
        assert "writer task ended" in svc.backend.failed_partitions()["system"]
        assert not svc.ready
        with pytest.raises(Unavailable, match=r"journal partition data-0 failed .*writer task ended"):
            await asyncio.wait_for(svc.backend.partition("data-0").append(LogWrite("r", b"x")), 30)
    finally:
        await svc.shutdown()
        await asyncio.gather(runner, return_exceptions=True)


async def test_the_loops_running_is_a_ready_journal(tmp_path: Path) -> None:
    """The control: nothing patched, the journal becomes ready, writes, and stops cleanly."""
    svc = _service(tmp_path)
    runner = asyncio.create_task(svc.run())
    await _until(lambda: svc.ready or runner.done())
    assert not runner.done() and svc.failure is None
    appended = await asyncio.wait_for(svc.backend.partition("data-0").append(LogWrite("r", b"x")), 30)
    assert appended.position.offset == 1 and not svc.backend.failed_partitions()
    await svc.shutdown()
    await asyncio.wait_for(runner, 60)
    assert svc.failure is None and not svc.backend.failed_partitions()
