"""Every endless background loop of a query processor and a storage node is spawned ``forever=True``.

A loop that returns while the service runs (a follower, head watch, applied-offset
reporter or meta registration that ended by itself) must take readiness and the
process with it, exactly like one that raises (Service.spawn). Each service runs
in this process over an in-memory journal; one loop at a time is made to return.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.query.fakes import FakeJournal
from vecraft.clients.meta import MetaClient
from vecraft.services.query_processor import main as query_main
from vecraft.services.storage_node import main as storage_main
from vecraft.services.storage_node.journal_replay.reporter import AppliedReporter
from vecraft.shared.common.service import BackgroundTaskFailed, Service, ServiceState
from vecraft.shared.replica.follower import HeadWatch, PartitionFollower

pytestmark = pytest.mark.unit


class _Journal(FakeJournal):
    async def close(self) -> None:
        pass


async def _park(*_: Any, **__: Any) -> None:
    await asyncio.Event().wait()


async def _return(*_: Any, **__: Any) -> None:
    return None


@pytest.fixture(autouse=True)
async def _signal_handlers() -> AsyncIterator[None]:
    yield
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # installed by Service.run()
        loop.remove_signal_handler(sig)


def _patch_loops(monkeypatch: pytest.MonkeyPatch, module: Any, loops: dict[str, tuple[Any, str]],
                 returning: str) -> None:
    """Every loop parks until cancelled, but ``returning``, which returns at once."""
    monkeypatch.setattr(module, "JournalClient", lambda *_a, **_k: _Journal())
    for name, (owner, attr) in loops.items():
        monkeypatch.setattr(owner, attr, _return if name == returning else _park)


async def _until(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _fails_with(svc: Service, task: str) -> None:
    runner = asyncio.create_task(svc.run())
    try:
        await _until(lambda: svc.failure is not None or runner.done())
        assert svc.failure is not None and svc.failure.task.startswith(task), svc.failure
        assert "meant to run until shutdown" in str(svc.failure) and not svc.ready
        with pytest.raises(BackgroundTaskFailed):
            await asyncio.wait_for(asyncio.shield(runner), 60)
        assert svc.state is ServiceState.STOPPED
    finally:
        if not runner.done():
            await svc.shutdown()
        await asyncio.gather(runner, return_exceptions=True)


QUERY_LOOPS = {"tail": (PartitionFollower, "run"), "head-watch": (HeadWatch, "run"),
               "meta-registration": (MetaClient, "keep_registered")}
STORAGE_LOOPS = {"follow": (PartitionFollower, "run"), "head-watch": (HeadWatch, "run"),
                 "report-applied": (AppliedReporter, "run"),
                 "meta-registration": (storage_main, "register_with_meta")}


@pytest.mark.parametrize("loop_name", sorted(QUERY_LOOPS))
async def test_a_query_processor_loop_that_returns_fails_the_process(
        loop_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _patch_loops(monkeypatch, query_main, QUERY_LOOPS, loop_name)
    svc = query_main.QueryProcessor(query_main.QueryProcessorSettings(
        grpc_port=0, http_port=0, shard=[0], data_dir=tmp_path, meta_address="127.0.0.1:1"))
    await _fails_with(svc, loop_name)


@pytest.mark.parametrize("loop_name", sorted(STORAGE_LOOPS))
async def test_a_storage_node_loop_that_returns_fails_the_process(
        loop_name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _patch_loops(monkeypatch, storage_main, STORAGE_LOOPS, loop_name)
    svc = storage_main.StorageNode(storage_main.StorageNodeSettings(
        grpc_port=0, http_port=0, shards=[0], data_dir=tmp_path, meta_address="127.0.0.1:1"))
    await _fails_with(svc, loop_name)


async def test_the_loops_parked_is_a_ready_process(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The control: with every loop running, both services become ready and stop cleanly."""
    for module, loops, svc in (
            (query_main, QUERY_LOOPS, lambda: query_main.QueryProcessor(query_main.QueryProcessorSettings(
                grpc_port=0, http_port=0, shard=[0], data_dir=tmp_path / "q", meta_address="127.0.0.1:1"))),
            (storage_main, STORAGE_LOOPS, lambda: storage_main.StorageNode(storage_main.StorageNodeSettings(
                grpc_port=0, http_port=0, shards=[0], data_dir=tmp_path / "s", meta_address="127.0.0.1:1")))):
        _patch_loops(monkeypatch, module, loops, returning="")
        service = svc()
        runner = asyncio.create_task(service.run())
        await _until(lambda s=service, r=runner: s.ready or r.done())  # type: ignore[misc]
        assert not runner.done() and service.failure is None
        await service.shutdown()
        await asyncio.wait_for(runner, 60)
        assert service.failure is None
