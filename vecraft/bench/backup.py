"""Backup and restore throughput (to a directory and to S3), and the time until a restored cluster serves.

One local cluster (``vecraft up``) is loaded with ``--rows`` x ``--dim`` vectors
(half, then a moment is noted, then the other half). Then, as a user runs them:

1. ``vecraft backup create`` to a directory and to an S3-compatible store (moto's
   server mode on loopback, or ``--s3-target``): seconds, vectors/s and MB/s of
   what the target holds afterwards; a second backup with no new writes shows
   what an incremental backup costs.
2. ``vecraft restore latest`` from each target into a new data dir: seconds,
   vectors/s, MB/s of the restored directory; and a point-in-time restore from
   S3 to the moment noted mid-load.
3. The source cluster stopped, a cluster started on the restore from S3 (the
   shard files with their HNSW graphs) and timed until a strong search finds
   the last vector written; then the same on the directory restore with its
   shard files removed, so the storage nodes rebuild every shard from the
   journal: the rebuild a restore without shard files costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vecraft.bench._cluster import ClusterSpec, LocalCluster, bench_run, memory_shortfall
from vecraft.bench._datasets import gaussian_mixture
from vecraft.bench._env import environment, environment_markdown
from vecraft.bench._http import BenchHttp, load_dataset, search_body, wait_searchable
from vecraft.bench._moto import CREDENTIALS, MotoServer, moto_available
from vecraft.bench._report import add_output_arguments, fmt, table, write_outputs
from vecraft.bench._spec import HNSW
from vecraft.local.process import free_port

COLLECTION = "backup_bench"
BUCKET = "vecraft-bench"
MB = 1e6


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def target_bytes(location: str) -> int:
    """Bytes a target holds (a directory's files, or an S3 prefix's objects)."""
    if not location.startswith("s3://"):
        return dir_bytes(Path(location))
    from vecraft.services.snapshot_service.s3_target import S3Target

    target = S3Target.from_url(location)
    pages = target.client.get_paginator("list_objects_v2").paginate(
        Bucket=target.bucket, Prefix=f"{target.prefix}/" if target.prefix else "")
    return sum(int(o["Size"]) for page in pages for o in page.get("Contents", []))


def vecraft(*args: str | Path) -> tuple[float, str]:
    """Run one ``vecraft`` command as a user does; returns (seconds, stdout). Raises if it fails."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "vecraft", *map(str, args)], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=3600)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"vecraft {' '.join(map(str, args))} exited {done.returncode}:\n"
                           f"{done.stdout}{done.stderr}")
    return seconds, done.stdout


def _rates(rows: int, seconds: float, nbytes: int) -> dict[str, float]:
    return {"s": seconds, "vectors_per_s": rows / seconds, "mb_per_s": nbytes / MB / seconds}


async def _time_to_strong_search(data_dir: Path, shards: int, vector: Any, expected_id: str,
                                 timeout_s: float = 1800.0) -> dict[str, Any]:
    """Start a cluster on ``data_dir``; seconds until /readyz, and until a strong search finds
    ``expected_id`` first (the catalog rebuilt and every shard caught up with the journal)."""
    # Replaying a big journal takes longer than `vecraft up`'s default 120 s per service.
    spec = ClusterSpec(data_dir=data_dir, shards=shards, apply_delay_ms=0, http_port=free_port(),
                       grpc_port=free_port(), extra_args=("--ready-timeout", str(int(timeout_s))))
    (data_dir / "bench-up.log").unlink(missing_ok=True)  # its ready lines are this start's only
    spawned = time.time()
    t0 = time.perf_counter()
    cluster = LocalCluster(spec, ready_timeout_s=timeout_s)
    try:
        try:
            await cluster.start()
        except RuntimeError:
            log = (data_dir / "bench-up.log").read_text(errors="replace").splitlines()[-20:]
            print("\n".join(["vecraft up on the restored data dir failed:", *log]), file=sys.stderr)
            raise
        ready = cluster.startup_s
        body = search_body(COLLECTION, vector, k=1, level="strong")
        async with BenchHttp(spec.base_url) as http:
            while True:
                try:
                    if await http.search_ids(body) == [expected_id]:
                        break
                except RuntimeError:
                    pass  # the collection is not in the rebuilt catalog yet
                if time.perf_counter() - t0 > timeout_s:
                    raise TimeoutError(f"no strong answer from {data_dir} after {timeout_s:.0f} s")
                await asyncio.sleep(0.1)
        answered = time.perf_counter() - t0
    finally:
        await cluster.stop()
    return {"ready_s": ready, "strong_search_s": answered,
            "services_ready_s": services_ready(data_dir / "bench-up.log", spawned)}


_READY_LINE = re.compile(r"^(\d\d):(\d\d):(\d\d) vecraft up: ([\w-]+) ready")


def services_ready(log: Path, spawned: float) -> dict[str, float]:
    """Seconds (1 s resolution) from ``spawned`` (epoch) until each kind of service was ready, the
    slowest of its processes, from the ``HH:MM:SS vecraft up: NAME ready`` lines of ``vecraft up``."""
    ready: dict[str, float] = {}
    start = datetime.fromtimestamp(spawned)
    for line in log.read_text(errors="replace").splitlines():
        if m := _READY_LINE.match(line):
            at = start.replace(hour=int(m[1]), minute=int(m[2]), second=int(m[3]), microsecond=0)
            seconds = (at - start.replace(microsecond=0)).total_seconds() % 86_400
            role = m[4].split("-")[0]
            ready[role] = max(ready.get(role, 0.0), seconds)
    return ready


async def _run(args: argparse.Namespace, work: Path, s3_url: str | None) -> dict[str, Any]:
    data = gaussian_mixture(args.rows, args.dim, queries=1, seed=args.seed)
    ids, metas = data.ids(), data.metadatas()
    spec = ClusterSpec(data_dir=work / "source", shards=args.shards, apply_delay_ms=0, http_port=free_port(),
                       grpc_port=free_port())
    result: dict[str, Any] = {"rows": args.rows, "dim": args.dim, "shards": args.shards}
    targets = {"directory": str(work / "backups")} | ({"s3": s3_url} if s3_url else {})
    async with LocalCluster(spec) as cluster, BenchHttp(spec.base_url) as http:
        await http.create_collection(COLLECTION, args.dim, metric="cosine", shards=args.shards, hnsw=HNSW)
        half = args.rows // 2
        load_s = await load_dataset(http, COLLECTION, data.vectors[:half], ids[:half], metas[:half],
                                    batch=args.batch, concurrency=args.concurrency)
        mid_time = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        load_s += await load_dataset(http, COLLECTION, data.vectors[half:], ids[half:], metas[half:],
                                     batch=args.batch, concurrency=args.concurrency)
        await wait_searchable(http, COLLECTION, data.vectors[-1], ids[-1], timeout_s=600)
        result["load"] = {"s": load_s, "vectors_per_s": args.rows / load_s, "startup_s": cluster.startup_s,
                          "journal_bytes": dir_bytes(spec.data_dir / "journal"),
                          "storage_bytes": dir_bytes(spec.data_dir / "storage")}
        print(f"loaded {args.rows:,} x {args.dim} in {load_s:.1f} s", flush=True)
        result["backup"] = {}
        for kind, location in targets.items():
            seconds, out = vecraft("backup", "create", "--target", location, "--data-dir", spec.data_dir)
            held = target_bytes(location)
            again_s, _ = vecraft("backup", "create", "--target", location, "--data-dir", spec.data_dir)
            added = target_bytes(location) - held
            result["backup"][kind] = _rates(args.rows, seconds, held) | {
                "bytes": held, "incremental_s": again_s, "incremental_bytes": added, "output": out.strip()}
            print(f"backup to {kind}: {seconds:.1f} s, {held / MB:.1f} MB; again: {again_s:.1f} s, "
                  f"+{added / MB:.2f} MB", flush=True)
    result["restore"] = {}
    for kind, location in targets.items():
        into = work / f"restored-{kind}"
        seconds, out = vecraft("restore", "latest", "--target", location, "--data-dir", into)
        nbytes = dir_bytes(into)
        result["restore"][kind] = _rates(args.rows, seconds, nbytes) | {"bytes": nbytes,
                                                                        "output": out.strip()}
        print(f"restore from {kind}: {seconds:.1f} s, {nbytes / MB:.1f} MB", flush=True)
    pitr_from = "s3" if s3_url else "directory"
    into = work / "restored-pitr"
    seconds, out = vecraft("restore", "latest", "--target", targets[pitr_from], "--data-dir", into,
                           "--to-time", mid_time)
    result["pitr"] = {"from": pitr_from, "to_time": mid_time, "s": seconds, "bytes": dir_bytes(into),
                      "output": out.strip()}
    shutil.rmtree(into, ignore_errors=True)
    print(f"point-in-time restore from {pitr_from}: {seconds:.1f} s", flush=True)

    # The source is stopped: each restored cluster has the machine to itself.
    files_dir = work / f"restored-{pitr_from}"
    last, last_id = data.vectors[-1], ids[-1]
    result["serve_with_files"] = await _time_to_strong_search(files_dir, args.shards, last, last_id)
    print(f"restored cluster with shard files: strong search after "
          f"{result['serve_with_files']['strong_search_s']:.1f} s", flush=True)
    # A fresh restore without its shard files: every shard replays the journal from offset 1.
    rebuild_dir = work / "restored-rebuild"
    vecraft("restore", "latest", "--target", targets["directory"], "--data-dir", rebuild_dir)
    shutil.rmtree(rebuild_dir / "storage")
    result["serve_rebuilt"] = await _time_to_strong_search(rebuild_dir, args.shards, last, last_id)
    print(f"restored cluster rebuilding from the journal: strong search after "
          f"{result['serve_rebuilt']['strong_search_s']:.1f} s", flush=True)
    result["serve_with_files"]["from"] = pitr_from
    return result


def render(result: dict[str, Any]) -> str:
    rows, dim = result["rows"], result["dim"]
    load = result["load"]
    backup_rows = [[kind, fmt(b["s"], 1), fmt(b["vectors_per_s"], 0), fmt(b["mb_per_s"], 1),
                    fmt(b["bytes"] / MB, 1), fmt(b["incremental_s"], 1), fmt(b["incremental_bytes"] / MB, 2)]
                   for kind, b in result["backup"].items()]
    restore_rows = [[kind, fmt(r["s"], 1), fmt(r["vectors_per_s"], 0), fmt(r["mb_per_s"], 1),
                     fmt(r["bytes"] / MB, 1)] for kind, r in result["restore"].items()]
    files, rebuilt = result["serve_with_files"], result["serve_rebuilt"]
    pitr = result["pitr"]
    restore_s = result["restore"][files["from"]]["s"]
    s3_note = {"moto": "moto's server mode (`python -m moto.server`, objects in its memory) on loopback, "
                       "a Python process on the same cores: the S3 figures include its cost",
               "given": f"`{result.get('s3_target', '')}`",
               "none": "not measured (moto is not installed and no `--s3-target` was given)"}[result["s3"]]
    return "\n".join([
        "# Backup benchmark: backup and restore throughput, time until a restored cluster serves", "",
        environment_markdown(result["environment"]),
        (f"- {rows:,} vectors x {dim} (float32, with metadata), a collection of {result['shards']} "
         f"shards x 1 replica; loaded in {fmt(load['s'], 1)} s ({fmt(load['vectors_per_s'], 0)} "
         f"vectors/s, ack=all); "
         f"the source holds {fmt(load['journal_bytes'] / MB, 1)} MB of journal and "
         f"{fmt(load['storage_bytes'] / MB, 1)} MB of shard files."),
        f"- S3 target: {s3_note}.",
        ("- Every figure is one `vecraft` command run as a user runs it (a new Python process: about 1 s "
         "of start-up is included). MB = 10^6 bytes: for a backup, what the target holds afterwards "
         "(journal archive + shard files); for a restore, the restored data directory."), "",
        "## Backup (`vecraft backup create`)", "",
        table(["target", "s", "vectors/s", "MB/s", "MB held", "again, no new writes: s",
               "again: MB added"], backup_rows), "",
        "## Restore (`vecraft restore latest`)", "",
        table(["from", "s", "vectors/s", "MB/s", "MB restored"], restore_rows), "",
        (f"Point-in-time restore from {pitr['from']} to `--to-time {pitr['to_time']}` (half of the rows "
         f"written): {fmt(pitr['s'], 1)} s, {fmt(pitr['bytes'] / MB, 1)} MB restored. The backup's shard "
         f"files reflect entries past that moment, so only the journal up to it is restored and the "
         f"storage nodes rebuild from it."), "",
        "## Until a restored cluster answers a strong search", "",
        table(["restored data dir", "storage nodes ready s", "query processor ready s",
               "`vecraft up` ready s", "strong search answers s"], [
            [f"with the shard files (HNSW graphs) from {files['from']}", *_serving(files)],
            ["shard files removed: every shard rebuilt from the journal", *_serving(rebuilt)]]), "",
        ("Service ready times come from `vecraft up`'s log (1 s resolution); a storage node is ready once "
         "its shards have opened their files and replayed the journal past them, the query processor "
         "once its own cache of every shard has replayed the journal (it does not read the shard "
         "files)."), "",
        (f"Restore + serve with shard files: {fmt(restore_s + files['strong_search_s'], 1)} s; "
         f"the journal rebuild alone: {fmt(rebuilt['strong_search_s'], 1)} s "
         f"({fmt(rebuilt['strong_search_s'] / files['strong_search_s'], 1)}x the time with shard "
         f"files)."), ""])


def _serving(run: dict[str, Any]) -> list[str]:
    services = run.get("services_ready_s", {})
    return [fmt(services.get("storage"), 0), fmt(services.get("query"), 0), fmt(run["ready_s"], 1),
            fmt(run["strong_search_s"], 1)]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vecraft bench backup", description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000, help="vectors to load (default 100000)")
    p.add_argument("--dim", type=int, default=128, help="vector dimension (default 128)")
    p.add_argument("--shards", type=int, default=2, help="shards of the collection (default 2)")
    p.add_argument("--batch", type=int, default=1000,
                   help="rows per write request while loading (default 1000)")
    p.add_argument("--concurrency", type=int, default=2, help="write requests in flight while loading")
    p.add_argument("--s3-target", default=None, metavar="URL",
                   help="an S3 target to measure (s3://BUCKET/PREFIX?endpoint_url=...; credentials from "
                        "the AWS environment) instead of moto's server mode on loopback; 'none' skips S3")
    p.add_argument("--seed", type=int, default=42, help="random seed of the data (default 42)")
    add_output_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.rows < 2 or args.dim < 1 or args.shards < 1:
        print("vecraft bench backup: --rows >= 2, --dim >= 1 and --shards >= 1", file=sys.stderr)
        return 2
    if shortfall := memory_shortfall(args.shards):
        print(f"vecraft bench backup: the cluster would not fit: {shortfall}", file=sys.stderr)
        return 2
    env = environment("backup", argv)
    with bench_run("backup") as work:
        if args.s3_target == "none" or (args.s3_target is None and not moto_available()):
            s3_kind, result = "none", asyncio.run(_run(args, work, None))
        elif args.s3_target:
            s3_kind, result = "given", asyncio.run(_run(args, work, args.s3_target))
        else:
            # The storage nodes upload their shard files themselves: they inherit the dummy credentials.
            os.environ.update(CREDENTIALS)
            with MotoServer(work / "moto.log") as moto:
                moto.create_bucket(BUCKET)
                s3_kind, result = "moto", asyncio.run(_run(args, work, moto.url(BUCKET, "bench")))
    result |= {"environment": env, "s3": s3_kind, "s3_target": args.s3_target}
    markdown = render(result)
    if args.no_report:
        print(markdown)
        return 0
    scale = f"{args.rows // 1000}k-{args.dim}"
    json_path, md_path = write_outputs(args.out, "backup", scale, result, markdown)
    print(f"wrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
