"""Chaos: a seeded schedule of process faults under a mixed load, judged by a history checker.

A local cluster (``vecraft up``, by default 3 storage nodes with 2 replicas per
shard and 2 query nodes each serving every shard) gets a mixed load from a few
client sessions, while a seeded schedule hits one process at a time with
kill -9 (the supervisor restarts it) or SIGSTOP/SIGCONT (a pause). Each
session owns a few record ids and changes them one operation at a time:
upserts with every ack policy (``journal``, ``one``, ``all``), deletes and now
and then a transaction of two of its ids; every session reads every id at
every level (``strong``, ``read_your_writes``, ``eventual`` by id, ``bounded``
by a filtered search). A write whose answer is lost (timeout, 5xx) is retried
with its request id until it is definite, as a careful client does. After the
schedule the run waits for the cluster to recover, reads every id at
``strong`` and hands the whole history to :mod:`vecraft.bench._history`.

It prints and reports counts: operations by kind and outcome, faults, violations,
availability (share of operations that succeeded) and read P99 inside and
outside fault windows, and the time each fault took to recover. Exit status 1
on any violation.

Usage: ``vecraft bench chaos [--seed N] [--duration-s 60] [--fault-every-s 6]
[--targets storage,query,gateway,journal,meta,failover] [--cluster] ...``; with
``--cluster`` an etcd member or a NATS server may be hit too (``--help``
lists everything). Writes OUT/results/chaos-*.json and OUT/reports/chaos.md
(``--cluster``: chaos-cluster-*.json, chaos-cluster.md).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from vecraft.bench._cluster import ClusterSpec, LocalCluster, bench_run
from vecraft.bench._env import environment, environment_markdown
from vecraft.bench._history import ABSENT, Change, Outcome, Read, Verdict, check
from vecraft.bench._report import add_output_arguments, fmt, table, write_outputs
from vecraft.local.process import free_port
from vecraft.local.supervisor import read_status
from vecraft_client._errors import retry_after_ms_of

COLLECTION = "chaos"
DIM = 4
ROLES = ("storage", "query", "gateway", "journal", "meta", "failover")
#: More roles of cluster mode (`vecraft up --cluster`): an etcd member, a NATS server.
CLUSTER_ROLES = ("etcd", "nats")
#: (level, weight) of reads; writes, deletes and transactions have their own weights.
READS = (("strong", 3), ("read_your_writes", 3), ("eventual", 2), ("bounded", 2))
ACKS = ("journal", "one", "all")


@dataclasses.dataclass(frozen=True)
class ChaosConfig:
    seed: int = 1
    duration_s: float = 60.0
    fault_every_s: float = 6.0
    pause_s: float = 3.0
    targets: tuple[str, ...] = ROLES
    clients: int = 4
    keys_per_client: int = 6
    shards: int = 3
    storage_nodes: int = 3
    replicas: int = 2
    query_nodes: int = 2
    query_replicas: int = 2
    bound_ms: int = 1000
    request_timeout_s: float = 5.0
    #: How long a write with a lost answer is retried (same request id) before it counts as unknown.
    retry_s: float = 30.0
    recover_timeout_s: float = 120.0
    #: Cluster mode: etcd and NATS JetStream, two journal instances.
    cluster: bool = False
    #: `vecraft up` flags added as given (e.g. fail-over manager timings).
    extra_up_args: tuple[str, ...] = ()


@dataclasses.dataclass
class Fault:
    target: str
    kind: str  # "kill" | "pause"
    start: float
    end: float = 0.0
    recovered_s: float | None = None


#: Error of an operation the server answered 429 (back-pressure, retried after Retry-After).
THROTTLED = "429"


def _retry_after_ms(headers: Mapping[str, str]) -> float:
    """How long a 429 asks to wait (the SDK's reading of Retry-After); 200 ms when absent, zero or
    not a number."""
    return float(retry_after_ms_of(headers) or 200)


@dataclasses.dataclass
class OpRecord:
    kind: str
    start: float
    end: float
    ok: bool
    error: str = ""


class Session:
    """One client session: owns ``keys``, writes them one operation at a time, reads everything."""

    def __init__(self, name: str, keys: list[str], all_keys: list[str], http: httpx.AsyncClient,
                 cfg: ChaosConfig, rng: random.Random) -> None:
        self.name = name
        self.keys = keys
        self.all_keys = all_keys
        self.http = http
        self.cfg = cfg
        self.rng = rng
        self.token = ""
        self.version = dict.fromkeys(keys, 0)
        self.changes: list[Change] = []
        self.reads: list[Read] = []
        self.ops: list[OpRecord] = []

    # ---- writes ----------------------------------------------------------------------------
    async def _send_write(self, method: str, path: str, body: dict[str, Any] | None,
                          params: dict[str, str]) -> tuple[Outcome, dict[str, Any]]:
        """Send one write with a fresh request id; retry it while its outcome is unknown."""
        request_id = f"chaos-{uuid.uuid4().hex}"
        headers = {"X-Request-Id": request_id}
        deadline = time.monotonic() + self.cfg.retry_s
        while True:
            if self.token:
                headers["X-Session-Token"] = self.token
            started = time.monotonic()
            try:
                resp = await self.http.request(method, path, json=body, params=params, headers=headers,
                                               timeout=self.cfg.request_timeout_s)
            except httpx.HTTPError as exc:
                self.ops.append(OpRecord("write", started, time.monotonic(), False, type(exc).__name__))
            else:
                ok = resp.status_code < 300
                self.ops.append(OpRecord("write", started, time.monotonic(), ok,
                                         "" if ok else str(resp.status_code)))
                if ok:
                    answer = resp.json()
                    self.token = answer.get("session_token", self.token)
                    return Outcome.OK, answer
                if 400 <= resp.status_code < 500 and resp.status_code != 429:
                    return Outcome.FAILED, {}
                if resp.status_code == 429:
                    # Throttled, not failed: wait as long as the server asked, as the SDK does.
                    retry_ms = _retry_after_ms(resp.headers)
                    if time.monotonic() + retry_ms / 1000 >= deadline:
                        return Outcome.UNKNOWN, {}
                    await asyncio.sleep(retry_ms / 1000)
                    continue
            if time.monotonic() >= deadline:
                return Outcome.UNKNOWN, {}
            await asyncio.sleep(0.2)

    def _vector(self) -> list[float]:
        v = np.asarray([self.rng.gauss(0, 1) for _ in range(DIM)], dtype=np.float32)
        return [float(x) for x in v / (np.linalg.norm(v) or 1.0)]

    async def upsert(self, key: str) -> None:
        v = self.version[key] + 1
        invoked = time.monotonic()
        outcome, _ = await self._send_write(
            "PUT", f"/v1/vectors/{key}",
            {"vector": self._vector(), "metadata": {"key": key, "v": v}, "ack": self.rng.choice(ACKS)},
            {"collection": COLLECTION})
        self._changed(key, v, v, invoked, outcome)

    async def delete(self, key: str) -> None:
        v = self.version[key] + 1
        invoked = time.monotonic()
        outcome, _ = await self._send_write("DELETE", f"/v1/vectors/{key}", None,
                                            {"collection": COLLECTION, "ack": self.rng.choice(ACKS)})
        self._changed(key, v, ABSENT, invoked, outcome)

    async def transaction(self, a: str, b: str) -> None:
        va, vb = self.version[a] + 1, self.version[b] + 1
        invoked = time.monotonic()
        ops = [{"op": "upsert", "collection": COLLECTION, "ids": [a, b],
                "vectors": [self._vector(), self._vector()],
                "metadatas": [{"key": a, "v": va}, {"key": b, "v": vb}]}]
        outcome, _ = await self._send_write("POST", "/v1/transactions", {"operations": ops}, {})
        self._changed(a, va, va, invoked, outcome)
        self._changed(b, vb, vb, invoked, outcome)

    def _changed(self, key: str, v: int, state: int, invoked: float, outcome: Outcome) -> None:
        self.version[key] = v
        self.changes.append(Change(key, v, state, invoked, time.monotonic(), outcome))

    # ---- reads -----------------------------------------------------------------------------
    async def read(self, key: str, level: str) -> None:
        invoked = time.monotonic()
        try:
            if level == "bounded":
                resp = await self.http.post("/v1/vectors/search", json={
                    "collection": COLLECTION, "vector": self._vector(), "k": 1,
                    "consistency_level": "bounded", "max_staleness_ms": self.cfg.bound_ms,
                    "filters": {"key": key}},
                    timeout=self.cfg.request_timeout_s)
            else:
                ryw = level == "read_your_writes" and self.token
                headers = {"X-Session-Token": self.token} if ryw else {}
                resp = await self.http.get(f"/v1/vectors/{key}", params={
                    "collection": COLLECTION, "consistency_level": level, "include_vector": "false"},
                    headers=headers, timeout=self.cfg.request_timeout_s)
        except httpx.HTTPError as exc:
            self.ops.append(OpRecord(f"read:{level}", invoked, time.monotonic(), False, type(exc).__name__))
            return
        completed = time.monotonic()
        # The collection exists: a 404 of a read by id means the record does not.
        answered = resp.status_code == 200 or (resp.status_code == 404 and level != "bounded")
        self.ops.append(OpRecord(f"read:{level}", invoked, completed, answered,
                                 "" if answered else str(resp.status_code)))
        if not answered:
            return
        state = ABSENT
        if resp.status_code == 200:
            body = resp.json()
            meta = (body["results"][0]["metadata"] if body.get("results") else None) if level == "bounded" \
                else body.get("metadata")
            state = int(meta["v"]) if meta else ABSENT
        horizon: float | None = None
        if level == "strong" or (level == "read_your_writes" and key in self.version):
            horizon = invoked
        elif level == "bounded":
            horizon = invoked - self.cfg.bound_ms / 1000
        self.reads.append(Read(key, level, invoked, completed, state, horizon,
                               judge_absent=level != "bounded"))

    async def run(self, until: float) -> None:
        levels = [lvl for lvl, w in READS for _ in range(w)]
        while time.monotonic() < until:
            roll = self.rng.random()
            if roll < 0.30:
                await self.upsert(self.rng.choice(self.keys))
            elif roll < 0.35:
                await self.delete(self.rng.choice(self.keys))
            elif roll < 0.38 and len(self.keys) >= 2:
                a, b = self.rng.sample(self.keys, 2)
                await self.transaction(a, b)
            else:
                await self.read(self.rng.choice(self.all_keys), self.rng.choice(levels))


class FaultInjector:
    """Hits one process at a time, chosen by the seeded ``rng`` among the ``targets`` roles."""

    def __init__(self, data_dir: Path, cfg: ChaosConfig, rng: random.Random) -> None:
        self.data_dir = data_dir
        self.cfg = cfg
        self.rng = rng
        self.faults: list[Fault] = []

    def _processes(self) -> dict[str, dict[str, Any]]:
        return dict(read_status(self.data_dir).get("processes", {}))

    def _targets(self) -> list[str]:
        return sorted(name for name in self._processes()
                      if any(name == role or name.startswith(f"{role}-") for role in self.cfg.targets))

    async def run(self, until: float) -> None:
        while True:
            await asyncio.sleep(self.cfg.fault_every_s * self.rng.uniform(0.6, 1.4))
            if time.monotonic() >= until:
                return
            targets = self._targets()
            if not targets:
                return
            target = self.rng.choice(targets)
            kind = self.rng.choice(("kill", "pause"))
            await self._inject(target, kind)

    async def _inject(self, target: str, kind: str) -> None:
        pid = self._processes().get(target, {}).get("pid")
        if not pid:
            return
        fault = Fault(target, kind, time.monotonic())
        self.faults.append(fault)
        try:
            if kind == "kill":
                os.kill(pid, signal.SIGKILL)
                fault.end = time.monotonic()
                fault.recovered_s = await self._wait_back(target, pid, fault.start)
            else:
                os.kill(pid, signal.SIGSTOP)
                await asyncio.sleep(self.cfg.pause_s)
                os.kill(pid, signal.SIGCONT)
                fault.end = time.monotonic()
                fault.recovered_s = fault.end - fault.start
        except ProcessLookupError:
            fault.end = time.monotonic()

    async def _wait_back(self, target: str, old_pid: int, since: float) -> float | None:
        """Seconds until the supervisor restarted ``target`` and it is up again (None: not in time)."""
        deadline = since + self.cfg.recover_timeout_s
        while time.monotonic() < deadline:
            entry = self._processes().get(target, {})
            if entry.get("pid") not in (None, old_pid) and entry.get("state") == "running":
                return time.monotonic() - since
            await asyncio.sleep(0.1)
        return None


def _p99(values: list[float]) -> float | None:
    return float(np.percentile(values, 99)) if values else None


def summarize(sessions: list[Session], faults: list[Fault], verdict: Verdict, *,
              recovered_s: float | None) -> dict[str, Any]:
    ops = [op for s in sessions for op in s.ops]
    windows = [(f.start, max(f.end, f.start + (f.recovered_s or 0))) for f in faults]

    def in_fault(op: OpRecord) -> bool:
        return any(a <= op.start <= b for a, b in windows)

    def stats(selected: list[OpRecord]) -> dict[str, Any]:
        reads = [o for o in selected if o.kind.startswith("read")]
        return {"operations": len(selected), "succeeded": sum(o.ok for o in selected),
                "availability": (sum(o.ok for o in selected) / len(selected)) if selected else None,
                "read_p99_ms": _p99([(o.end - o.start) * 1000 for o in reads if o.ok]),
                "errors": dict(Counter(o.error for o in selected if not o.ok and o.error != THROTTLED)),
                "throttled": sum(not o.ok and o.error == THROTTLED for o in selected)}

    return {
        "operations": dict(Counter(o.kind for o in ops)),
        "changes": dict(Counter(c.outcome.value for s in sessions for c in s.changes)),
        "during_faults": stats([o for o in ops if in_fault(o)]),
        "outside_faults": stats([o for o in ops if not in_fault(o)]),
        "faults": [dataclasses.asdict(f) | {"start": None, "end": None} for f in faults],
        "fault_counts": dict(Counter(f"{f.kind}:{f.target.split('-')[0]}" for f in faults)),
        "recovery_after_schedule_s": recovered_s,
        "history": verdict.summary(),
    }


async def _final_reads(http: httpx.AsyncClient, keys: list[str],
                       timeout_s: float) -> tuple[list[Read], float]:
    """A STRONG read of every key, each retried until it answers; and how long that took."""
    t0 = time.monotonic()
    reads: list[Read] = []
    for key in keys:
        deadline = time.monotonic() + timeout_s
        while True:
            invoked = time.monotonic()
            try:
                resp = await http.get(f"/v1/vectors/{key}", params={
                    "collection": COLLECTION, "consistency_level": "strong", "include_vector": "false"},
                    timeout=10)
                if resp.status_code in (200, 404):
                    meta = resp.json().get("metadata") if resp.status_code == 200 else None
                    state = int(meta["v"]) if meta else ABSENT
                    reads.append(Read(key, "strong", invoked, time.monotonic(), state, horizon=invoked,
                                      final=True))
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster did not recover: no STRONG read of {key!r} in {timeout_s}s")
            await asyncio.sleep(0.2)
    return reads, time.monotonic() - t0


async def run_chaos(cfg: ChaosConfig, work: Path) -> dict[str, Any]:
    """Run one schedule on a fresh cluster in ``work``; the summary (see :func:`summarize`)."""
    rng = random.Random(cfg.seed)
    spec = ClusterSpec(data_dir=work / "cluster", shards=cfg.shards, apply_delay_ms=0, http_port=free_port(),
                       grpc_port=free_port(), extra_args=(
                           # Faults hit one service process at a time: one process per service.
                           "--distributed", "--storage-nodes", str(cfg.storage_nodes),
                           "--replicas", str(cfg.replicas),
                           "--query-nodes", str(cfg.query_nodes), "--query-replicas", str(cfg.query_replicas),
                           *(("--cluster",) if cfg.cluster else ()), *cfg.extra_up_args))
    async with LocalCluster(spec) as cluster, httpx.AsyncClient(base_url=spec.base_url) as http:
        resp = await http.post("/v1/collections", json={"name": COLLECTION, "dim": DIM, "shards": cfg.shards,
                                                        "replicas": cfg.replicas}, timeout=30)
        resp.raise_for_status()
        names = [f"c{i}" for i in range(cfg.clients)]
        keys = {n: [f"{n}-k{j}" for j in range(cfg.keys_per_client)] for n in names}
        all_keys = [k for n in names for k in keys[n]]
        sessions = [Session(n, keys[n], all_keys, http, cfg, random.Random(rng.random())) for n in names]
        injector = FaultInjector(spec.data_dir, cfg, random.Random(rng.random()))
        until = time.monotonic() + cfg.duration_s
        await asyncio.gather(*(s.run(until) for s in sessions), injector.run(until))
        final, recovered_s = await _final_reads(http, all_keys, cfg.recover_timeout_s)
        reads = [r for s in sessions for r in s.reads] + final
        verdict = check([c for s in sessions for c in s.changes], reads)
        summary = summarize(sessions, injector.faults, verdict, recovered_s=recovered_s)
        summary["startup_s"] = cluster.startup_s
    summary["config"] = dataclasses.asdict(cfg)
    summary["ok"] = verdict.ok
    return summary


def render(result: dict[str, Any]) -> str:
    cfg, hist = result["config"], result["history"]
    lines = [
        "# Chaos run", "",
        *([environment_markdown(result["environment"]), ""] if "environment" in result else []),
        f"Seed {cfg['seed']}, {fmt(cfg['duration_s'], 0)} s, a fault every ~{fmt(cfg['fault_every_s'], 0)} s "
        f"on {', '.join(cfg['targets'])}; {cfg['clients']} sessions x {cfg['keys_per_client']} ids; "
        f"{cfg['storage_nodes']} storage nodes x {cfg['replicas']} replicas, "
        f"{cfg['query_nodes']} query nodes x {cfg['query_replicas']}, {cfg['shards']} shards.", "",
        f"**Violations: {sum(hist['violations'].values())}** {hist['violations'] or ''}", "",
        f"Changes: {result['changes']}; reads judged: {hist['reads']} {hist['reads_by_level']}; "
        f"ids tainted by an unknown outcome: {hist['tainted_keys']}.", "",
        table(["window", "operations", "availability", "read P99 ms", "throttled (429)", "errors"], [
            [name, w["operations"], fmt(w["availability"] * 100 if w["availability"] is not None else None, 2)
             + " %", fmt(w["read_p99_ms"]), w.get("throttled", 0), w["errors"] or ""]
            for name, w in (("during faults", result["during_faults"]),
                            ("outside faults", result["outside_faults"]))]), "",
        table(["fault", "target", "recovered after s"],
              [[f["kind"], f["target"], fmt(f["recovered_s"], 2)] for f in result["faults"]]), "",
        f"After the schedule, every id answered a STRONG read within "
        f"{fmt(result['recovery_after_schedule_s'], 2)} s.",
    ]
    if hist["examples"]:
        lines += ["", "Examples:", *(f"- {e['kind']} {e['key']} at {e['level']}: {e['detail']}"
                                     for e in hist["examples"])]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    d = ChaosConfig()
    p = argparse.ArgumentParser(prog="vecraft bench chaos", description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=d.seed, help="seed of the fault schedule and the load")
    p.add_argument("--duration-s", type=float, default=d.duration_s, help="length of the fault schedule")
    p.add_argument("--fault-every-s", type=float, default=d.fault_every_s, help="mean time between faults")
    p.add_argument("--pause-s", type=float, default=d.pause_s, help="length of a SIGSTOP pause")
    p.add_argument("--targets", default=None,
                   help=f"roles whose processes may be hit (of {', '.join(ROLES + CLUSTER_ROLES)}); default "
                        f"all of the mode's")
    p.add_argument("--cluster", action="store_true",
                   help="cluster mode: 3 etcd members, 3 NATS servers, 2 journal instances "
                        "(needs the cluster extra)")
    p.add_argument("--clients", type=int, default=d.clients, help="client sessions")
    p.add_argument("--keys-per-client", type=int, default=d.keys_per_client,
                   help="record ids each session owns and changes")
    for name, what in (("shards", "shards of the collection"), ("storage_nodes", "storage nodes"),
                       ("replicas", "storage replicas per shard"), ("query_nodes", "query nodes"),
                       ("query_replicas", "query nodes serving each shard"),
                       ("bound_ms", "staleness bound of bounded reads")):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name),
                       help=f"{what} (default {getattr(d, name)})")
    add_output_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    roles = ROLES + CLUSTER_ROLES if args.cluster else ROLES
    targets = tuple(t for t in args.targets.split(",") if t) if args.targets is not None else roles
    unknown = set(targets) - set(roles)
    if unknown:
        print(f"vecraft bench chaos: unknown --targets {sorted(unknown)} (of {', '.join(roles)})",
              file=sys.stderr)
        return 2
    cfg = ChaosConfig(seed=args.seed, duration_s=args.duration_s, fault_every_s=args.fault_every_s,
                      pause_s=args.pause_s, targets=targets, clients=args.clients,
                      keys_per_client=args.keys_per_client, shards=args.shards,
                      storage_nodes=args.storage_nodes, replicas=args.replicas, query_nodes=args.query_nodes,
                      query_replicas=args.query_replicas, bound_ms=args.bound_ms, cluster=args.cluster)
    env = environment("chaos", argv)
    with bench_run("chaos") as work:
        result = asyncio.run(run_chaos(cfg, work))
    result["environment"] = env
    text = render(result)
    print(text)
    if not args.no_report:
        # Cluster mode keeps a report of its own beside the embedded one.
        name = "chaos-cluster" if cfg.cluster else "chaos"
        json_path, md_path = write_outputs(args.out, name, f"seed{cfg.seed}", result, text)
        print(f"wrote {json_path} and {md_path}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
