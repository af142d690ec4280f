"""Fixtures of the meta manager suite: real etcd, real journal, real meta manager processes.

One single-member etcd serves the whole package (tests are isolated by key
prefix); every test gets its own journal and meta manager processes. The
``backend`` fixture parametrizes a test over ``sqlite`` and ``etcd``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from tests.support.procs import ServiceProcess
from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.local.etcd import EtcdCluster

META = "vecraft.services.meta_manager"
JOURNAL = "vecraft.services.journal_service"


@pytest.fixture(scope="package")
def etcd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(tmp_path_factory.mktemp("etcd"), size=1).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", "etcd"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make_backend_args(backend: str, request: pytest.FixtureRequest, meta_dir: Path) -> list[str]:
    """Flags selecting the backend, with a fresh SQLite directory or etcd prefix."""
    if backend == "etcd":
        cluster: EtcdCluster = request.getfixturevalue("etcd")
        return ["--backend", "etcd", "--etcd-endpoints", ",".join(cluster.endpoints),
                "--etcd-prefix", f"/test-{uuid.uuid4().hex[:12]}", "--data-dir", str(meta_dir)]
    return ["--backend", "sqlite", "--data-dir", str(meta_dir)]


@pytest.fixture
def backend_args(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    return make_backend_args(backend, request, tmp_path / "meta")


@pytest.fixture(scope="module", params=["sqlite", "etcd"])
def shared_meta(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One journal + meta manager per backend for a whole module (tests isolate by tenant / ids)."""
    base = tmp_path_factory.mktemp(f"shared-{request.param}")
    logs = base / "logs"
    logs.mkdir()
    journal = ServiceProcess(JOURNAL, ["--data-dir", str(base / "journal"), "--data-partitions", "4"], logs)
    journal.start()
    meta = ServiceProcess(META, [*make_backend_args(str(request.param), request, base / "meta"),
                                 "--journal-address", journal.grpc_address, "--data-partitions", "4"], logs)
    try:
        yield meta.start()
    finally:
        meta.stop(timeout=5)
        journal.stop(timeout=5)


@pytest.fixture
def journal(start_service: Callable[..., ServiceProcess], tmp_path: Path) -> ServiceProcess:
    return start_service(JOURNAL, ["--data-dir", str(tmp_path / "journal"), "--data-partitions", "4"])


@pytest.fixture
def start_meta(start_service: Callable[..., ServiceProcess], journal: ServiceProcess,
               backend_args: list[str]) -> Callable[..., ServiceProcess]:
    """Start a meta manager on this test's backend and journal; extra flags may be passed."""

    def _start(*extra: str) -> ServiceProcess:
        return start_service(META, [*backend_args, "--journal-address", journal.grpc_address,
                                    "--data-partitions", "4", "--ddl-follow-interval-ms", "200", *extra])

    return _start


@pytest.fixture
def meta(start_meta: Callable[..., ServiceProcess]) -> ServiceProcess:
    return start_meta()


@pytest.fixture
async def client(meta: ServiceProcess) -> AsyncIterator[MetaClient]:
    c = MetaClient(meta.grpc_address)
    yield c
    await c.close()


@pytest.fixture
async def journal_client(journal: ServiceProcess) -> AsyncIterator[JournalClient]:
    c = JournalClient(journal.grpc_address)
    yield c
    await c.close()
