"""Journal append throughput and latency (fsync on) for 1/16/64 writers x 1/100/1000-vector entries.

Starts a real journal process on free loopback ports with its data in a
temporary directory, drives it over gRPC from this process (one asyncio task
per writer, each appending back to back with ``ack=journal``: there are no
replicas, so the answer means "durable"), and reports acknowledged appends/s,
MB/s of payload and p50/p99 latency per cell. Writes JSON to
``OUT/results/journal-<timestamp>.json`` and a markdown report to
``OUT/reports/journal.md`` (``--out OUT``, default ``./vecraft-bench-results``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

import numpy as np
import psutil

from vecraft.bench._report import add_output_arguments
from vecraft.clients.journal import JournalClient
from vecraft.local.process import ServiceProcess
from vecraft.shared.rpc.v1 import journal_pb2

DIM = 128
PARTITION = "data-0"


@dataclass
class Cell:
    writers: int
    vectors: int
    fsync: bool
    entry_bytes: int
    appends: int
    seconds: float
    appends_per_s: float
    mb_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    journal_cpu_pct: int = 0


def entry_payload(vectors: int, rng: np.random.Generator) -> bytes:
    """An encoded JournalPayload holding one VectorWrite of ``vectors`` x dim-128 float32 rows."""
    ids = [f"v{i}" for i in range(vectors)]
    write = journal_pb2.VectorWrite(
        collection="bench", collection_id="bench", upsert=False, ids=ids, dim=DIM,
        vectors=rng.standard_normal((vectors, DIM), dtype=np.float32).tobytes(),
        metadata_json=[""] * vectors)
    return journal_pb2.JournalPayload(mutations=[journal_pb2.Mutation(write=write)]).SerializeToString()


def start_journal(data_dir: Path, *, fsync: bool) -> ServiceProcess:
    """A journal service child process on free ports, ready."""
    return ServiceProcess("vecraft.services.journal_service",
                          ["--data-dir", str(data_dir), "--log-level", "warning",
                           "--fsync" if fsync else "--no-fsync"],
                          data_dir.parent, name="journal", ready_timeout=60).start()


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


async def run_cell(address: str, writers: int, vectors: int, seconds: float, warmup: float,
                   fsync: bool) -> Cell:
    """``writers`` tasks append ``vectors``-row entries back to back for ``warmup + seconds``."""
    payload = entry_payload(vectors, np.random.default_rng(vectors))
    client = JournalClient(address)
    prefix = uuid.uuid4().hex[:8]
    latencies: list[float] = []
    errors = 0
    measuring = False
    stop_at = 0.0

    async def writer(w: int) -> None:
        nonlocal errors
        i = 0
        while time.perf_counter() < stop_at:
            i += 1
            t0 = time.perf_counter()
            try:
                await client.append(PARTITION, payload, request_id=f"{prefix}-{w}-{i}",
                                    shards=(0,), ack=journal_pb2.ACK_JOURNAL)
            except Exception:  # noqa: BLE001 - counted and reported, the run goes on
                errors += 1
                continue
            if measuring:
                latencies.append(time.perf_counter() - t0)

    await client.get_offset(PARTITION)  # connect before timing
    stop_at = time.perf_counter() + warmup + seconds
    tasks = [asyncio.create_task(writer(w)) for w in range(writers)]
    await asyncio.sleep(warmup)
    measuring = True
    started = time.perf_counter()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    await client.close()
    lat = np.array(latencies) * 1000.0
    n = len(latencies)
    return Cell(writers, vectors, fsync, len(payload), n, round(elapsed, 3), round(n / elapsed, 1),
                round(n * len(payload) / elapsed / 1e6, 2),
                round(float(np.percentile(lat, 50)), 3) if n else 0.0,
                round(float(np.percentile(lat, 99)), 3) if n else 0.0, errors)


def disk_baseline(directory: Path, chunk: int = 8 << 20, total: int = 64 << 20) -> float:
    """MB/s of plain ``write`` + ``fdatasync`` of ``chunk``-byte blocks: the device's ceiling here."""
    path = directory / "disk-baseline"
    data = os.urandom(chunk)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        started = time.perf_counter()
        for _ in range(total // chunk):
            os.write(fd, data)
            os.fdatasync(fd)
        return round(total / (time.perf_counter() - started) / 1e6, 1)
    finally:
        os.close(fd)
        path.unlink()


def machine() -> dict[str, object]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("grpcio", "protobuf", "crc32c", "numpy"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = "?"
    return {"cores": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions,
            "load_avg_1m": round(os.getloadavg()[0], 1)}


def render_markdown(cells: list[Cell], info: dict[str, object], command: str) -> str:
    versions = info["versions"]
    assert isinstance(versions, dict)
    lines = [
        "# Journal append benchmark", "",
        f"Command: `{command}`", "",
        f"Machine: {info['cores']} cores, {info['cpu']}, Python {info['python']}, {info['platform']}; "
        + ", ".join(f"{k} {v}" for k, v in versions.items()), "",
        f"Load average (1 min) before / after the run: {info['load_avg_before']} / {info['load_avg_1m']} "
        "(other work on the machine shares its cores). Plain write + fdatasync of 8 MiB blocks in the "
        f"same temporary directory: {info['disk_mb_per_s']} MB/s (the device's ceiling for fsync'd "
        "payload).", "",
        "One journal process (local file backend, one data partition) and one load process (this one), "
        "both on this machine; each writer appends back to back and waits for the durable answer "
        "(`ack=journal`). Entries are encoded `JournalPayload`s of dim-128 float32 vectors.", "",
        "| fsync | writers | vectors/entry | entry bytes | appends/s | MB/s | p50 ms | p99 ms | "
        "journal CPU % | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cells:
        lines.append(f"| {'on' if c.fsync else 'off'} | {c.writers} | {c.vectors} | {c.entry_bytes} | "
                     f"{c.appends_per_s:,.0f} | {c.mb_per_s:.1f} | {c.p50_ms:.2f} | {c.p99_ms:.2f} | "
                     f"{c.journal_cpu_pct} | {c.errors} |")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vecraft bench journal", description=__doc__.splitlines()[0])
    p.add_argument("--writers", type=int, nargs="+", default=[1, 16, 64],
                   help="concurrent appenders per cell, space-separated (default 1 16 64)")
    p.add_argument("--vectors", type=int, nargs="+", default=[1, 100, 1000],
                   help="vectors per append, space-separated (default 1 100 1000)")
    p.add_argument("--seconds", type=float, default=4.0, help="measured seconds per cell")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured seconds before each cell")
    p.add_argument("--no-fsync-too", action="store_true",
                   help="also run every cell against a journal with fsync off, for comparison")
    add_output_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    command = "vecraft bench journal " + " ".join(shlex.quote(a) for a in (argv or []))
    cells: list[Cell] = []
    modes = [True, False] if args.no_fsync_too else [True]
    load_before = round(os.getloadavg()[0], 1)
    with tempfile.TemporaryDirectory(prefix="vecraft-bench-journal-") as tmp:
        disk = disk_baseline(Path(tmp))
        for fsync in modes:
            for vectors in args.vectors:
                for writers in args.writers:
                    # A fresh journal per cell: no cell reads another's page cache or segment roll.
                    data = Path(tmp) / f"j-{fsync}-{vectors}-{writers}" / "data"
                    data.parent.mkdir(parents=True)
                    journal = start_journal(data, fsync=fsync)
                    try:
                        cpu0 = cpu_seconds(journal.pid)
                        cell = asyncio.run(run_cell(journal.grpc_address, writers, vectors, args.seconds,
                                                    args.warmup, fsync))
                        cpu = (cpu_seconds(journal.pid) - cpu0) / (args.seconds + args.warmup) * 100
                        cell.journal_cpu_pct = round(cpu)
                    finally:
                        journal.stop()
                    cells.append(cell)
                    print(json.dumps(asdict(cell)), flush=True)
    info = machine() | {"load_avg_before": load_before, "disk_mb_per_s": disk}
    if not args.no_report:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        results = args.out / "results"
        reports = args.out / "reports"
        results.mkdir(parents=True, exist_ok=True)
        reports.mkdir(parents=True, exist_ok=True)
        rows = [asdict(c) for c in cells]
        (results / f"journal-{stamp}.json").write_text(
            json.dumps({"command": command, "machine": info, "cells": rows}, indent=2) + "\n")
        (reports / "journal.md").write_text(render_markdown(cells, info, command))
        print(f"wrote {results / f'journal-{stamp}.json'} and {reports / 'journal.md'}")
    return 1 if any(c.errors for c in cells) else 0


if __name__ == "__main__":
    sys.exit(main())
