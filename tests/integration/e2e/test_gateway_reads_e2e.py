"""Gateway reads and answers end to end, through a real ``vecraft up`` cluster (3 shards).

- the gRPC Delete answer reports ``deleted`` / ``deleted_ids`` / ``missing_ids`` like HTTP;
- searches return each hit's document when asked, also when the query processors' caches (which
  keep no documents) answer, over HTTP and gRPC;
- the record listing pages through a collection written with a large batch (one journal entry
  across every shard), small batches, rewrites and deletes: every live record once, in id order,
  as written, over HTTP and gRPC, sync and async; bad parameters are 400 naming them;
- ``vecraft export`` / ``client.export`` of such a collection round-trips in every format.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft.shared.model.routing import shard_of
from vecraft_client import AsyncVecraftClient, VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

SHARDS = 3
DIM = 8


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("e2e-reads") / "data"
    running = LocalCluster(data_dir, shards=SHARDS).start()
    yield running
    assert running.stop() == 0, running.tail()


@pytest.fixture(scope="module")
def http(cluster: LocalCluster) -> Iterator[VecraftClient]:
    with VecraftClient(cluster.endpoint, timeout=60.0) as client:
        yield client


@pytest.fixture(scope="module")
def grpc(cluster: LocalCluster) -> Iterator[VecraftClient]:
    with VecraftClient(f"grpc://{cluster.grpc_endpoint}", transport="grpc", timeout=60.0) as client:
        yield client


def _collection(client: VecraftClient, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dim=DIM, metric="l2")
    return name


def _vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


# ---- gRPC delete answer --------------------------------------------------------------------------

def test_grpc_delete_reports_which_ids_existed_like_http(http: VecraftClient, grpc: VecraftClient) -> None:
    name = _collection(http, "del")
    ids = [f"r{i}" for i in range(6)]
    http.insert_vectors(_vectors(6), ids=ids, collection=name)

    over_grpc = grpc.delete_vectors(["r0", "nope", "r3"], collection=name)
    assert over_grpc.deleted is True
    assert over_grpc.deleted_ids == ["r0", "r3"] and over_grpc.missing_ids == ["nope"]
    over_http = http.delete_vectors(["r3", "r4"], collection=name)
    assert (over_http.deleted, over_http.deleted_ids, over_http.missing_ids) == (True, ["r4"], ["r3"])
    none_left = grpc.delete_vector("r0", collection=name)
    assert (none_left.deleted, none_left.deleted_ids, none_left.missing_ids) == (False, [], ["r0"])

    retried = grpc.delete_vectors(["r0", "nope", "r3"], collection=name, request_id=over_grpc.request_id)
    assert retried.duplicate and retried.offset == over_grpc.offset


# ---- documents in search results -----------------------------------------------------------------

@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_search_hits_carry_documents_when_asked(http: VecraftClient, grpc: VecraftClient,
                                                transport: str) -> None:
    client = http if transport == "http" else grpc
    name = _collection(http, "docs")
    n = 30
    vectors = _vectors(n, seed=5)
    ids = [f"d{i}" for i in range(n)]
    documents = [None if i % 4 == 0 else f"document {i} " + "x" * i for i in range(n)]
    http.insert_vectors(vectors, ids=ids, documents=documents, metadatas=[{"i": i} for i in range(n)],
                        collection=name)
    http.upsert_vector("d1", vectors[1], metadata={"i": 1}, document="rewritten", collection=name)
    expected = dict(zip(ids, documents, strict=True)) | {"d1": "rewritten"}

    strong = client.vector_search(vectors[1], k=n, collection=name, consistency_level="strong",
                                  include_documents=True)
    assert strong.results[0].id == "d1"
    assert {h.id: h.document for h in strong.results} == expected
    # Every cache has now applied every write: an eventual search is answered from the caches.
    eventual = client.vector_search(vectors[7], k=10, collection=name, include_documents=True)
    assert eventual.consistency_info.cache_hit
    assert eventual.results[0].id == "d7"
    assert all(h.document == expected[h.id] for h in eventual.results), eventual.results
    assert eventual.results[0].metadata == {"i": 7}

    plain = client.vector_search(vectors[7], k=10, collection=name)
    assert [h.id for h in plain.results] == [h.id for h in eventual.results]
    assert all(h.document is None for h in plain.results)
    assert [h.score for h in plain.results] == pytest.approx([h.score for h in eventual.results], abs=1e-5)


# ---- record listing and export -------------------------------------------------------------------

#: A collection's name and what it must hold: {id: {"vector", "metadata", "document"}}.
Written = tuple[str, dict[str, dict[str, Any]]]
#: Rows of the large batch: one journal entry (far more than the 100 ids the journal read lists).
BIG = 6000


@pytest.fixture(scope="module")
def written(http: VecraftClient) -> Written:
    """A collection written the ways users write, and what it must hold: {id: vector, metadata, document}."""
    name = _collection(http, "scan")
    expect: dict[str, dict[str, Any]] = {}

    def put(ids: list[str], vectors: np.ndarray, metas: list[dict[str, Any]],
            docs: list[str | None]) -> None:
        for i, rid in enumerate(ids):
            expect[rid] = {"vector": vectors[i], "metadata": metas[i], "document": docs[i]}

    big_ids = [f"big/{i:05d}" for i in range(BIG)]
    big = _vectors(BIG, seed=11)
    big_metas = [{"i": i, "even": i % 2 == 0} for i in range(BIG)]
    big_docs = [f"big doc {i}" if i % 3 else None for i in range(BIG)]
    result = http.insert_vectors(big, ids=big_ids, metadatas=big_metas, documents=big_docs, collection=name)
    assert not result.batches, "the large batch must be one request (one journal entry)"
    put(big_ids, big, big_metas, big_docs)
    for b in range(3):
        ids = [f"small-{b}-{i}" for i in range(40)]
        vectors = _vectors(40, seed=20 + b)
        metas = [{"i": 10_000 + b * 40 + i, "even": i % 2 == 0} for i in range(40)]
        docs = [f"small {b} {i}" for i in range(40)]
        http.insert_vectors(vectors, ids=ids, metadatas=metas, documents=docs, collection=name, ack="journal")
        put(ids, vectors, metas, docs)
    rewritten = _vectors(1, seed=99)[0]
    http.upsert_vector("big/00007", rewritten, metadata={"i": 7, "even": False, "v": 2}, document="v2",
                       collection=name)
    put(["big/00007"], rewritten[None], [{"i": 7, "even": False, "v": 2}], ["v2"])
    gone = [*big_ids[::97], "small-1-3"]
    assert http.delete_vectors(gone, collection=name).deleted_ids == gone
    for rid in gone:
        del expect[rid]
    assert {shard_of(rid, SHARDS) for rid in expect} == set(range(SHARDS))
    return name, expect


def _check_records(records: list[Any], expect: dict[str, dict[str, Any]], *, vectors: bool = True) -> None:
    ids = [r.id for r in records]
    assert ids == sorted(expect), "every live record once, in id order"
    for rec in records:
        want = expect[rec.id]
        assert rec.metadata == want["metadata"] and rec.document == want["document"], rec.id
        if vectors:
            np.testing.assert_allclose(rec.vector, want["vector"], rtol=1e-6, atol=1e-6)


def test_listing_pages_through_every_record_over_http(http: VecraftClient,
                                                      written: Written) -> None:
    name, expect = written
    pages, after = [], None
    while True:
        page = http.list_records(name, after=after, limit=1000, include_vectors=True,
                                 consistency_level="strong")
        pages.append(page)
        after = page.next_cursor
        if after is None:
            break
    assert [len(p.records) for p in pages[:-1]] == [1000] * (len(pages) - 1)
    assert len(pages) == -(-len(expect) // 1000)
    assert all(p.next_cursor == p.records[-1].id for p in pages[:-1])
    _check_records([r for p in pages for r in p.records], expect)
    assert pages[0].index_version > 0 and pages[0].partition.startswith("data-")


def test_listing_over_grpc_async_and_with_a_filter(http: VecraftClient, grpc: VecraftClient,
                                                   cluster: LocalCluster,
                                                   written: Written) -> None:
    name, expect = written
    _check_records(list(grpc.iter_records(name, page_size=777, include_vectors=True)), expect)

    async def async_ids() -> list[str]:
        async with AsyncVecraftClient(cluster.endpoint, timeout=60.0) as client:
            return [r.id async for r in client.iter_records(name, page_size=500, include_metadata=False,
                                                            include_documents=False)]

    assert asyncio.run(async_ids()) == sorted(expect)
    even = {rid: w for rid, w in expect.items() if w["metadata"].get("even") and w["metadata"]["i"] >= 5000}
    _check_records(list(http.iter_records(name, page_size=100, filters={"even": True, "i": {"$gte": 5000}})),
                   even, vectors=False)


def test_listing_errors(cluster: LocalCluster, written: Written) -> None:
    name, _ = written
    url = f"{cluster.endpoint}/v1/collections/{name}/records"
    for params, parameter in [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"),
                              ({"filter": "{"}, "filter"),
                              ({"consistency_level": "bounded"}, "consistency_level"),
                              ({"after": "no spaces"}, "after"), ({"colection": name}, "colection")]:
        r = httpx.get(url, params=params, timeout=30)
        assert r.status_code == 400, (params, r.text)
        assert parameter in r.json()["error"]["message"], r.text
    r = httpx.get(f"{cluster.endpoint}/v1/collections/no_such_collection/records", timeout=30)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "npy"])
def test_export_of_a_large_batch_collection_round_trips(tmp_path: Path, http: VecraftClient, fmt: str,
                                                        written: Written) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    name, expect = written
    out = tmp_path / f"export.{fmt}"
    result = http.export(name, out, chunk_rows=1000)
    assert result.rows == len(expect) and result.head_offset > 0
    copy = f"{name}_copy_{fmt}"
    imported = http.import_file(out, copy, chunk_rows=5000)
    assert imported.rows == len(expect)
    _check_records(list(http.iter_records(copy, page_size=1000, include_vectors=True,
                                          consistency_level="strong")), expect)


def test_cli_export_streams_a_large_batch_collection(tmp_path: Path, cluster: LocalCluster,
                                                     written: Written) -> None:
    name, expect = written
    out = tmp_path / "cli.jsonl"
    done = subprocess.run([sys.executable, "-m", "vecraft", "export", name, str(out), "--endpoint",
                           cluster.endpoint, "--quiet"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == sorted(expect)
    for row in rows[:50] + rows[-50:]:
        np.testing.assert_allclose(row["vector"], expect[row["id"]]["vector"], rtol=1e-6, atol=1e-6)
        assert row.get("metadata") == expect[row["id"]]["metadata"]
        assert row.get("document") == expect[row["id"]]["document"]
