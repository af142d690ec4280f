"""Storage node: apply throughput (dim 128/512/1536), search latency and recall at 100K, search under apply.

Three parts:

1. apply: the node's apply path in process (``Applier``: decode, mmap record
   file, msync, one SQLite commit per 1 MiB chunk, HNSW insert) fed with
   synthetic journal entries of 500 vectors; vectors indexed per second.
2. search: a real journal and a real storage node process (started with
   ``--apply-delay-ms 1000``); N vectors of dim 128 appended with
   ``ack=journal``, pulled in with ``Sync(latest)``; then sequential gRPC
   searches without and with filters (p50/p95 client side) and recall@10 at
   the collection's default ef_search against exact brute force.
3. concurrency and sync: search latency while the node applies a stream of
   big writes, and ``Sync(latest)`` latency right after a write (the push
   stream is 1000 ms behind; the pull is not).

Writes ``OUT/results/storage-<scale>-<time>.json`` and ``OUT/reports/storage.md``
(``--out OUT``, default ``./vecraft-bench-results``).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import orjson
import psutil

from vecraft.bench._datasets import exact_topk, gaussian_mixture, recall_at_k
from vecraft.bench._env import environment, environment_markdown
from vecraft.bench._report import add_output_arguments, fmt, table, write_outputs
from vecraft.bench._stats import summarize
from vecraft.clients.journal import JournalClient
from vecraft.local.process import ServiceProcess
from vecraft.services.storage_node.journal_replay.applier import Applier
from vecraft.services.storage_node.journal_replay.engine import chunks
from vecraft.services.storage_node.journal_replay.recovery import open_local_state
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.rpc.v1 import collection_pb2, journal_pb2, storage_pb2, storage_pb2_grpc

SCALES = {
    # name: (apply vectors per dim, search base size, queries)
    "small": ({128: 10_000, 512: 4_000, 1536: 2_000}, 20_000, 200),
    "full": ({128: 50_000, 512: 20_000, 1536: 8_000}, 100_000, 500),
}
ENTRY_ROWS = 500


def _schema(dim: int, name: str = "bench") -> collection_pb2.CollectionSchema:
    return collection_pb2.CollectionSchema(
        tenant="default", name=name, dim=dim, metric="cosine", shards=1, replicas=1,
        hnsw=collection_pb2.HnswParams(m=16, ef_construction=200, ef_search=64),
        partition="data-0", collection_id=f"{name}-{dim}")


def _payload(mutation: journal_pb2.Mutation) -> bytes:
    return journal_pb2.JournalPayload(mutations=[mutation]).SerializeToString()


def _write(schema: collection_pb2.CollectionSchema, start: int, vectors: np.ndarray,
           metas: list[dict[str, int]] | None = None) -> bytes:
    ids = [f"v{i}" for i in range(start, start + len(vectors))]
    meta_json = [orjson.dumps(m).decode() for m in metas] if metas else []
    write = journal_pb2.VectorWrite(collection=schema.name, collection_id=schema.collection_id, upsert=True,
                                    ids=ids, dim=schema.dim,
                                    vectors=np.ascontiguousarray(vectors, "<f4").tobytes(),
                                    metadata_json=meta_json)
    return _payload(journal_pb2.Mutation(write=write))


def _create(schema: collection_pb2.CollectionSchema) -> bytes:
    return _payload(journal_pb2.Mutation(ddl=journal_pb2.CollectionDDL(kind=journal_pb2.CollectionDDL.CREATE,
                                                                       schema=schema)))


# ---- part 1: apply throughput ---------------------------------------------------------------
def bench_apply(dim: int, n: int, workdir: Path) -> dict[str, Any]:
    schema = _schema(dim)
    rng = np.random.default_rng(dim)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    hlc = int(time.time() * 1000) << 16
    entries = [journal_pb2.JournalEntry(partition="data-0", offset=1, hlc=hlc, payload=_create(schema))]
    for start in range(0, n, ENTRY_ROWS):
        entries.append(journal_pb2.JournalEntry(
            partition="data-0", offset=len(entries) + 1, hlc=hlc + len(entries),
            payload=_write(schema, start, vectors[start:start + ENTRY_ROWS])))
    state = open_local_state(workdir / f"apply-{dim}", 0)
    applier = Applier(0, state.records, state.locations, state.registry, state.applied)
    began = time.perf_counter()
    commits = 0
    for chunk in chunks(entries):
        applier.apply("data-0", chunk)
        commits += 1
    seconds = time.perf_counter() - began
    indexed = len(state.registry.get("default", "bench").index)
    state.close()
    return {"dim": dim, "vectors": n, "indexed": indexed, "seconds": seconds, "commits": commits,
            "vectors_per_s": n / seconds, "mb_per_s": n * dim * 4 / seconds / 1e6}


# ---- parts 2 and 3: a real node ---------------------------------------------------------------
async def _timed(coro: Any) -> tuple[Any, float]:
    began = time.perf_counter()
    result = await coro
    return result, (time.perf_counter() - began) * 1000


async def bench_node(n: int, queries: int, workdir: Path, index_threads: int) -> dict[str, Any]:
    data = gaussian_mixture(n, 128, queries=queries, metric="cosine")
    journal = ServiceProcess("vecraft.services.journal_service",
                             ["--data-dir", str(workdir / "journal"), "--data-partitions", "1",
                              "--backpressure-lag-ms", "600000", "--backpressure-lag-ops", "100000000",
                              "--backpressure-lag-bytes", str(1 << 40)], workdir, ready_timeout=600).start()
    node = ServiceProcess("vecraft.services.storage_node",
                          ["--data-dir", str(workdir / "node"), "--journal-address", journal.grpc_address,
                           "--apply-delay-ms", "1000", "--index-threads", str(index_threads)], workdir,
                          ready_timeout=600).start()
    client = JournalClient(journal.grpc_address)
    channel = grpc_channel(node.grpc_address)
    stub = storage_pb2_grpc.StorageNodeServiceStub(channel)
    out: dict[str, Any] = {"n": n, "dim": 128, "queries": queries}
    try:
        schema = _schema(128)

        async def append(payload: bytes) -> int:
            resp = await client.append("data-0", payload, request_id=uuid.uuid4().hex,
                                       ack=journal_pb2.ACK_JOURNAL)
            return resp.offset

        await append(_create(schema))
        began = time.perf_counter()
        for start in range(0, n, 1000):
            await append(_write(schema, start, data.vectors[start:start + 1000],
                                data.metadatas(start, start + 1000)))
        out["ingest_append_s"] = time.perf_counter() - began
        _, sync_ms = await _timed(stub.Sync(storage_pb2.SyncRequest(partition="data-0", latest=True)))
        out["ingest_total_s"] = time.perf_counter() - began
        out["ingest_pull_apply_s"] = sync_ms / 1000

        def request(q: np.ndarray, flt: str = "") -> storage_pb2.ShardSearchRequest:
            return storage_pb2.ShardSearchRequest(collection="bench", vector=q.astype("<f4").tobytes(), k=10,
                                                  filter_json=flt)

        cases = {
            "no filter": ("", None),
            "category = c (~10%)": ('{"category": %d}', "category"),
            "num < 5 (~5%)": ('{"num": {"$lt": 5}}', "num5"),
            "category = c and num < 10 (~1%)": ('{"category": %d, "num": {"$lt": 10}}', "both"),
        }
        search: dict[str, Any] = {}
        for label, (template, kind) in cases.items():
            latencies: list[float] = []
            found: list[list[str]] = []
            masks: list[np.ndarray | None] = []
            for i, q in enumerate(data.queries):
                c = i % 10
                flt = template % c if "%d" in template else template
                resp, ms = await _timed(stub.Search(request(q, flt)))
                latencies.append(ms)
                found.append([r.id for r in resp.results])
                mask = None
                if kind == "category":
                    mask = data.category == c
                elif kind == "num5":
                    mask = data.num < 5
                elif kind == "both":
                    mask = (data.category == c) & (data.num < 10)
                masks.append(mask)
            truth = np.vstack([exact_topk(data.vectors, q[None, :], 10, "cosine", mask)
                               for q, mask in zip(data.queries, masks, strict=True)])
            search[label] = {"latency_ms": summarize(latencies).to_dict(),
                             "recall_at_10": recall_at_k(found, truth)}
        out["search"] = search

        # Search latency while the node applies big writes (the push stream, delayed 1 s).
        writes = data.vectors[: min(n, 20_000)] + np.float32(0.01)
        stop = asyncio.Event()

        async def writer() -> int:
            written = 0
            for start in range(0, len(writes), 1000):
                await append(_write(schema, n + start, writes[start:start + 1000]))
                written += 1000
            await stub.Sync(storage_pb2.SyncRequest(partition="data-0", latest=True))
            stop.set()
            return written

        writer_task = asyncio.create_task(writer())
        during: list[float] = []
        while not stop.is_set():
            q = data.queries[len(during) % len(data.queries)]
            _, ms = await _timed(stub.Search(request(q)))
            during.append(ms)
        out["written_during_search"] = await writer_task
        out["search_during_apply_ms"] = summarize(during).to_dict()

        # Sync(latest) right after a write: the push stream is 1000 ms behind.
        syncs: list[float] = []
        pulled = 0
        for i in range(50):
            await append(_write(schema, 10_000_000 + i, data.queries[i % len(data.queries)][None, :]))
            resp, ms = await _timed(stub.Sync(storage_pb2.SyncRequest(partition="data-0", latest=True)))
            syncs.append(ms)
            pulled += int(resp.pulled)
        out["sync_after_write_ms"] = summarize(syncs).to_dict()
        out["sync_pulled"] = pulled
    finally:
        await channel.close()
        await client.close()
        node.stop()
        journal.stop()
    return out


# ---- report ---------------------------------------------------------------------------------------
def markdown(env: dict[str, Any], scale: str, apply: list[dict[str, Any]], node: dict[str, Any]) -> str:
    lines = ["# Storage node benchmark", "", environment_markdown(env),
             f"- Scale: `{scale}`; faiss OpenMP threads: {env['index_threads'] or 'library default'}",
             f"- Host load average (1/5/15 min) at start {env['load_average_start']}, at end "
             f"{env['load_average_end']}", "",
             "## Apply throughput (in process: decode, mmap + msync, SQLite commit per 1 MiB, HNSW M=16 "
             "ef_construction=200)", "",
             table(["dim", "vectors", "commits", "seconds", "vectors/s", "MB/s"],
                   [[a["dim"], fmt(a["vectors"]), a["commits"], fmt(a["seconds"], 2),
                     fmt(a["vectors_per_s"], 0), fmt(a["mb_per_s"], 1)] for a in apply]), "",
             f"## Search at {node['n']:,} vectors of dim 128 (real node over gRPC, k=10, "
             "default ef_search=64, "
             f"{node['queries']} sequential queries per row)", "",
             f"Ingest: {node['ingest_append_s']:.1f} s to append, then Sync(latest) pulled and applied "
             f"everything in {node['ingest_pull_apply_s']:.1f} s "
             f"({node['n'] / node['ingest_pull_apply_s']:,.0f} "
             "vectors/s end to end).", "",
             table(["filter", "p50 ms", "p95 ms", "p99 ms", "recall@10"],
                   [[label, fmt(s["latency_ms"]["p50"], 2), fmt(s["latency_ms"]["p95"], 2),
                     fmt(s["latency_ms"]["p99"], 2), fmt(s["recall_at_10"], 3)]
                    for label, s in node["search"].items()]), "",
             "## Searches while applying, and pull-before-read", ""]
    d, sync = node["search_during_apply_ms"], node["sync_after_write_ms"]
    idle = node["search"]["no filter"]["latency_ms"]
    lines += [table(["measure", "samples", "p50 ms", "p95 ms", "max ms"], [
        ["search, idle node", idle["count"], fmt(idle["p50"], 2), fmt(idle["p95"], 2), fmt(idle["max"], 1)],
        [f"search while {node['written_during_search']:,} vectors are applied", d["count"], fmt(d["p50"], 2),
         fmt(d["p95"], 2), fmt(d["max"], 1)],
        [f"Sync(latest) after a write, push 1000 ms behind ({node['sync_pulled']} pulled)", sync["count"],
         fmt(sync["p50"], 2), fmt(sync["p95"], 2), fmt(sync["max"], 1)],
    ])]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vecraft bench storage", description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="full",
                        help="vectors applied and searched (default full)")
    parser.add_argument("--index-threads", type=int, default=1,
                        help="faiss OpenMP threads, in process and in the node (0 = library default)")
    add_output_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = environment("storage", list(argv or []))
    # Other processes share the cores in CI and on dev machines: say how busy the host was.
    env["load_average_start"] = [round(x, 1) for x in psutil.getloadavg()]
    apply_sizes, search_n, queries = SCALES[args.scale]
    workdir = Path(tempfile.mkdtemp(prefix="vecraft-bench-storage-"))
    if args.index_threads:
        faiss.omp_set_num_threads(args.index_threads)
    try:
        apply = []
        for dim, n in apply_sizes.items():
            apply.append(bench_apply(dim, n, workdir))
            print(f"apply dim {dim}: {apply[-1]['vectors_per_s']:,.0f} vectors/s", flush=True)
        node = asyncio.run(bench_node(search_n, queries, workdir, args.index_threads))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    env["index_threads"] = args.index_threads
    env["load_average_end"] = [round(x, 1) for x in psutil.getloadavg()]
    report = markdown(env, args.scale, apply, node)
    print(report)
    if not args.no_report:
        json_path, md_path = write_outputs(args.out, "storage", args.scale,
                                           {"environment": env, "apply": apply, "node": node}, report)
        print(f"\nwrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
