"""Planning a local cluster: process shapes, flags, persisted ports, refused changes."""

from __future__ import annotations

import dataclasses
import json
import socket
from pathlib import Path

import pytest

from tests.support.procs import free_port
from vecraft.local import topology
from vecraft.local.ports import PortPair, allocate_ports
from vecraft.local.topology import ClusterParams, PlanConflict
from vecraft.shared.common.errors import Conflict

pytestmark = pytest.mark.unit

NOTHING: dict[str, object] = {}


def _flag(args: tuple[str, ...], flag: str) -> list[str]:
    """Values following ``flag`` up to the next flag."""
    i = args.index(flag) + 1
    out = []
    while i < len(args) and not args[i].startswith("--"):
        out.append(args[i])
        i += 1
    return out


def _fake_ports(params: ClusterParams) -> dict[str, PortPair]:
    names = [p.name for p in topology.process_names(params) if p.name != "gateway"]
    return {n: PortPair(grpc=30000 + 2 * i, http=30001 + 2 * i) for i, n in enumerate(names)}


def test_plan_shape_order_and_flags(tmp_path: Path) -> None:
    params = ClusterParams(shards=2, storage_nodes=4, query_nodes=2, replicas=2, data_partitions=3,
                           apply_delay_ms=50, host="0.0.0.0", backup_target="/backups",
                           distributed=True)
    plan = topology.plan_cluster(tmp_path, params, _fake_ports(params), config_file=Path("/c.toml"))
    names = [p.name for p in plan.services]
    assert names == ["journal", "meta", "storage-0", "storage-1", "storage-2", "storage-3",
                     "query-0", "query-1", "failover", "snapshot", "compactor", "gateway"]
    assert [g[0].role for g in plan.groups()] == [r for r in topology.START_ORDER
                                                  if r not in topology.CLUSTER_BINARIES]
    assert all(len({p.role for p in g}) == 1 for g in plan.groups())

    journal = plan.get("journal").grpc_address
    # 50 ms of simulated lag must not trip the journal's 1000 ms back-pressure limit by itself.
    assert _flag(plan.get("journal").args, "--backpressure-lag-ms") == ["1100"]
    meta = plan.get("meta")
    assert _flag(meta.args, "--journal-address") == [journal]
    snapshot = plan.get("snapshot")
    assert _flag(snapshot.args, "--target") == ["/backups"]
    assert _flag(snapshot.args, "--default-shards") == ["2"]
    assert _flag(snapshot.args, "--journal-address") == [journal]
    assert _flag(snapshot.args, "--meta-address") == [meta.grpc_address]
    assert _flag(plan.get("storage-0").args, "--backup-target") == ["/backups"]
    compactor = plan.get("compactor")
    assert _flag(compactor.args, "--journal-address") == [journal]
    assert _flag(compactor.args, "--backup-target") == ["/backups"]
    gateway = plan.get("gateway")
    assert "--auth" not in gateway.args and "--insecure" not in gateway.args
    secured = topology.plan_cluster(tmp_path, dataclasses.replace(params, auth=True), _fake_ports(params))
    assert _flag(secured.get("gateway").args, "--bootstrap-admin-key-file") == [str(tmp_path / "admin.key")]
    assert "--auth" in secured.get("gateway").args
    # No target, no snapshot service.
    plain = dataclasses.replace(params, backup_target="")
    assert "snapshot" not in [p.name for p in topology.process_names(plain)]
    assert _flag(meta.args, "--backend") == ["sqlite"]
    assert _flag(meta.args, "--default-shards") == ["2"] and _flag(meta.args, "--default-replicas") == ["2"]

    # Nodes 0 and 2 hold replica 0, nodes 1 and 3 replica 1; shard s on the group's node s % 2.
    assert [(p.shards, p.replica) for p in plan.services if p.role == "storage"] == [
        ((0,), 0), ((0,), 1), ((1,), 0), ((1,), 1)]
    s11 = plan.get("storage-3")
    assert s11.data_dir == tmp_path / "storage" / "node-3"
    assert _flag(s11.args, "--shards") == ["1"] and _flag(s11.args, "--replica") == ["1"]
    assert _flag(s11.args, "--apply-delay-ms") == ["50"]
    assert _flag(s11.args, "--data-partitions") == ["3"]
    assert _flag(s11.args, "--meta-address") == [meta.grpc_address]
    assert _flag(s11.args, "--config") == ["/c.toml"]

    q1 = plan.get("query-1")
    assert q1.shards == (1,) and q1.data_dir == tmp_path / "query" / "node-1"
    assert _flag(q1.args, "--shard") == ["1"]
    # Query nodes find the storage nodes in the meta manager's registry, as the gateway does.
    assert _flag(q1.args, "--meta-address") == [meta.grpc_address]
    assert not any(a.endswith("-addresses") for a in q1.args)
    failover = plan.get("failover")
    assert _flag(failover.args, "--meta-address") == [meta.grpc_address]
    assert _flag(failover.args, "--storage-replicas") == ["2"]
    assert _flag(failover.args, "--query-replicas") == ["1"]
    gw = plan.get("gateway")
    assert (gw.grpc_port, gw.http_port, gw.host) == (50051, 8000, "0.0.0.0")
    assert gw.http_address == "127.0.0.1:8000"  # a wildcard bind is reached on loopback
    assert _flag(gw.args, "--meta-address") == [meta.grpc_address]
    assert not any(a.endswith("-addresses") for a in gw.args)
    # Internal services never listen beyond loopback.
    assert all(_flag(p.args, "--host") == ["127.0.0.1"] for p in plan.services if p.role != "gateway")
    assert all(_flag(p.args, "--node-id") == [p.name] for p in plan.services)


def test_cluster_mode_adds_etcd_and_nats_and_points_meta_and_journal_at_them(tmp_path: Path) -> None:
    params = ClusterParams(shards=1, cluster=True)
    names = [p.name for p in topology.process_names(params) if p.name != "gateway"]
    ports = {n: PortPair(grpc=30000 + 3 * i, http=30001 + 3 * i, peer=30002 + 3 * i)
             for i, n in enumerate(names)}
    plan = topology.plan_cluster(tmp_path, params, ports, binaries={"etcd": "/bin/etcd", "nats": "/bin/nats"})
    assert [p.name for p in plan.services][:9] == [
        "etcd-0", "etcd-1", "etcd-2", "nats-0", "nats-1", "nats-2", "journal-0", "journal-1", "meta"]
    assert [g[0].role for g in plan.groups()] == [r for r in topology.START_ORDER if r != "snapshot"]
    etcd0, nats2 = plan.get("etcd-0"), plan.get("nats-2")
    assert etcd0.command("py")[0] == "/bin/etcd" and etcd0.data_dir == tmp_path / "etcd-0"
    assert _flag(etcd0.args, "--initial-cluster") == [",".join(
        f"etcd-{i}=http://127.0.0.1:{ports[f'etcd-{i}'].peer}" for i in range(3))]
    assert (etcd0.ready_path, etcd0.health_path) == ("/health", "/health")
    assert nats2.command("py") == ["/bin/nats", "-c", str(tmp_path / "nats-2" / "nats.conf"),
                                   "--name", "nats-2"]
    [(conf_path, conf)] = nats2.files
    assert conf_path == tmp_path / "nats-2" / "nats.conf" and "jetstream" in conf
    assert all(f"nats-route://127.0.0.1:{ports[f'nats-{i}'].peer}" in conf for i in range(2))
    meta, journal = plan.get("meta"), plan.get("journal-1")
    assert _flag(meta.args, "--backend") == ["etcd"]
    assert _flag(meta.args, "--etcd-endpoints") == [",".join(f"127.0.0.1:{ports[f'etcd-{i}'].grpc}"
                                                             for i in range(3))]
    assert _flag(journal.args, "--backend") == ["jetstream"]
    assert _flag(journal.args, "--nats-replicas") == ["3"]
    assert _flag(journal.args, "--nats-url") == [",".join(f"nats://127.0.0.1:{ports[f'nats-{i}'].grpc}"
                                                          for i in range(3))]
    # Two journal instances share the streams; partition ownership goes through the meta manager.
    assert _flag(journal.args, "--meta-address") == [meta.grpc_address]
    assert journal.data_dir == tmp_path / "journal" / "node-1"
    both = f"{plan.get('journal-0').grpc_address},{journal.grpc_address}"
    assert all(_flag(p.args, "--journal-address") == [both]
               for p in plan.services if p.role in ("meta", "storage", "query", "gateway"))


def test_cluster_mode_is_stored_and_cannot_be_switched(tmp_path: Path) -> None:
    plan = topology.prepare_plan(tmp_path, {"cluster": True, "shards": 1},
                                 binaries={"etcd": "/bin/etcd", "nats": "/bin/nats"})
    assert all(plan.ports[f"nats-{i}"].peer for i in range(3))
    again = topology.prepare_plan(tmp_path, NOTHING, binaries={"etcd": "/bin/etcd", "nats": "/bin/nats"})
    assert again.params.cluster and again.ports == plan.ports
    with pytest.raises(PlanConflict, match="--cluster"):
        topology.prepare_plan(tmp_path, {"cluster": False})


def test_plan_refuses_shared_ports(tmp_path: Path) -> None:
    params = ClusterParams(shards=1)
    ports = _fake_ports(params)
    with pytest.raises(ValueError, match="port 30000"):
        topology.plan_cluster(tmp_path, ClusterParams(shards=1, grpc_port=30000), ports)


def test_ports_are_persisted_and_reused(tmp_path: Path) -> None:
    first = topology.prepare_plan(tmp_path, {"shards": 2, "http_port": free_port(), "grpc_port": free_port()})
    stored = json.loads((tmp_path / "cluster.json").read_text())
    assert stored["params"]["shards"] == 2
    assert {p["name"] for p in stored["processes"]} == {p.name for p in first.services}

    ports = [port for p in first.services for port in (p.grpc_port, p.http_port)]
    assert len(ports) == len(set(ports))

    # No flags: everything comes from cluster.json.
    second = topology.prepare_plan(tmp_path, {"shards": None, "http_port": None})
    assert second.params == first.params
    assert second.services == first.services

    # Changing what may change keeps every internal port; more nodes get new ones.
    new_http = free_port()
    third = topology.prepare_plan(tmp_path, {"replicas": 2, "storage_nodes": 4, "http_port": new_http,
                                             "apply_delay_ms": 200})
    assert third.params.shards == 2 and third.params.http_port == new_http
    for p in first.services:
        if p.role != "gateway":
            assert third.get(p.name).grpc_port == p.grpc_port
    assert {"storage-2", "storage-3"} <= {p.name for p in third.services}
    # Back to two nodes: the other nodes' ports stay reserved for later.
    fourth = topology.prepare_plan(tmp_path, {"replicas": 1, "storage_nodes": 2})
    assert "storage-3" in fourth.ports and "storage-3" not in {p.name for p in fourth.services}


@pytest.mark.parametrize("flag", ["shards", "data_partitions"])
def test_changing_fixed_parameters_is_refused(tmp_path: Path, flag: str) -> None:
    topology.prepare_plan(tmp_path, {"shards": 2, "data_partitions": 2})
    before = (tmp_path / "cluster.json").read_text()
    with pytest.raises(PlanConflict) as info:
        topology.prepare_plan(tmp_path, {flag: 5})
    message = str(info.value)
    assert f"--{flag.replace('_', '-')} 2" in message and "not supported" in message
    assert isinstance(info.value, Conflict)
    assert (tmp_path / "cluster.json").read_text() == before
    # Repeating the stored value is fine.
    assert getattr(topology.prepare_plan(tmp_path, {flag: 2}).params, flag) == 2


def test_invalid_parameters() -> None:
    for bad in ({"shards": 0}, {"replicas": 0}, {"data_partitions": 0}, {"apply_delay_ms": -1},
                {"storage_nodes": 0}, {"query_nodes": 0}, {"replicas": 3}, {"query_replicas": 2},
                {"replicas": 3, "storage_nodes": 2}, {"query_replicas": 3, "query_nodes": 2},
                {"http_port": 70000}, {"http_port": 9000, "grpc_port": 9000}):
        with pytest.raises(ValueError):
            topology.resolve_params(None, bad)
    with pytest.raises(ValueError, match="unknown"):
        topology.resolve_params(None, {"shard": 3})


def test_unreadable_plan_is_reported(tmp_path: Path) -> None:
    (tmp_path / "cluster.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"cluster\.json"):
        topology.prepare_plan(tmp_path, NOTHING)
    (tmp_path / "cluster.json").write_text(json.dumps({"version": 99}))
    with pytest.raises(ValueError, match="version"):
        topology.load_plan(tmp_path)
    assert topology.load_plan(tmp_path / "nowhere") is None


def test_allocated_ports_are_free_and_avoid_taken() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        pairs = allocate_ports([f"p{i}" for i in range(20)], {taken})
    ports = [p for pair in pairs.values() for p in (pair.grpc, pair.http)]
    assert len(set(ports)) == 40 and taken not in ports
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_query_replicas_put_each_shard_on_that_many_query_nodes(tmp_path: Path) -> None:
    params = ClusterParams(shards=3, query_nodes=2, query_replicas=2)
    plan = topology.plan_cluster(tmp_path, params, _fake_ports(params))
    queries = [p for p in plan.services if p.role == "query"]
    assert [(p.name, p.shards) for p in queries] == [("query-0", (0, 1, 2)), ("query-1", (0, 1, 2))]
    assert len({p.data_dir for p in queries}) == 2
    assert _flag(plan.get("query-1").args, "--shard") == ["0", "1", "2"]


def test_query_nodes_change_on_restart_and_keep_ports(tmp_path: Path) -> None:
    first = topology.prepare_plan(tmp_path, {"shards": 2, "query_nodes": 2})
    port = first.get("query-1").grpc_port
    same = topology.prepare_plan(tmp_path, {"query_nodes": None})
    assert same.params.query_nodes == 2
    fewer = topology.prepare_plan(tmp_path, {"query_nodes": 1})
    assert [(p.name, p.shards) for p in fewer.services if p.role == "query"] == [("query-0", (0, 1))]
    again = topology.prepare_plan(tmp_path, {"query_nodes": 2})
    assert again.get("query-1").grpc_port == port


def test_simulated_lag_raises_the_back_pressure_limit_above_it(tmp_path: Path) -> None:
    assert topology.simulated_lag_limit_ms(0) == 1000
    assert topology.simulated_lag_limit_ms(1000) == 3000
    params = ClusterParams(shards=1)
    plan = topology.plan_cluster(tmp_path, params, _fake_ports(params))
    assert "--backpressure-lag-ms" not in plan.get("journal").args  # no simulated lag: journal default


def test_a_stored_internal_port_taken_by_another_program_is_replaced(tmp_path: Path) -> None:
    first = topology.prepare_plan(tmp_path, {"shards": 2, "http_port": free_port(), "grpc_port": free_port()})
    query = first.get("query-0")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as squatter:
        squatter.bind(("127.0.0.1", query.grpc_port))
        squatter.listen()
        second = topology.prepare_plan(tmp_path, {})
    moved = second.get("query-0")
    assert moved.grpc_port != query.grpc_port
    others = [p.name for p in first.services if p.name != "query-0"]
    assert all(second.get(n).grpc_port == first.get(n).grpc_port for n in others)
    # It listens on the new port (the gateway learns it from the registry when it registers).
    assert _flag(moved.args, "--grpc-port") == [str(moved.grpc_port)]
    assert topology.load_plan(tmp_path) == second


# ---- placement ---------------------------------------------------------------------------------

SHAPES = [(shards, nodes, replicas) for shards in (1, 2, 3, 5, 8, 64) for nodes in (1, 2, 3, 4, 5, 7)
          for replicas in (1, 2, 3) if replicas <= nodes]


@pytest.mark.parametrize(("shards", "nodes", "replicas"), SHAPES)
def test_placement_places_every_shard_replica_once_on_different_nodes(shards: int, nodes: int,
                                                                      replicas: int) -> None:
    placed = topology.place_shards(shards, nodes, replicas)
    slots = [(s, p.replica) for p in placed for s in p.shards]
    assert sorted(slots) == [(s, r) for s in range(shards) for r in range(replicas)]  # each exactly once
    for s in range(shards):
        holders = [p.node for p in placed if s in p.shards]
        assert len(holders) == len(set(holders)) == replicas  # replicas of a shard on different nodes
    assert all(p.shards and p.replica == p.node % replicas and 0 <= p.node < nodes for p in placed)
    assert [p.node for p in placed] == sorted({p.node for p in placed})
    # Balanced: nodes holding the same replica number differ by at most one shard; when the
    # nodes split evenly into the replica groups, all of them do.
    for r in range(replicas):
        loads = [len(p.shards) for p in placed if p.replica == r]
        assert max(loads) - min(loads) <= 1
    if nodes % replicas == 0:
        loads = [len(p.shards) for p in placed]
        assert max(loads) - min(loads) <= 1
    # Nothing is left out but nodes that would host nothing.
    assert len(placed) == min(nodes, sum(min(len(range(r, nodes, replicas)), shards)
                                         for r in range(replicas)))


def test_placement_of_the_documented_shapes() -> None:
    place = topology.place_shards
    assert [(p.node, p.replica, p.shards) for p in place(3, 2, 1)] == [(0, 0, (0, 2)), (1, 0, (1,))]
    assert [(p.node, p.replica, p.shards) for p in place(3, 4, 2)] == [
        (0, 0, (0, 2)), (1, 1, (0, 2)), (2, 0, (1,)), (3, 1, (1,))]
    # One shard, two nodes: the second would host nothing and is not planned.
    assert [(p.node, p.shards) for p in place(1, 2, 1)] == [(0, (0,))]
    with pytest.raises(ValueError):
        place(3, 1, 2)
    with pytest.raises(ValueError):
        place(0, 1, 1)


def test_default_shape_is_two_storage_nodes_and_one_query_node(tmp_path: Path) -> None:
    params = ClusterParams()
    plan = topology.plan_cluster(tmp_path, params, _fake_ports(params))
    assert [(p.name, p.shards, p.replica) for p in plan.services if p.role in ("storage", "query")] == [
        ("storage-0", (0, 2), 0), ("storage-1", (1,), 0), ("query-0", (0, 1, 2), 0)]
    assert _flag(plan.get("storage-0").args, "--shards") == ["0,2"]
    assert _flag(plan.get("query-0").args, "--shard") == ["0", "1", "2"]
    assert not any(a.endswith("-addresses") for p in plan.services for a in p.args)
    # journal, meta, 2 storage nodes, 1 query node, fail-over manager, compactor, gateway.
    assert len(plan.services) == 8


def test_replicas_above_the_node_count_are_refused_naming_the_flags(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"--replicas 3 with --storage-nodes 2.*--storage-nodes 3"):
        topology.prepare_plan(tmp_path, {"replicas": 3}, save=False)
    topology.prepare_plan(tmp_path, {"shards": 2})
    before = (tmp_path / "cluster.json").read_text()
    with pytest.raises(ValueError, match="query_replicas must be <= query_nodes"):
        topology.prepare_plan(tmp_path, {"query_replicas": 2})
    assert (tmp_path / "cluster.json").read_text() == before
    # Given together, they are fine.
    assert topology.prepare_plan(tmp_path, {"query_replicas": 2, "query_nodes": 2}).params.query_nodes == 2


def test_a_plan_of_the_layout_before_nodes_still_loads(tmp_path: Path) -> None:
    """cluster.json written when each shard replica was a process: no node counts, old names."""
    ports = {"journal": {"grpc": 31000, "http": 31001}, "meta": {"grpc": 31002, "http": 31003},
             "storage-0-r0": {"grpc": 31004, "http": 31005}, "storage-0-r1": {"grpc": 31006, "http": 31007},
             "storage-1-r0": {"grpc": 31008, "http": 31009}, "storage-1-r1": {"grpc": 31010, "http": 31011},
             "storage-2-r0": {"grpc": 31012, "http": 31013}, "storage-2-r1": {"grpc": 31014, "http": 31015},
             "query-0": {"grpc": 31016, "http": 31017}, "query-0-r1": {"grpc": 31018, "http": 31019}}
    params = {"host": "127.0.0.1", "http_port": free_port(), "grpc_port": free_port(), "shards": 3,
              "replicas": 3, "query_replicas": 2, "data_partitions": 1, "apply_delay_ms": 0, "cluster": False}
    (tmp_path / "cluster.json").write_text(json.dumps({"version": 1, "params": params, "ports": ports}))
    plan = topology.prepare_plan(tmp_path, NOTHING)
    # Enough nodes for the stored replica counts; the old names' ports are gone.
    assert (plan.params.storage_nodes, plan.params.query_nodes) == (3, 2)
    assert [p.name for p in plan.services if p.role == "storage"] == ["storage-0", "storage-1", "storage-2"]
    assert not any(topology.LEGACY_NAME.fullmatch(n) for n in plan.ports)
    assert plan.ports["journal"] == PortPair(grpc=31000, http=31001)
    assert plan.get("storage-1").data_dir == tmp_path / "storage" / "node-1"
    stored = json.loads((tmp_path / "cluster.json").read_text())
    assert stored["params"]["storage_nodes"] == 3
    assert {"name": "storage-1", "shards": [0, 1, 2], "replica": 1}.items() <= next(
        p for p in stored["processes"] if p["name"] == "storage-1").items()


def test_standalone_is_the_default_one_process_running_every_planned_service(tmp_path: Path) -> None:
    params = ClusterParams(shards=2, http_port=8100, grpc_port=8101)
    assert params.standalone
    plan = topology.plan_cluster(tmp_path, params, _fake_ports(params), log_level="debug")
    distributed = topology.plan_cluster(tmp_path, dataclasses.replace(params, distributed=True),
                                        _fake_ports(params), log_level="debug")
    # The same services with the same flags, ports and data directories (a data directory can
    # switch between the two layouts), but for the query nodes: standalone, they keep no cache of
    # their own and search the storage nodes of the same process.
    for mine, theirs in zip(plan.services, distributed.services, strict=True):
        if mine.role == "query":
            assert [a for a in mine.args if a != "--no-cache"] == list(theirs.args)
            assert "--no-cache" in mine.args and "--no-cache" not in theirs.args
        else:
            assert mine == theirs
    assert [p.name for p in distributed.processes] == [s.name for s in distributed.services]
    (process,) = plan.processes
    assert process.name == topology.STANDALONE_NAME and process.module == topology.STANDALONE_MODULE
    # Ready and probed where the gateway answers.
    gateway = plan.get("gateway")
    assert (process.http_port, process.grpc_port, process.host) == (8100, 8101, gateway.host)
    ((listing, text),) = process.files
    assert _flag(process.args, "--services") == [str(listing)]
    assert _flag(process.args, "--log-level") == ["debug"]
    entries = json.loads(text)
    assert [(e["name"], e["module"], e["group"], tuple(e["args"])) for e in entries] == \
        [(s.name, s.module, s.group, s.args) for s in plan.services]
    assert {plan.process_of(s.name) for s in plan.services} == {topology.STANDALONE_NAME}
    assert {distributed.process_of(s.name) for s in plan.services} == {s.name for s in plan.services}


def test_cluster_mode_is_always_distributed(tmp_path: Path) -> None:
    params = ClusterParams(cluster=True)
    assert not params.standalone
    plan = topology.plan_cluster(tmp_path, params, _fake_ports(params), binaries={"etcd": "e", "nats": "n"})
    assert plan.processes == plan.services
