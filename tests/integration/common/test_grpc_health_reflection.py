"""Every service process serves grpc.health.v1.Health and server reflection, as probes and grpcurl use them.

One small cluster (journal, meta manager, one storage node, one query processor,
gateway, fail-over manager; real processes on free loopback ports) answers
Health.Check for ``""`` and each of its service names with SERVING once its
/readyz says ready, and lists its services through reflection. A storage node
whose journal is not running yet shows the other side: NOT_SERVING (Check and
Watch) while /readyz is 503, SERVING on the same Watch once the journal comes
up, and NOT_SERVING then the end of the stream when SIGTERM starts its drain.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tests.integration.gateway.cluster import Cluster, run_cluster
from tests.support.procs import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FAILOVER = "vecraft.services.failover_manager"
STORAGE = "vecraft.services.storage_node"
JOURNAL = "vecraft.services.journal_service"
HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING

#: The services each kind of process exposes besides health and reflection.
SERVICES: dict[str, list[str]] = {
    "journal": ["vecraft.v1.JournalService"],
    "meta": ["vecraft.v1.MetaManagerService"],
    "storage": ["vecraft.v1.StorageNodeService"],
    "query": ["vecraft.v1.QueryProcessorService"],
    "gateway": ["vecraft.v1.CollectionService", "vecraft.v1.OperationService",
                "vecraft.v1.VectorSearchService", "vecraft.v1.VectorService"],
    "failover": [],
}


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceProcess]]:
    root = tmp_path_factory.mktemp("health")
    with run_cluster(root, shards=1, data_partitions=1) as cluster:
        failover = ServiceProcess(FAILOVER, ["--meta-address", cluster.meta.grpc_address,
                                             "--bootstrap-settle-ms", "100", "--tick-ms", "50"],
                                  root / "logs", name="failover", ready_timeout=90)
        try:
            failover.start()
            yield _by_kind(cluster, failover)
        finally:
            failover.stop(timeout=5)


def _by_kind(cluster: Cluster, failover: ServiceProcess) -> dict[str, ServiceProcess]:
    return {"journal": cluster.journal, "meta": cluster.meta, "storage": cluster.storage[0],
            "query": cluster.query[0], "gateway": cluster.gateway, "failover": failover}


def _check(channel: grpc.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return int(stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status)


def _readyz(proc: ServiceProcess) -> int:
    return httpx.get(f"http://{proc.http_address}/readyz", timeout=5).status_code


def _reflect(channel: grpc.Channel, *requests: reflection_pb2.ServerReflectionRequest,
             ) -> list[reflection_pb2.ServerReflectionResponse]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    return list(stub.ServerReflectionInfo(iter(requests), timeout=10))


@pytest.mark.parametrize("kind", list(SERVICES))
def test_every_service_kind_serves_health_and_reflection(processes: dict[str, ServiceProcess],
                                                         kind: str) -> None:
    proc = processes[kind]
    assert _readyz(proc) == 200
    with grpc.insecure_channel(proc.grpc_address) as channel:
        for name in ["", *SERVICES[kind]]:
            assert _check(channel, name) == SERVING, f"{kind}: {name!r}"
        with pytest.raises(grpc.RpcError) as err:
            _check(channel, "vecraft.v1.NoSuchService")
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""),
                                                          timeout=10)
        assert next(watch).status == SERVING
        watch.cancel()

        # What `grpcurl <addr> list` and `grpcurl <addr> describe <symbol>` ask.
        symbol = (SERVICES[kind] or [HEALTH])[0]
        listed, described = _reflect(
            channel, reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol))
    names = sorted(s.name for s in listed.list_services_response.service)
    assert names == sorted([*SERVICES[kind], HEALTH, REFLECTION])
    files = [descriptor_pb2.FileDescriptorProto.FromString(raw)
             for raw in described.file_descriptor_response.file_descriptor_proto]
    package, _, service = symbol.rpartition(".")
    declaring = [f for f in files if f.package == package and service in [s.name for s in f.service]]
    assert declaring, f"{symbol} not declared in {[f.name for f in files]}"
    assert declaring[0].service[[s.name for s in declaring[0].service].index(service)].method


def test_not_serving_until_ready_and_again_once_draining(
        start_service: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    """A storage node catches up from its journal before it is ready; here the journal is not up yet."""
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    journal = ServiceProcess(JOURNAL, ["--data-dir", str(tmp_path / "journal"), "--data-partitions", "1"],
                             logs)
    storage = start_service(STORAGE, ["--data-dir", str(tmp_path / "storage"), "--journal-address",
                                      journal.grpc_address, "--shards", "0", "--data-partitions", "1"],
                            wait_ready=False)
    try:
        with grpc.insecure_channel(storage.grpc_address) as channel:
            grpc.channel_ready_future(channel).result(timeout=60)
            assert _check(channel, "") == NOT_SERVING
            assert _check(channel, "vecraft.v1.StorageNodeService") == NOT_SERVING
            assert _readyz(storage) == 503
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="vecraft.v1.StorageNodeService"), timeout=120)
            assert next(watch).status == NOT_SERVING
            assert _readyz(storage) == 503, "the node became ready on its own: nothing was tested"

            journal.start()
            assert next(watch).status == SERVING  # the same stream, once the node caught up
            assert _readyz(storage) == 200
            assert _check(channel, "") == SERVING

            assert storage.proc is not None
            storage.proc.terminate()  # SIGTERM: the drain begins
            started = time.monotonic()
            assert next(watch).status == NOT_SERVING
            with pytest.raises(StopIteration):
                next(watch)  # the stream ends with OK: the drain does not wait for watchers
            assert watch.code() == grpc.StatusCode.OK
            assert storage.proc.wait(30) == 0
            assert time.monotonic() - started < 4.0, "the graceful stop waited for the open watch"
    finally:
        journal.stop(timeout=5)
