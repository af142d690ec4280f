"""Bulk import/export against a real `vecraft up`: round trips in every format, an import killed
mid-way and re-run (no row twice, every row present), and hostile files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft_client import VecraftClient
from vecraft_client._bulk_formats import BulkFileError

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DIM = 8


def rows(n: int, seed: int = 0) -> tuple[list[str], np.ndarray, list[dict[str, object]]]:
    rng = np.random.default_rng(seed)
    return ([f"r{i}" for i in range(n)], rng.standard_normal((n, DIM)).astype("<f4"),
            [{"i": i, "even": i % 2 == 0} for i in range(n)])


def write_jsonl(path: Path, ids: list[str] | None, mat: np.ndarray, metas: list[dict[str, object]]) -> None:
    with open(path, "w") as f:
        for i in range(len(mat)):
            row: dict[str, object] = {"vector": mat[i].tolist(), "metadata": metas[i], "document": f"doc {i}"}
            if ids is not None:
                row["id"] = ids[i]
            f.write(json.dumps(row) + "\n")


def read_jsonl(path: Path) -> dict[str, dict[str, object]]:
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


@pytest.fixture()
def client(cluster: LocalCluster) -> VecraftClient:
    return VecraftClient(endpoint=cluster.endpoint)


def name() -> str:
    return f"bulk_{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("fmt", ["jsonl", "parquet", "npy"])
def test_round_trip(tmp_path: Path, client: VecraftClient, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    ids, mat, metas = rows(230)
    src = tmp_path / "src.jsonl"
    write_jsonl(src, ids, mat, metas)
    coll = name()
    # First through JSON Lines in chunks of 50, then export in `fmt`.
    r = client.import_file(src, coll, chunk_rows=50, parallel=3)
    assert (r.rows, r.chunks, r.duplicate_chunks) == (230, 5, 0)
    client.delete_vectors(["r0", "r1"], collection=coll)
    out = tmp_path / f"out.{fmt}"
    e = client.export(coll, out, chunk_rows=64)
    assert e.rows == 228 and e.head_offset > 0
    # ... and back into a second collection from `fmt`, exported again as JSON Lines to compare.
    coll2 = name()
    assert client.import_file(out, coll2, chunk_rows=50).rows == 228
    final = tmp_path / "final.jsonl"
    client.export(coll2, final)
    got = read_jsonl(final)
    assert sorted(got) == sorted(ids[2:])
    for i in range(2, 230):
        rec = got[f"r{i}"]
        assert np.allclose(rec["vector"], mat[i]) and rec["metadata"] == metas[i]
        assert rec["document"] == f"doc {i}"


def test_rerun_is_a_no_op(tmp_path: Path, client: VecraftClient) -> None:
    ids, mat, metas = rows(120)
    src = tmp_path / "x.npy"
    np.save(src, mat)
    write_jsonl(src.with_suffix(".jsonl"), ids, mat, metas)  # the sidecar (its vectors are ignored)
    coll = name()
    first = client.import_file(src, coll, chunk_rows=40)
    again = client.import_file(src, coll, chunk_rows=40)
    assert (first.duplicate_chunks, again.duplicate_chunks, again.chunks) == (0, 3, 3)
    assert client.get_vector("r7", collection=coll).metadata == {"i": 7, "even": False}


def journal_rows(endpoint: str, partition: str, collection_id: str) -> tuple[int, int]:
    """(entries, rows) the journal holds for the collection's inserts."""
    entries = total = 0
    at = 1
    while True:
        page = httpx.get(f"{endpoint}/v1/journal/{partition}",
                         params={"from_offset": at, "limit": 1000}).json()
        if not page["entries"]:
            return entries, total
        for e in page["entries"]:
            for m in e["summary"]["mutations"]:
                if m.get("collection_id") == collection_id and m["kind"] == "insert":
                    entries += 1
                    total += m["count"]
        at = page["next_offset"]
        if at > page["latest_offset"]:
            return entries, total


def test_import_killed_midway_then_rerun_stores_every_row_once(tmp_path: Path, cluster: LocalCluster,
                                                               client: VecraftClient) -> None:
    n, chunk = 40_000, 500
    _, mat, metas = rows(n, seed=3)
    src = tmp_path / "big.jsonl"
    write_jsonl(src, None, mat, metas)  # no ids: the server derives them from each chunk's request id
    coll = name()
    client.create_collection(coll, dim=DIM)
    schema = client.get_collection(coll)
    cmd = [sys.executable, "-m", "vecraft", "import", str(src), "--collection", coll, "--endpoint",
           cluster.endpoint, "--chunk-rows", str(chunk), "--parallel", "2", "--quiet"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while journal_rows(cluster.endpoint, schema.partition, schema.collection_id)[0] < 5:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    entries, stored = journal_rows(cluster.endpoint, schema.partition, schema.collection_id)
    assert 0 < stored < n, "killed too late to test a resume"

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"imported {n} rows in {n // chunk} chunks" in done.stdout
    entries, stored = journal_rows(cluster.endpoint, schema.partition, schema.collection_id)
    assert (entries, stored) == (n // chunk, n)  # every chunk exactly once
    hits = client.vector_search(mat[12345], k=1, collection=coll, consistency_level="strong").results
    assert hits[0].metadata == metas[12345]


OK = '{"vector": [1, 2, 3, 4, 5, 6, 7, 8]}\n'


@pytest.mark.parametrize(("content", "message"), [
    (OK + '{"vector": [1, 2]}\n', r"bad\.jsonl:2: vector has 2 values"),
    (OK + '{"vector": [NaN, 1, 1, 1, 1, 1, 1, 1]}\n', r"bad\.jsonl:2: not valid JSON"),
    (OK + '{"vector": [1e39, 1, 1, 1, 1, 1, 1, 1]}\n',
     r"bad\.jsonl:2: .*out-of-float32"),
    (OK + '{"vector": [1, 2, 3, 4, 5, 6, 7, 8]\n', r"bad\.jsonl:2: not valid JSON"),
    (OK + '{"vector": "x"}\n', r"bad\.jsonl:2: 'vector' must be"),
])
def test_hostile_jsonl_names_the_line(tmp_path: Path, client: VecraftClient, content: str,
                                      message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    with pytest.raises(BulkFileError, match=message):
        client.import_file(bad, name())


def test_hostile_npy_and_parquet_name_the_row(tmp_path: Path, client: VecraftClient) -> None:
    coll = name()
    client.create_collection(coll, dim=DIM)
    mat = np.ones((10, DIM), dtype="<f4")
    mat[7, 3] = np.nan
    np.save(tmp_path / "nan.npy", mat)
    with pytest.raises(BulkFileError, match=r"nan\.npy: row 7: .*NaN"):
        client.import_file(tmp_path / "nan.npy", coll)
    np.save(tmp_path / "wide.npy", np.ones((3, DIM + 1), dtype="<f4"))
    with pytest.raises(BulkFileError, match=r"wide\.npy: row 0: vector has 9 values, .*dim is 8"):
        client.import_file(tmp_path / "wide.npy", coll)
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    vectors = [[1.0] * DIM] * 4 + [[1.0] * (DIM - 1)]
    pq.write_table(pa.table({"id": [str(i) for i in range(5)], "vector": vectors}),
                   tmp_path / "short.parquet")
    with pytest.raises(BulkFileError, match=r"short\.parquet: row 4: vector has 7 values"):
        client.import_file(tmp_path / "short.parquet", coll)


def test_cli_export_and_errors(tmp_path: Path, cluster: LocalCluster, client: VecraftClient) -> None:
    coll = name()
    ids, mat, metas = rows(30)
    client.create_collection(coll, dim=DIM)
    client.insert_vectors(mat, ids=ids, metadatas=metas, collection=coll)
    out = tmp_path / "c.jsonl"
    done = subprocess.run([sys.executable, "-m", "vecraft", "export", coll, str(out), "--endpoint",
                           cluster.endpoint, "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(read_jsonl(out)) == sorted(ids)
    # A batch of more than 100 rows (more ids than the journal read lists): the listing has them all.
    more = client.insert_vectors(np.ones((150, DIM), dtype="<f4"), collection=coll)
    done = subprocess.run([sys.executable, "-m", "vecraft", "export", coll, str(out), "--endpoint",
                           cluster.endpoint, "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(read_jsonl(out)) == sorted(ids + more.ids)
