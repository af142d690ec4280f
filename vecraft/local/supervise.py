"""`vecraft up`'s supervising process: the program `vecraft up` becomes once the cluster is planned.

`vecraft up` parses its settings (pydantic-settings and their sources), plans
the cluster, creates what must exist before anything starts (the data
directory's lock, TLS certificates) and then replaces itself (exec, same pid,
same terminal) with ``python -m vecraft.local.supervise``, which imports only
what supervising needs: no pydantic, no settings machinery, no CLI. The cluster
then costs ~30 MiB less than the supervising process it had before (measured
in docs/performance.md), for as long as it runs.

What crosses the exec: the plan's inputs in ``DATA/launch.json`` (a plan is a
pure function of them, :func:`~vecraft.local.topology.plan_cluster`, so the
supervisor runs exactly the plan `vecraft up` checked) and the lock's open
descriptor (a flock belongs to the open file, so the lock is never released in
between). The exit code is the supervisor's.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from vecraft.local.ports import PortPair
from vecraft.local.supervisor import ChildState, ClusterLock, Supervisor
from vecraft.local.topology import (
    ADMIN_KEY_FILE,
    CERTS_DIR,
    CLUSTER_SIZE,
    ClusterParams,
    ClusterPlan,
    plan_cluster,
    save_plan,
    write_json_atomic,
)

LAUNCH_FILE = "launch.json"
#: How `vecraft up` logs, before and after the exec.
LOG_FORMAT = "%(asctime)s vecraft up: %(message)s"


@dataclass(frozen=True)
class Launch:
    """The inputs of the plan `vecraft up` made, and how to supervise it."""

    data_dir: Path
    params: ClusterParams
    ports: Mapping[str, PortPair]
    config_file: Path | None = None
    log_level: str | None = None
    modules: Mapping[str, str] | None = None
    binaries: Mapping[str, str] | None = None
    ready_timeout: float = 120.0

    @classmethod
    def of(cls, plan: ClusterPlan, *, config_file: Path | None, log_level: str | None,
           modules: Mapping[str, str] | None, binaries: Mapping[str, str] | None,
           ready_timeout: float) -> Launch:
        return cls(plan.data_dir, plan.params, dict(plan.ports), config_file, log_level,
                   dict(modules) if modules else None, dict(binaries) if binaries else None, ready_timeout)

    def plan(self) -> ClusterPlan:
        return plan_cluster(self.data_dir, self.params, self.ports, config_file=self.config_file,
                            log_level=self.log_level, modules=self.modules, binaries=self.binaries)

    def save(self) -> Path:
        path = self.data_dir / LAUNCH_FILE
        write_json_atomic(path, {
            "data_dir": str(self.data_dir), "params": dataclasses.asdict(self.params),
            "ports": {name: dataclasses.asdict(pair) for name, pair in self.ports.items()},
            "config_file": str(self.config_file) if self.config_file else None,
            "log_level": self.log_level, "modules": self.modules, "binaries": self.binaries,
            "ready_timeout": self.ready_timeout})
        return path

    @classmethod
    def load(cls, path: Path) -> Launch:
        raw: dict[str, Any] = json.loads(path.read_text())
        return cls(Path(raw["data_dir"]), ClusterParams(**raw["params"]),
                   {name: PortPair(**pair) for name, pair in raw["ports"].items()},
                   Path(raw["config_file"]) if raw["config_file"] else None, raw["log_level"],
                   raw["modules"], raw["binaries"], float(raw["ready_timeout"]))


def exec_supervisor(launch: Launch, lock: ClusterLock) -> NoReturn:
    """Become the supervisor of ``launch``'s plan, holding ``lock`` throughout (does not return)."""
    path = launch.save()
    fd = lock.keep_across_exec()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-m", "vecraft.local.supervise", "--launch", str(path),
                              "--lock-fd", str(fd)])


def banner(sup: Supervisor) -> str:
    """What `vecraft up` prints once every service is ready."""
    plan = sup.plan
    p = plan.params
    skipped = [c.spec.name for c in sup.children.values() if c.state is ChildState.SKIPPED]
    mode = (f" Cluster mode: {CLUSTER_SIZE} etcd members, {CLUSTER_SIZE} NATS JetStream servers."
            if p.cluster else " Standalone: every service in one process (--distributed for one process "
            "per service)." if p.standalone else "")
    nodes = {role: sum(1 for s in plan.services if s.role == role) for role in ("storage", "query")}
    lines = [(f"Vecraft is up: {p.shards} shard(s) x {p.replicas} replica(s) on {nodes['storage']} storage "
              f"node(s), {nodes['query']} query node(s), {p.data_partitions} journal data "
              f"partition(s).{mode}")]
    gateway = sup.children.get(plan.process_of("gateway"))
    if gateway is not None and gateway.state is not ChildState.SKIPPED:
        spec = plan.get("gateway")
        http = f"{spec.http_scheme}://{spec.http_address}"
        lines += [f"  HTTP API  {http}   (API docs: {http}/docs)",
                  f"  gRPC      {'grpcs://' if p.tls else ''}{spec.grpc_address}"]
    else:
        lines.append("  The gateway is not installed in this build: no client endpoint is served.")
    if p.auth:
        key_file = plan.data_dir / ADMIN_KEY_FILE
        lines.append(f"  auth      API keys required; first admin key in {key_file} (docs/security.md)")
    else:
        lines.append("  auth      off: anyone who reaches the gateway may read and write (--auth to require "
                     "API keys)")
    if p.tls:
        lines.append(f"  tls       mutual TLS between services; clients verify with the CA "
                     f"{plan.data_dir / CERTS_DIR / 'ca.pem'} (ca_cert= in the SDK; docs/security.md#tls)")
    if p.backup_target:
        lines.append(f"  backups   {p.backup_target} (vecraft backup create; docs/backup.md)")
    elif not p.trim_without_backup:
        lines.append("  journal   kept whole: no backup target to trim it against (--backup-target, or "
                     "--trim-without-backup; docs/compactor.md)")
    lines += [f"  data      {plan.data_dir}",
              f"  logs      {plan.logs_dir}",
              f"  status    vecraft status --data-dir {plan.data_dir}"]
    if skipped:
        lines.append(f"  not installed, skipped: {', '.join(skipped)}")
    lines.append("Press Ctrl-C to stop.")
    return "\n".join(lines)




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vecraft up", description="Supervise a planned local cluster "
                                     "(run by `vecraft up`, which plans it first).")
    parser.add_argument("--launch", type=Path, required=True, help="the launch file `vecraft up` wrote")
    parser.add_argument("--lock-fd", type=int, required=True, help="descriptor of the held data-dir lock")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format=LOG_FORMAT, datefmt="%H:%M:%S")
    launch = Launch.load(ns.launch)
    lock = ClusterLock.adopt(launch.data_dir, ns.lock_fd)
    supervisor = Supervisor(launch.plan(), ready_timeout=launch.ready_timeout, lock=lock)

    def ready(sup: Supervisor) -> None:
        save_plan(sup.plan)
        print(banner(sup), flush=True)

    try:
        return asyncio.run(supervisor.run(on_ready=ready))
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(main())
