"""Two tenants, one throttled: both tenants' latency while tenant A is over its quota (docs/quotas.md).

``vecraft bench quotas [--seconds 20] [--a-rate 150] [--b-rate 20] [--out bench]``

Starts ``vecraft up`` (one shard), gives tenants ``ta`` and ``tb`` a collection each
(``--n`` vectors of 32 dimensions), then runs three phases of ``--seconds`` each. In both, each
tenant sends an open-loop stream (requests start on a fixed schedule, whatever the answers
take) of searches and of one-vector inserts: tenant A ``--a-rate`` searches/s and half as many
inserts/s, tenant B ``--b-rate`` searches/s and half as many inserts/s.

0. *B alone*: tenant A sends nothing;
1. *no quota*: both tenants, no quota;
2. *A throttled*: tenant A's quota is ``read_requests_per_s = --a-limit`` and
   ``write_requests_per_s = --a-limit / 2``, well below what it sends.

Reported per phase and tenant: requests sent, answered 2xx / 429, P50/P95/P99 of the 2xx
answers and of the 429 answers, and the 429s' mean Retry-After. Tenant B's P95 in phase 2
against phase 1 is the figure that matters: a throttled tenant must not slow the others down.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson

from vecraft.bench._cluster import ClusterSpec, LocalCluster, bench_run
from vecraft.bench._env import environment, environment_markdown
from vecraft.bench._report import add_output_arguments, fmt, table, write_outputs
from vecraft.bench._stats import percentile
from vecraft.local.process import free_port

DIM = 32
TENANTS = ("ta", "tb")
_JSON = {"content-type": "application/json"}


async def _load(url: str, n: int) -> None:
    rng = np.random.default_rng(3)
    async with httpx.AsyncClient(base_url=url, timeout=120) as c:
        for tenant in TENANTS:
            headers = {**_JSON, "X-Tenant": tenant}
            r = await c.post("/v1/collections", content=orjson.dumps({"name": "docs", "dim": DIM}),
                             headers=headers)
            r.raise_for_status()
            for lo in range(0, n, 500):
                ids = [f"p{i}" for i in range(lo, min(lo + 500, n))]
                vectors = rng.normal(size=(len(ids), DIM)).tolist()
                body = orjson.dumps({"collection": "docs", "ids": ids, "vectors": vectors})
                (await c.post("/v1/vectors/batch", content=body, headers=headers)).raise_for_status()


async def _stream(client: httpx.AsyncClient, tenant: str, kind: str, rate: float, seconds: float,
                  out: list[tuple[str, int, float, float]]) -> None:
    """Start ``rate`` requests/s for ``seconds``; record (kind, status, ms, retry-after s) of each."""
    rng = np.random.default_rng(abs(hash((tenant, kind))) % 2**32)
    headers = {**_JSON, "X-Tenant": tenant}
    tasks: list[asyncio.Task[None]] = []
    counter = 0

    async def one(n: int) -> None:
        if kind == "search":
            path, body = "/v1/vectors/search", {"collection": "docs", "vector": rng.normal(size=DIM).tolist(),
                                                "k": 10}
        else:
            path, body = "/v1/vectors", {"collection": "docs", "id": f"{tenant}-w{n}-{time.time_ns()}",
                                         "vector": rng.normal(size=DIM).tolist()}
        t0 = time.perf_counter()
        try:
            r = await client.post(path, content=orjson.dumps(body), headers=headers)
            status, retry = r.status_code, float(r.headers.get("retry-after", "0") or 0)
        except httpx.HTTPError:
            status, retry = 0, 0.0
        out.append((kind, status, (time.perf_counter() - t0) * 1000, retry))

    start = time.perf_counter()
    interval = 1.0 / rate
    while (now := time.perf_counter() - start) < seconds:
        due = counter * interval
        if due > now:
            await asyncio.sleep(due - now)
        tasks.append(asyncio.create_task(one(counter)))
        counter += 1
    await asyncio.gather(*tasks)


def _summary(rows: list[tuple[str, int, float, float]], seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for kind in ("search", "insert"):
        mine = [r for r in rows if r[0] == kind]
        ok = [r[2] for r in mine if 200 <= r[1] < 300]
        limited = [r for r in mine if r[1] == 429]
        result[kind] = {
            "sent": len(mine), "ok": len(ok), "throttled": len(limited),
            "other": len(mine) - len(ok) - len(limited), "ok_per_s": len(ok) / seconds,
            "ok_p50_ms": percentile(ok, 50) if ok else None, "ok_p95_ms": percentile(ok, 95) if ok else None,
            "ok_p99_ms": percentile(ok, 99) if ok else None,
            "throttled_p95_ms": percentile([r[2] for r in limited], 95) if limited else None,
            "retry_after_mean_s": float(np.mean([r[3] for r in limited])) if limited else None}
    return result


async def _phase(url: str, args: argparse.Namespace, *, a_rate: float) -> dict[str, Any]:
    rows: dict[str, list[tuple[str, int, float, float]]] = {t: [] for t in TENANTS}
    rates = {"ta": a_rate, "tb": args.b_rate}
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=512)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(
            _stream(client, tenant, kind, rates[tenant] * share, args.seconds, rows[tenant])
            for tenant in TENANTS for kind, share in (("search", 1.0), ("insert", 0.5))
            if rates[tenant] > 0))
    return {tenant: _summary(rows[tenant], args.seconds) for tenant in TENANTS}


async def _run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    spec = ClusterSpec(data_dir=work / "cluster", shards=1, apply_delay_ms=0, http_port=free_port(),
                       grpc_port=free_port())
    async with LocalCluster(spec) as cluster:
        url = spec.base_url
        await _load(url, args.n)
        alone = await _phase(url, args, a_rate=0)
        baseline = await _phase(url, args, a_rate=args.a_rate)
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            quota = {"read_requests_per_s": args.a_limit, "write_requests_per_s": max(1, args.a_limit // 2)}
            (await c.put("/v1/quotas/ta", json=quota)).raise_for_status()
        throttled = await _phase(url, args, a_rate=args.a_rate)
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            metrics = (await c.get("/metrics")).text
        counted = {line.split("{")[1].split("}")[0]: float(line.rsplit(" ", 1)[1])
                   for line in metrics.splitlines() if line.startswith("vecraft_gateway_throttled_total{")}
        phases = {"B alone": alone, "no quota": baseline, "A throttled": throttled}
        return {"startup_s": cluster.startup_s, "quota": quota, "phases": phases,
                "throttled_metric": counted}


def _markdown(env: dict[str, Any], args: argparse.Namespace, result: dict[str, Any]) -> str:
    rows = []
    for phase, tenants in result["phases"].items():
        for tenant in TENANTS:
            for kind in ("search", "insert"):
                s = tenants[tenant][kind]
                if not s["sent"]:
                    continue
                rows.append([phase, tenant.upper()[-1], kind, s["sent"], s["ok"], s["throttled"], s["other"],
                             fmt(s["ok_per_s"]), fmt(s["ok_p50_ms"]), fmt(s["ok_p95_ms"]),
                             fmt(s["ok_p99_ms"]), fmt(s["throttled_p95_ms"]), fmt(s["retry_after_mean_s"])])
    alone = result["phases"]["B alone"]["tb"]
    b0 = result["phases"]["no quota"]["tb"]
    b1 = result["phases"]["A throttled"]["tb"]
    return "\n".join([
        "# Quotas benchmark: both tenants' latency while tenant A is throttled",
        "",
        environment_markdown(env),
        f"- One `vecraft up` (standalone, 1 shard); tenants A (`ta`) and B (`tb`) each a collection of "
        f"{args.n:,} vectors x {DIM}. Open-loop load for {args.seconds:g} s per phase from one client "
        f"process on the same machine: A sends {args.a_rate:g} searches/s + {args.a_rate / 2:g} one-vector "
        f"inserts/s, B {args.b_rate:g} + {args.b_rate / 2:g}. Phases in order: *B alone* (A sends nothing), "
        "*no quota* (both), *A throttled* (both, a quota on A).",
        f"- Phase *A throttled*: A's quota is {result['quota']} (per gateway), far below what A sends.",
        f"- `vecraft_gateway_throttled_total` after the run: {result['throttled_metric']}.",
        "",
        table(["phase", "tenant", "request", "sent", "2xx", "429", "other", "2xx/s", "2xx P50 ms",
               "2xx P95 ms", "2xx P99 ms", "429 P95 ms", "Retry-After mean s"], rows),
        "",
        f"Tenant B's search P95: {fmt(alone['search']['ok_p95_ms'])} ms alone, "
        f"{fmt(b0['search']['ok_p95_ms'])} ms next to A without a quota, {fmt(b1['search']['ok_p95_ms'])} ms "
        f"while A is throttled; insert P95 {fmt(alone['insert']['ok_p95_ms'])} / "
        f"{fmt(b0['insert']['ok_p95_ms'])} / {fmt(b1['insert']['ok_p95_ms'])} ms. "
        "A refused request costs the gateway one token-bucket "
        "check after parsing and auth, and nothing downstream, so A's excess load is what remains of "
        "its cost; the client, the gateway and every service share the same cores here.",
    ])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vecraft bench quotas", description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--a-rate", type=float, default=150.0, help="tenant A's searches/s (inserts: half)")
    parser.add_argument("--b-rate", type=float, default=20.0, help="tenant B's searches/s (inserts: half)")
    parser.add_argument("--a-limit", type=int, default=20, help="A's read_requests_per_s in phase 2 "
                                                                "(write_requests_per_s: half)")
    parser.add_argument("--n", type=int, default=5000, help="vectors per tenant loaded first")
    add_output_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = environment("quotas", list(argv or []))
    with bench_run("quotas") as work:
        result = asyncio.run(_run(args, work))
    markdown = _markdown(env, args, result)
    print(markdown)
    if not args.no_report:
        json_path, md_path = write_outputs(args.out, "quotas", "small", {"environment": env, **result},
                                           markdown)
        print(f"wrote {json_path} and {md_path}", file=sys.stderr)
    return 0
