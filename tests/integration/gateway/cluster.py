"""A whole Vecraft cluster from its real processes, for the gateway's integration and chaos tests.

journal -> meta manager (SQLite) -> storage nodes and query processors ->
gateway, each a ``python -m vecraft.services.<name>`` process on free loopback
ports. Storage nodes and query processors are given the meta manager's address
and register themselves in its node registry; the gateway is given only the
journal's and the meta manager's addresses and routes from the registry. By
default there is one storage node and one query processor per shard;
``storage_shards`` / ``query_shards`` give other shapes (the shards of each
node). Independent processes start in parallel; the cluster is ready when
every process answers /readyz.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.support.procs import ServiceProcess

JOURNAL = "vecraft.services.journal_service"
META = "vecraft.services.meta_manager"
STORAGE = "vecraft.services.storage_node"
QUERY = "vecraft.services.query_processor"
GATEWAY = "vecraft.services.api_gateway"

# Generous: other engineers' suites share the machine's two cores.
READY_TIMEOUT_S = 90.0


@dataclass
class Cluster:
    shards: int
    data_partitions: int
    journal: ServiceProcess
    meta: ServiceProcess
    storage: list[ServiceProcess]
    query: list[ServiceProcess]
    gateway: ServiceProcess
    processes: list[ServiceProcess] = field(default_factory=list)
    #: Sent as ``Authorization: Bearer`` by :meth:`client` (a gateway started with ``--auth``).
    api_key: str | None = None

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    @property
    def url(self) -> str:
        return f"http://{self.gateway.http_address}"

    @property
    def grpc_address(self) -> str:
        return self.gateway.grpc_address

    def client(self, timeout: float = 60.0) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout, headers=self.auth_headers)

    def healthy(self) -> bool:
        """Every process alive and ready."""
        for proc in self.processes:
            if not proc.alive():
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{proc.http_address}/readyz", timeout=5).status_code == 200:
                    continue
            return False
        return True

    def logs(self) -> str:
        return "\n\n".join(f"== {p.name}\n{p.tail(30)}" for p in self.processes)


def _wait_all(procs: list[ServiceProcess]) -> None:
    for proc in procs:
        proc.wait_ready(READY_TIMEOUT_S)


@contextlib.contextmanager
def run_cluster(root: Path, *, shards: int = 3, data_partitions: int = 2,
                gateway_args: list[str] | None = None,
                storage_shards: Sequence[Sequence[int]] | None = None,
                query_shards: Sequence[Sequence[int]] | None = None,
                node_args: Sequence[str] = ()) -> Iterator[Cluster]:
    """Start a cluster under ``root``; stop every process on exit.

    ``storage_shards`` / ``query_shards``: the shards of each storage node / query processor
    (default: one node per shard); ``node_args``: extra flags of both (e.g. ``--node-ttl-ms``).
    """
    logs = root / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    started: list[ServiceProcess] = []
    storage_shards = storage_shards or [[s] for s in range(shards)]
    query_shards = query_shards or [[s] for s in range(shards)]

    def make(module: str, name: str, args: list[str]) -> ServiceProcess:
        proc = ServiceProcess(module, args, logs, name=name, ready_timeout=READY_TIMEOUT_S)
        started.append(proc)
        return proc

    def replica(n: int) -> int:
        """Replica number of storage node ``n``: how many earlier nodes host its first shard."""
        return sum(1 for other in storage_shards[:n] if storage_shards[n][0] in other)

    parts = ["--data-partitions", str(data_partitions)]
    try:
        journal = make(JOURNAL, "journal", ["--data-dir", str(root / "journal"), *parts]).start()
        meta = make(META, "meta", ["--backend", "sqlite", "--journal-address", journal.grpc_address,
                                   "--data-dir", str(root / "meta"), "--default-shards", str(shards),
                                   "--default-replicas", "1", *parts]).start()
        wiring = ["--journal-address", journal.grpc_address, "--meta-address", meta.grpc_address, *parts,
                  *node_args]
        storage = [make(STORAGE, f"storage-{n}", [
            "--shards", ",".join(map(str, hosted)), "--replica", str(replica(n)), "--node-id", f"storage-{n}",
            "--data-dir", str(root / f"storage-{n}"), *wiring])
            for n, hosted in enumerate(storage_shards)]
        query = [make(QUERY, f"query-{n}", [
            "--shard", *map(str, served), "--node-id", f"query-{n}", "--data-dir", str(root / f"query-{n}"),
            *wiring])
            for n, served in enumerate(query_shards)]
        for proc in storage + query:
            proc.start(wait_ready=False)
        _wait_all(storage + query)
        gateway = make(GATEWAY, "gateway", [
            "--journal-address", journal.grpc_address, "--meta-address", meta.grpc_address,
            "--data-dir", str(root / "gateway"), *parts, *(gateway_args or [])]).start()
        yield Cluster(shards=shards, data_partitions=data_partitions, journal=journal, meta=meta,
                      storage=storage, query=query, gateway=gateway, processes=list(started))
    finally:
        for proc in reversed(started):
            proc.stop(timeout=5)
