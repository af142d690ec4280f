"""The plan of a local Vecraft cluster: which processes `vecraft up` runs, with which flags.

A plan is computed by the pure function :func:`plan_cluster` from the
cluster's parameters (:class:`ClusterParams`) and one port pair per process.
Internal ports are chosen once, when a data directory is first used, and
stored with the parameters in ``DATA/cluster.json``; :func:`prepare_plan`
reads that file, so a second ``vecraft up`` on the same directory gets the
same ports, the same data directories and therefore the same cluster.

Parameters that are not given fall back to the stored ones (then to the
defaults). The shard count and the number of journal data partitions decide
where every record and every journal entry lives, so changing them on an
existing directory is refused with :class:`PlanConflict`; so is turning TLS on
or off for a cluster-mode directory (its etcd members store each other's peer
URLs, ``http://`` or ``https://``). The others (ports of the gateway, host, node
counts, replicas, query replicas, apply delay, TLS outside cluster mode) may
change between runs.

Processes are nodes, not shards: ``storage_nodes`` storage nodes
``storage-<n>`` and ``query_nodes`` query processors ``query-<m>``, each
hosting the shards :func:`place_shards` gives it (storage: ``--shards a,b
--replica r``; query: ``--shard a --shard b``): what they declare when they
register, which the fail-over manager adopts as the first placement map. The
gateway, and a query processor asking storage nodes while its cache is cold
(or instead of one, ``--no-cache``), route from the meta manager's registry:
no address flags between services. A node that would host nothing (more nodes
than shard replicas) is not planned.

A fail-over manager ``failover`` writes the first placement map from what the
nodes declare and later moves the shard replicas of nodes that died.

Start order, one group at a time: (cluster mode: etcd members, NATS servers,)
journal, meta manager, storage nodes, query processors, fail-over manager, gateway. Internal
services listen on 127.0.0.1 only; the gateway listens on ``host``.

Cluster mode (``ClusterParams.cluster``) adds a 3-member etcd cluster (the
meta manager's store) and a 3-node NATS JetStream cluster (the journal's
replicated log, streams with 3 replicas). They are programs, not Python
modules: their :class:`ProcessSpec` names an ``executable``, a readiness path
of their own and the configuration files to write before each start. With
``tls`` they too are mutual TLS with certificates of ``DATA/certs`` (``etcd``,
``nats``): etcd's client and peer URLs are https, NATS's clients and routes
have ``tls`` blocks, the meta manager reaches etcd at ``https://`` and the
journal NATS at ``tls://`` with their own certificates. Their readiness ports
(etcd's metrics URL, NATS's monitoring port) stay plain HTTP on loopback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vecraft.local.etcd import tls_args as etcd_tls_args
from vecraft.local.nats import nats_config
from vecraft.local.ports import LOOPBACK, PortPair, allocate_ports
from vecraft.local.standalone_services import ServiceEntry, write_services
from vecraft.shared.common.errors import Conflict
from vecraft.shared.common.tls import TlsFiles

CLUSTER_FILE = "cluster.json"
#: The process of standalone mode, its module, and the file listing the services it runs.
STANDALONE_NAME = "vecraft"
STANDALONE_MODULE = "vecraft.local.standalone"
STANDALONE_SERVICES_FILE = "standalone-services.json"
#: Where `vecraft up --tls` keeps the CA and the services' certificates (`vecraft certs init`).
CERTS_DIR = "certs"
#: Where `vecraft up --auth` has the gateway write the first admin key (mode 0600, written once).
ADMIN_KEY_FILE = "admin.key"
PLAN_VERSION = 1
LOGS_DIR = "logs"

#: role -> module run as ``python -m <module>``
ROLE_MODULES: dict[str, str] = {
    "journal": "vecraft.services.journal_service",
    "meta": "vecraft.services.meta_manager",
    "storage": "vecraft.services.storage_node",
    "query": "vecraft.services.query_processor",
    "failover": "vecraft.services.failover_manager",
    "snapshot": "vecraft.services.snapshot_service",
    "compactor": "vecraft.services.compactor",
    "gateway": "vecraft.services.api_gateway",
}
#: roles run from a program of their own in cluster mode -> the program's default name
CLUSTER_BINARIES: dict[str, str] = {"etcd": "etcd", "nats": "nats-server"}
#: members of the etcd cluster and of the NATS cluster in cluster mode
CLUSTER_SIZE = 3
#: journal instances in cluster mode: each partition is owned by one, the other takes over
JOURNAL_INSTANCES = 2
#: roles in start order; each is one start group
START_ORDER: tuple[str, ...] = ("etcd", "nats", "journal", "meta", "storage", "query", "failover", "snapshot",
                                "compactor", "gateway")
#: parameters that fix where data lives; they cannot change once a directory holds a cluster
FIXED_PARAMS: tuple[str, ...] = ("shards", "data_partitions", "cluster")
#: process names of the layout before nodes (one storage process per shard replica, one
#: query processor per shard and query replica): their stored ports are dropped
LEGACY_NAME = re.compile(r"storage-\d+-r\d+|query-\d+-r\d+")


class PlanConflict(Conflict):
    """The requested parameters contradict the plan stored in the data directory."""


@dataclass(frozen=True)
class ClusterParams:
    """What a local cluster looks like. Defaults are those of ``vecraft up``."""

    host: str = LOOPBACK
    http_port: int = 8000
    grpc_port: int = 50051
    shards: int = 3
    storage_nodes: int = 2
    query_nodes: int = 1
    replicas: int = 1
    query_replicas: int = 1
    data_partitions: int = 1
    apply_delay_ms: int = 0
    cluster: bool = False
    #: Where the snapshot service archives the journal and keeps base backups ("" = no service).
    backup_target: str = ""
    #: The compactor trims the journal without a backup target (docs/compactor.md).
    trim_without_backup: bool = False
    #: The gateway requires API keys; the first admin key is written to DATA/admin.key.
    auth: bool = False
    #: Let the gateway listen on a non-loopback --host without --auth.
    insecure: bool = False
    #: TLS with the certificates of DATA/certs (`vecraft certs init`): mutual TLS between the
    #: services, HTTPS and gRPC TLS at the gateway (docs/security.md#tls).
    tls: bool = False
    #: One process per service instead of every service in one process (standalone mode,
    #: :mod:`vecraft.local.standalone`). Cluster mode is always distributed.
    distributed: bool = False

    @property
    def standalone(self) -> bool:
        """Every service runs in one process."""
        return not (self.distributed or self.cluster)

    def __post_init__(self) -> None:
        check_ranges(dataclasses.asdict(self))
        check_shape(self)
        if self.http_port == self.grpc_port:
            raise ValueError(f"http_port and grpc_port must differ (both {self.http_port})")


def check_ranges(values: Mapping[str, Any]) -> None:
    """Each given parameter on its own is in range (``None`` = not given).

    Raises:
        ValueError: the first parameter out of range, named as in :class:`ClusterParams`.
    """
    for name in ("shards", "storage_nodes", "query_nodes", "replicas", "query_replicas", "data_partitions"):
        if values.get(name) is not None and values[name] < 1:
            raise ValueError(f"{name} must be >= 1, got {values[name]}")
    if values.get("apply_delay_ms") is not None and values["apply_delay_ms"] < 0:
        raise ValueError(f"apply_delay_ms must be >= 0, got {values['apply_delay_ms']}")
    for name in ("http_port", "grpc_port"):
        if values.get(name) is not None and not 1 <= values[name] <= 65535:
            raise ValueError(f"{name} must be in 1..65535, got {values[name]}")


def check_shape(params: ClusterParams) -> None:
    """The replicas of one shard fit on different nodes.

    Raises:
        ValueError: ``replicas`` > ``storage_nodes`` or ``query_replicas`` > ``query_nodes``,
            naming the flags.
    """
    for replicas, nodes, what in (("replicas", "storage_nodes", "storage"),
                                  ("query_replicas", "query_nodes", "query")):
        r, n = getattr(params, replicas), getattr(params, nodes)
        if r > n:
            raise ValueError(
                f"{replicas} must be <= {nodes} ({flag_text(replicas, r)} with {flag_text(nodes, n)}): "
                f"the {r} replicas of a shard run on {r} different {what} nodes; pass "
                f"{flag_text(nodes, r)} or more, or a lower --{replicas.replace('_', '-')}")


@dataclass(frozen=True)
class NodePlacement:
    """What one node hosts: replica ``replica`` of each shard in ``shards``."""

    node: int
    replica: int
    shards: tuple[int, ...]


def place_shards(shards: int, nodes: int, replicas: int) -> list[NodePlacement]:
    """Which node hosts which shard replicas. Pure.

    The nodes are split into ``replicas`` groups, node ``n`` in group ``n % replicas``;
    group ``r`` hosts replica ``r`` of every shard, shard ``s`` on the group's node
    ``s % len(group)``. So every node has one replica number, the replicas of a shard
    are on different nodes, and the nodes of a group host within one shard of each
    other (with ``nodes`` not a multiple of ``replicas`` the smaller groups' nodes host
    more). Nodes that would host nothing (a group larger than ``shards``) are left out;
    the others keep their number ``n``, so names do not move when the node count does
    not change.

    Raises:
        ValueError: a count below 1, or ``replicas`` > ``nodes``.
    """
    if min(shards, nodes, replicas) < 1:
        raise ValueError(f"shards, nodes and replicas must be >= 1, got {shards}, {nodes}, {replicas}")
    if replicas > nodes:
        raise ValueError(f"{replicas} replicas need at least {replicas} nodes, got {nodes}")
    placed: list[NodePlacement] = []
    for n in range(nodes):
        replica = n % replicas
        group_size = len(range(replica, nodes, replicas))
        hosted = tuple(s for s in range(shards) if s % group_size == n // replicas)
        if hosted:
            placed.append(NodePlacement(node=n, replica=replica, shards=hosted))
    return placed


def flag_text(key: str, value: Any) -> str:
    """A parameter as the flag that gives it: ``--shards 3``, ``--cluster``, ``no --cluster``."""
    flag = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return flag if value else f"no {flag}"
    return f"{flag} {value}"


@dataclass(frozen=True)
class ProcessSpec:
    """One child process of the plan.

    ``args`` is the complete argument list after ``-m module``, or after
    ``executable`` when the child is a program (etcd, nats-server; ``module``
    is then ""). ``files`` are written before every start. The supervisor waits
    for ``ready_path`` on the HTTP port; ``vecraft status`` asks ``health_path``.
    A storage or query node hosts ``shards`` (its replica ``replica`` of each).
    """

    name: str
    role: str
    module: str
    args: tuple[str, ...]
    host: str
    grpc_port: int
    http_port: int
    data_dir: Path
    group: int
    shards: tuple[int, ...] = ()
    replica: int | None = None
    executable: str | None = None
    peer_port: int | None = None
    ready_path: str = "/readyz"
    health_path: str = "/healthz"
    files: tuple[tuple[Path, str], ...] = ()
    #: Its HTTP port speaks TLS with a certificate this CA signed (None: plain HTTP).
    tls_ca: Path | None = None

    @property
    def http_scheme(self) -> str:
        return "http" if self.tls_ca is None else "https"

    @property
    def connect_host(self) -> str:
        """Where to reach it: a wildcard bind address is reached on loopback."""
        return LOOPBACK if self.host in ("0.0.0.0", "::", "") else self.host

    @property
    def grpc_address(self) -> str:
        return f"{self.connect_host}:{self.grpc_port}"

    @property
    def http_address(self) -> str:
        return f"{self.connect_host}:{self.http_port}"

    def command(self, python: str) -> list[str]:
        if self.executable is not None:
            return [self.executable, *self.args]
        return [python, "-m", self.module, *self.args]


@dataclass(frozen=True)
class ClusterPlan:
    """The supervised ``processes`` and the ``services`` they run.

    Distributed, each service is a process (the two are the same). Standalone,
    one process :data:`STANDALONE_NAME` runs every service (each still with its
    ports and data directory as planned).
    """

    data_dir: Path
    params: ClusterParams
    processes: tuple[ProcessSpec, ...]
    ports: Mapping[str, PortPair] = field(default_factory=dict)
    services: tuple[ProcessSpec, ...] = ()

    def process_of(self, service: str) -> str:
        """Name of the process that runs ``service``."""
        return STANDALONE_NAME if self.params.standalone else service

    def get(self, name: str) -> ProcessSpec:
        """The service ``name``."""
        for spec in self.services:
            if spec.name == name:
                return spec
        raise KeyError(name)

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / LOGS_DIR

    def http_verify(self) -> ssl.SSLContext | bool:
        """``verify=`` of an httpx client probing the processes: the cluster's CA with --tls."""
        ca = next((s.tls_ca for s in self.processes if s.tls_ca is not None), None)
        if ca is None or not ca.is_file():
            return True  # no TLS; or no CA yet, so probes find the processes down, never trusted
        return ssl.create_default_context(cafile=str(ca))

    def log_path(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def groups(self) -> list[tuple[ProcessSpec, ...]]:
        """Processes grouped by start order; a group starts after the previous one is ready."""
        by_group: dict[int, list[ProcessSpec]] = {}
        for spec in self.processes:
            by_group.setdefault(spec.group, []).append(spec)
        return [tuple(by_group[g]) for g in sorted(by_group)]



@dataclass(frozen=True)
class PlannedProcess:
    """Name, role and hosted shards of one process, before ports and flags."""

    name: str
    role: str
    shards: tuple[int, ...] = ()
    replica: int | None = None
    node: int | None = None


def process_names(params: ClusterParams) -> list[PlannedProcess]:
    """Every process of ``params``, in start order. Pure."""
    names: list[PlannedProcess] = []
    if params.cluster:
        names += [PlannedProcess(f"{role}-{i}", role)
                  for role in CLUSTER_BINARIES for i in range(CLUSTER_SIZE)]
    if params.cluster:
        names += [PlannedProcess(f"journal-{i}", "journal", node=i) for i in range(JOURNAL_INSTANCES)]
    else:
        names.append(PlannedProcess("journal", "journal"))
    names.append(PlannedProcess("meta", "meta"))
    names += [PlannedProcess(f"storage-{p.node}", "storage", p.shards, p.replica, p.node)
              for p in place_shards(params.shards, params.storage_nodes, params.replicas)]
    names += [PlannedProcess(f"query-{p.node}", "query", p.shards, p.replica, p.node)
              for p in place_shards(params.shards, params.query_nodes, params.query_replicas)]
    names.append(PlannedProcess("failover", "failover"))
    if params.backup_target:
        names.append(PlannedProcess("snapshot", "snapshot"))
    names.append(PlannedProcess("compactor", "compactor"))
    names.append(PlannedProcess("gateway", "gateway"))
    return names


def cluster_tls(data_dir: Path, role: str) -> TlsFiles:
    """The certificate of ``role`` in ``DATA/certs`` and the CA that signed it (``vecraft up --tls``)."""
    certs = data_dir / CERTS_DIR
    return TlsFiles(cert=certs / f"{role}.pem", key=certs / f"{role}.key", ca=certs / "ca.pem")


def _etcd_spec(name: str, data_dir: Path, port_of: Mapping[str, PortPair], executable: str,
               members: list[str], tls: TlsFiles | None) -> ProcessSpec:
    """An etcd member: client URL on ``grpc``, /health (metrics URL) on ``http``, peers on ``peer``.

    With ``tls`` the client and peer URLs are https and mutual TLS (:func:`etcd_tls_args`);
    the metrics URL stays plain HTTP on loopback: the supervisor's probe presents no certificate.
    """
    pair = port_of[name]
    scheme = "http" if tls is None else "https"
    client, peer = f"{scheme}://{LOOPBACK}:{pair.grpc}", f"{scheme}://{LOOPBACK}:{pair.peer}"
    initial = ",".join(f"{m}={scheme}://{LOOPBACK}:{port_of[m].peer}" for m in members)
    own_dir = data_dir / name
    # The initial-cluster flags only matter on the first start; etcd ignores them once its
    # data directory holds a member, so the same command line also resumes the cluster.
    args = ("--name", name, "--data-dir", str(own_dir), "--listen-client-urls", client,
            "--advertise-client-urls", client, "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer, "--initial-cluster", initial,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", f"vecraft-{port_of[members[0]].peer}",
            "--listen-metrics-urls", f"http://{LOOPBACK}:{pair.http}", "--log-level", "warn",
            *(etcd_tls_args(tls) if tls is not None else ()))
    return ProcessSpec(name=name, role="etcd", module="", args=args, host=LOOPBACK, grpc_port=pair.grpc,
                       http_port=pair.http, data_dir=own_dir, group=START_ORDER.index("etcd"),
                       executable=executable, peer_port=pair.peer, ready_path="/health",
                       health_path="/health")


def _nats_spec(name: str, data_dir: Path, port_of: Mapping[str, PortPair], executable: str,
               members: list[str], tls: TlsFiles | None) -> ProcessSpec:
    """A NATS JetStream server: clients on ``grpc``, monitoring on ``http``, routes on ``peer``.

    With ``tls`` clients and routes are mutual TLS (``tls`` blocks, :func:`nats_config`); the
    monitoring port stays plain HTTP on loopback: the supervisor's probe presents no certificate.
    """
    pair = port_of[name]
    own_dir = data_dir / name
    config = own_dir / "nats.conf"
    text = nats_config(name=name, client_port=pair.grpc, monitor_port=pair.http,
                       store_dir=own_dir / "jetstream", cluster_port=pair.peer,
                       routes=[port_of[m].peer for m in members], tls=tls)
    # /healthz is 200 once JetStream is current: the cluster has elected its meta leader.
    return ProcessSpec(name=name, role="nats", module="", args=("-c", str(config), "--name", name),
                       host=LOOPBACK, grpc_port=pair.grpc, http_port=pair.http, data_dir=own_dir,
                       group=START_ORDER.index("nats"), executable=executable, peer_port=pair.peer,
                       ready_path="/healthz", health_path="/healthz", files=((config, text),))


def simulated_lag_limit_ms(apply_delay_ms: int) -> int:
    """The journal's back-pressure lag limit under ``--apply-delay-ms``: well above the simulated lag."""
    return max(1000, 2 * apply_delay_ms + 1000)


def plan_cluster(data_dir: Path, params: ClusterParams, ports: Mapping[str, PortPair], *,
                 config_file: Path | None = None, log_level: str | None = None,
                 modules: Mapping[str, str] | None = None,
                 binaries: Mapping[str, str] | None = None) -> ClusterPlan:
    """The processes of a local cluster. Pure: no file or network access.

    Args:
        data_dir: the cluster's directory; every child gets a directory below it.
        params: cluster shape and the gateway's public ports.
        ports: port pair of every internal process by name (the gateway's come from ``params``).
        config_file: passed to every child as ``--config`` (each reads its own section).
        log_level: passed to every child as ``--log-level`` when given.
        modules: role -> module overrides (tests run stand-ins for the real services).
        binaries: role -> program path for etcd and nats (default: found on PATH).

    Raises:
        KeyError: ``ports`` lacks an internal process.
        ValueError: two processes would share a port (e.g. a gateway port an internal one has).
    """
    mods = {**ROLE_MODULES, **(modules or {})}
    programs = {**CLUSTER_BINARIES, **(binaries or {})}
    shape = process_names(params)
    port_of = dict(ports)
    port_of["gateway"] = PortPair(grpc=params.grpc_port, http=params.http_port)
    owner: dict[int, str] = {}
    for planned in shape:
        name = planned.name
        for port in (port_of[name].grpc, port_of[name].http, port_of[name].peer):
            if port == 0:
                continue
            if port in owner:
                raise ValueError(f"port {port} is planned for both {owner[port]} and {name}")
            owner[port] = name
    addr = {p.name: f"{LOOPBACK}:{port_of[p.name].grpc}" for p in shape}
    # Every journal instance: clients find each partition's owner among them.
    journal, meta = ",".join(addr[p.name] for p in shape if p.role == "journal"), addr["meta"]
    members = {role: [p.name for p in shape if p.role == role] for role in CLUSTER_BINARIES}
    journal_backend: list[str] = []  # the journal's default backend: local files
    meta_backend = ["--backend", "sqlite"]
    if params.cluster:
        # With --tls: NATS at tls:// and etcd at https://, both mutual TLS; the journal and the meta
        # manager present their own certificates (--tls-cert/--tls-key below).
        nats_scheme, etcd_scheme = ("tls://", "https://") if params.tls else ("nats://", "")
        journal_backend = ["--backend", "jetstream", "--nats-replicas", str(CLUSTER_SIZE), "--nats-url",
                           ",".join(f"{nats_scheme}{LOOPBACK}:{port_of[n].grpc}" for n in members["nats"])]
        meta_backend = ["--backend", "etcd", "--etcd-endpoints",
                        ",".join(f"{etcd_scheme}{LOOPBACK}:{port_of[n].grpc}" for n in members["etcd"])]
    partitions = ["--data-partitions", str(params.data_partitions)]
    delay = ["--apply-delay-ms", str(params.apply_delay_ms)]
    common_tail: list[str] = []
    if config_file is not None:
        common_tail += ["--config", str(config_file)]
    if log_level is not None:
        common_tail += ["--log-level", log_level]

    processes: list[ProcessSpec] = []
    for planned in shape:
        name, role = planned.name, planned.role
        if role == "etcd":
            processes.append(_etcd_spec(name, data_dir, port_of, programs["etcd"], members["etcd"],
                                        cluster_tls(data_dir, role) if params.tls else None))
            continue
        if role == "nats":
            processes.append(_nats_spec(name, data_dir, port_of, programs["nats"], members["nats"],
                                        cluster_tls(data_dir, role) if params.tls else None))
            continue
        if role == "journal":
            own_dir, extra = data_dir / "journal", [*journal_backend, *partitions]
            if params.cluster:
                # Several instances share the JetStream streams; partition ownership goes through
                # the meta manager's leases (docs/journal.md#fail-over-cluster-mode).
                own_dir = data_dir / "journal" / f"node-{planned.node}"
                extra += ["--meta-address", meta]
            if params.apply_delay_ms:
                # The simulated lag is intended: raise the lag limit above it, or the
                # delay alone would put every partition into back-pressure.
                extra += ["--backpressure-lag-ms", str(simulated_lag_limit_ms(params.apply_delay_ms))]
        elif role == "meta":
            own_dir = data_dir / "meta"
            extra = [*meta_backend, "--journal-address", journal, *partitions,
                     "--default-shards", str(params.shards), "--default-replicas", str(params.replicas)]
        elif role == "storage":
            own_dir = data_dir / "storage" / f"node-{planned.node}"
            extra = ["--shards", ",".join(map(str, planned.shards)), "--replica", str(planned.replica),
                     "--journal-address", journal, "--meta-address", meta, *partitions, *delay]
            if params.backup_target:
                # A replica placed here without files starts from its newest backed-up copy.
                extra += ["--backup-target", params.backup_target]
        elif role == "query":
            own_dir = data_dir / "query" / f"node-{planned.node}"
            extra = ["--shard", *map(str, planned.shards), "--journal-address", journal,
                     "--meta-address", meta, *partitions, *delay]
            if params.standalone:
                # The storage nodes run in the same process: search their indexes instead of
                # building a second copy of every shard (docs/operations.md#standalone-and-distributed).
                extra.append("--no-cache")
        elif role == "failover":
            # Replica counts as planned: the first placement map keeps what the nodes were given.
            own_dir = data_dir / "failover"
            extra = ["--meta-address", meta, "--storage-replicas", str(params.replicas),
                     "--query-replicas", str(params.query_replicas)]
        elif role == "snapshot":
            own_dir = data_dir / "snapshot"
            extra = ["--journal-address", journal, "--meta-address", meta, "--target", params.backup_target,
                     "--default-shards", str(params.shards)]
        elif role == "compactor":
            own_dir = data_dir / "compactor"
            extra = ["--journal-address", journal]
            if params.backup_target:
                # Only archived entries may be trimmed: a restore replays the archive.
                extra += ["--backup-target", params.backup_target]
            elif params.trim_without_backup:
                extra += ["--trim-without-backup"]
        else:
            own_dir = data_dir / "gateway"
            # Routes come from the meta manager's registry, not from flags.
            extra = ["--journal-address", journal, "--meta-address", meta, *partitions]
            if params.auth:
                extra += ["--auth", "--bootstrap-admin-key-file", str(data_dir / ADMIN_KEY_FILE)]
            if params.insecure:
                extra += ["--insecure"]
        host = params.host if role == "gateway" else LOOPBACK
        pair = port_of[name]
        tls_ca = None
        if params.tls:
            # Each service its own certificate; the gateway's public side asks clients for none.
            files = cluster_tls(data_dir, role)
            tls_ca = files.ca
            extra += ["--tls-cert", str(files.cert), "--tls-key", str(files.key), "--tls-ca", str(tls_ca)]
        args = ("--grpc-port", str(pair.grpc), "--http-port", str(pair.http), "--host", host,
                "--node-id", name, "--data-dir", str(own_dir), *extra, *common_tail)
        processes.append(ProcessSpec(name=name, role=role, module=mods[role], args=args, host=host,
                                     grpc_port=pair.grpc, http_port=pair.http, data_dir=own_dir,
                                     group=START_ORDER.index(role), shards=planned.shards,
                                     replica=planned.replica, tls_ca=tls_ca))
    if params.standalone:
        return ClusterPlan(data_dir=data_dir, params=params, ports=dict(ports), services=tuple(processes),
                           processes=(_standalone_spec(data_dir, processes, log_level),))
    return ClusterPlan(data_dir=data_dir, params=params, processes=tuple(processes), ports=dict(ports),
                       services=tuple(processes))


def _standalone_spec(data_dir: Path, services: list[ProcessSpec], log_level: str | None) -> ProcessSpec:
    """The one process of standalone mode: it runs ``services`` as listed in a file written before each
    start; it is ready, and answers probes, on the gateway's ports."""
    listing = data_dir / STANDALONE_SERVICES_FILE
    text = write_services([ServiceEntry(name=s.name, role=s.role, module=s.module, group=s.group, args=s.args)
                           for s in services])
    gateway = next(s for s in services if s.role == "gateway")
    args = ["--services", str(listing)]
    if log_level is not None:
        args += ["--log-level", log_level]
    return ProcessSpec(name=STANDALONE_NAME, role="standalone", module=STANDALONE_MODULE, args=tuple(args),
                       host=gateway.host, grpc_port=gateway.grpc_port, http_port=gateway.http_port,
                       data_dir=data_dir, group=0, files=((listing, text),), tls_ca=gateway.tls_ca)


def resolve_params(stored: ClusterParams | None, requested: Mapping[str, Any], *,
                   data_dir: Path | None = None) -> ClusterParams:
    """Merge requested parameters (``None`` = not given) over the stored ones, or the defaults.

    Raises:
        PlanConflict: a parameter in :data:`FIXED_PARAMS` differs from the stored plan.
        ValueError: an unknown or invalid parameter.
    """
    known = {f.name for f in dataclasses.fields(ClusterParams)}
    unknown = set(requested) - known
    if unknown:
        raise ValueError(f"unknown cluster parameters: {sorted(unknown)}")
    given = {k: v for k, v in requested.items() if v is not None}
    # A value out of range is reported as such, before any comparison with the stored plan.
    check_ranges(given)
    if stored is None:
        return ClusterParams(**given)
    for key in FIXED_PARAMS:
        if key in given and given[key] != getattr(stored, key):
            flag = "--" + key.replace("_", "-")
            where = str(data_dir) if data_dir is not None else "the data directory"
            omit = f"omit {flag} and --no-{flag[2:]}" if isinstance(given[key], bool) else f"omit {flag}"
            raise PlanConflict(
                f"{where} holds a cluster planned with {flag_text(key, getattr(stored, key))}, "
                f"but {flag_text(key, given[key])} was requested. Changing the shard count, the number of "
                f"journal data partitions or the mode (--cluster) of existing data is not supported: "
                f"{omit} to use the stored value, or choose a new --data-dir.",
                details={"parameter": key, "stored": getattr(stored, key), "requested": given[key]})
    if stored.cluster and given.get("tls", stored.tls) != stored.tls:
        # etcd members keep each other's peer URLs in their data: members restarted with https
        # peer URLs would still dial the others at http:// (or the reverse) and never elect a leader.
        where = str(data_dir) if data_dir is not None else "the data directory"
        raise PlanConflict(
            f"{where} holds a cluster-mode cluster planned with {flag_text('tls', stored.tls)}, but "
            f"{flag_text('tls', given['tls'])} was requested. Its etcd members store each other's peer "
            f"URLs ({'https' if stored.tls else 'http'}://), so TLS cannot be turned "
            f"{'off' if stored.tls else 'on'} for existing cluster-mode data: omit --tls and --no-tls to "
            f"use the stored value, or choose a new --data-dir.",
            details={"parameter": "tls", "stored": stored.tls, "requested": given["tls"]})
    return dataclasses.replace(stored, **given)


def load_stored(data_dir: Path) -> tuple[ClusterParams, dict[str, PortPair]] | None:
    """The parameters and ports stored in ``DATA/cluster.json``, or None if there is none.

    Raises:
        ValueError: the file exists but is not a plan this version understands.
    """
    path = data_dir / CLUSTER_FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from exc
    if raw.get("version") != PLAN_VERSION:
        raise ValueError(f"{path} has plan version {raw.get('version')!r}; this vecraft reads "
                         f"version {PLAN_VERSION}")
    values = dict(raw["params"])
    # A plan of the layout before nodes has no node counts: enough nodes for its replicas.
    values.setdefault("storage_nodes", max(ClusterParams.storage_nodes, values.get("replicas", 1)))
    values.setdefault("query_nodes", max(ClusterParams.query_nodes, values.get("query_replicas", 1)))
    params = ClusterParams(**values)
    ports = {name: PortPair(**pair) for name, pair in raw["ports"].items()}
    return params, ports


def write_json_atomic(path: Path, data: Any) -> None:
    """Replace ``path`` with ``data`` as JSON; readers never see a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def save_plan(plan: ClusterPlan) -> None:
    """Write ``DATA/cluster.json``: parameters and ports (read back), services and the process running
    each (for people)."""
    plan.data_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(plan.data_dir / CLUSTER_FILE, {
        "version": PLAN_VERSION,
        "params": dataclasses.asdict(plan.params),
        "ports": {name: dataclasses.asdict(pair) for name, pair in sorted(plan.ports.items())},
        "processes": [{"name": p.name, "role": p.role, "shards": list(p.shards), "replica": p.replica,
                       "module": p.module, "grpc_address": p.grpc_address,
                       "http_address": p.http_address, "data_dir": str(p.data_dir),
                       "process": plan.process_of(p.name),
                       "log": str(plan.log_path(plan.process_of(p.name)))} for p in plan.services],
    })


def prepare_plan(data_dir: Path, requested: Mapping[str, Any], *, config_file: Path | None = None,
                 log_level: str | None = None, modules: Mapping[str, str] | None = None,
                 binaries: Mapping[str, str] | None = None, save: bool = True) -> ClusterPlan:
    """Load or create the plan of ``data_dir``, allocate ports for new processes, store it.

    ``modules`` and ``binaries`` are passed to :func:`plan_cluster`. With
    ``save=False`` nothing is written (the directory is not even created):
    ``vecraft up`` stores the plan with :func:`save_plan` only once the cluster
    has started, so a failed start leaves the previous plan in place.

    Raises:
        PlanConflict: see :func:`resolve_params`.
        ValueError: invalid parameters or an unreadable ``cluster.json``.
    """
    data_dir = data_dir.resolve()
    stored = load_stored(data_dir)
    params = resolve_params(stored[0] if stored else None, requested, data_dir=data_dir)
    # Ports of processes no longer planned (fewer nodes) are kept for when they come back;
    # those of the one-process-per-shard-replica layout never come back.
    ports = {name: pair for name, pair in (stored[1] if stored else {}).items()
             if not LEGACY_NAME.fullmatch(name)}
    shape = process_names(params)
    # A stored port of one of our own services that another program took meanwhile is
    # replaced: every peer learns the addresses from this plan at start, so nothing else
    # remembers it. etcd and NATS keep theirs (their members store each other's URLs).
    for planned in shape:
        name = planned.name
        if name in ports and name != "gateway" and planned.role not in CLUSTER_BINARIES \
                and any(_port_taken(p) for p in (ports[name].grpc, ports[name].http)):
            del ports[name]
    missing = [p.name for p in shape if p.name != "gateway" and p.name not in ports]
    taken = {p for pair in ports.values() for p in (pair.grpc, pair.http, pair.peer) if p}
    ports.update(allocate_ports(missing, taken | {params.http_port, params.grpc_port},
                                with_peer=[p.name for p in shape if p.role in CLUSTER_BINARIES]))
    plan = plan_cluster(data_dir, params, ports, config_file=config_file, log_level=log_level,
                        modules=modules, binaries=binaries)
    if save:
        save_plan(plan)
    return plan


def _port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def load_plan(data_dir: Path) -> ClusterPlan | None:
    """The stored plan of ``data_dir`` (for ``vecraft status``), or None if there is none."""
    data_dir = data_dir.resolve()
    stored = load_stored(data_dir)
    if stored is None:
        return None
    params, ports = stored
    return plan_cluster(data_dir, params, ports)
