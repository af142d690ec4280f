"""kill -9 a storage node in the middle of a heavy apply: its disk holds a journal prefix, then it catches up.

The expected state after any prefix is computed from the entries this test
wrote, so the check is exact: the same ids, each with the vector, metadata and
entry offset of its last write before the prefix end, nothing else.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.integration.storage.harness import Writer, node_stub
from tests.support.procs import ServiceProcess
from tests.unit.storage import payloads
from vecraft.services.storage_node.mmap import LocationIndex, RecordFile, check_consistency
from vecraft.shared.rpc.v1 import collection_pb2, storage_pb2

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

DIM = 48
ENTRIES = 160
#: Entries in the journal when the node first starts; the rest are written after both kills, so a
#: killed node never holds the journal's final head, however fast it applies.
ENTRIES_BEFORE_KILLS = 100
ROWS = 120


def _digest(vector: bytes, metadata_json: str, offset: int) -> str:
    return hashlib.sha256(vector + metadata_json.encode() + offset.to_bytes(8, "little")).hexdigest()


def _expected(history: list[tuple[int, str, list[str], np.ndarray | None, list[str]]],
              upto: int) -> dict[str, str]:
    """id -> digest of the state after every entry <= upto."""
    state: dict[str, str] = {}
    for offset, kind, ids, vectors, metas in history:
        if offset > upto:
            break
        if kind == "write":
            assert vectors is not None
            raw = np.ascontiguousarray(vectors, "<f4")
            for i, rid in enumerate(ids):
                state[rid] = _digest(raw[i].tobytes(), metas[i], offset)
        elif kind == "delete":
            for rid in ids:
                state.pop(rid, None)
    return state


def _on_disk(data_dir: Path, scratch: Path) -> tuple[int, dict[str, str]]:
    """(applied offset, id -> digest) of a killed node's disk, after the start-up check on a copy."""
    shutil.copytree(data_dir, scratch)
    records, locations = RecordFile(scratch / "records.bin"), LocationIndex(scratch / "locations.sqlite")
    check_consistency(records, locations)  # what the restart does first: cut the uncommitted tail
    applied = locations.progress().get("data-0", (0, 0))[0]
    (cid,) = locations.schemas()
    out: dict[str, str] = {}
    for loc in locations.live_rows(cid):
        view = records.read(loc.file_offset, loc.length)
        assert view.id == loc.id and view.entry_offset == loc.entry_offset
        out[loc.id] = _digest(view.vector.tobytes(), view.metadata_json, view.entry_offset)
    records.close()
    locations.close()
    return applied, out


def _applied_now(node: ServiceProcess) -> int:
    try:
        body = httpx.get(f"http://{node.http_address}/healthz", timeout=1.0).json()
    except httpx.HTTPError:
        return 0
    return int(body.get("applied", {}).get("data-0", 0))


def _applied_entries_metric(node: ServiceProcess) -> float:
    text = httpx.get(f"http://{node.http_address}/metrics", timeout=5.0).text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("vecraft_storage_apply_entries_total{"))


History = list[tuple[int, str, list[str], np.ndarray | None, list[str]]]


async def _write_entries(writer: Writer, s: collection_pb2.CollectionSchema, history: History,
                         rng: np.random.Generator, numbers: range) -> None:
    for n in numbers:
        if n % 10 == 9:  # deletes of earlier ids, some already deleted or rewritten
            ids = [f"e{rng.integers(0, n)}-{i}" for i in range(0, ROWS, 3)]
            history.append((await writer.delete(s, ids), "delete", ids, None, []))
            continue
        # Every fourth entry rewrites ids of an earlier one (upsert of existing records).
        base = n if n % 4 or n == 0 else int(rng.integers(0, n))
        ids = [f"e{base}-{i}" for i in range(ROWS)]
        vectors = rng.standard_normal((ROWS, DIM)).astype(np.float32)
        metas = [f'{{"n":{n},"i":{i}}}' for i in range(ROWS)]
        offset = await writer.write(s, ids, vectors, [{"n": n, "i": i} for i in range(ROWS)])
        history.append((offset, "write", ids, vectors, metas))


async def test_kill_during_heavy_apply_leaves_a_prefix_and_catches_up(
        start_node: Callable[..., ServiceProcess], writer: Writer, tmp_path: Path) -> None:
    s = payloads.schema(dim=DIM)
    history: History = []
    offset = await writer.create(s)
    history.append((offset, "ddl", [], None, []))
    rng = np.random.default_rng(21)
    await _write_entries(writer, s, history, rng, range(ENTRIES_BEFORE_KILLS))
    head_at_kills = history[-1][0]

    node = start_node("victim", wait_ready=False)
    kills: list[int] = []
    for round_, fraction in enumerate((0.2, 0.6)):
        # The node catches up from its disk's prefix by pulling; it is killed on its way.
        deadline = time.monotonic() + 120
        while _applied_now(node) < head_at_kills * fraction and time.monotonic() < deadline:
            time.sleep(0.005)
        node.kill()
        applied, disk = _on_disk(tmp_path / "victim" / "shard-0", tmp_path / f"copy-{round_}")
        kills.append(applied)
        assert disk == _expected(history, applied)  # exactly a prefix: nothing past it, nothing missing
        if round_ == 0:
            node.start(wait_ready=False)
    assert kills[0] <= kills[1] <= head_at_kills

    # The rest of the journal is written while the node is down: its restart catches up past
    # every kill point.
    await _write_entries(writer, s, history, rng, range(ENTRIES_BEFORE_KILLS, ENTRIES))
    head = history[-1][0]
    assert kills[-1] < head
    node.start(wait_ready=True)

    stub = node_stub(node)
    status = await stub.Status(storage_pb2.NodeStatusRequest())
    assert status.ready and status.partitions[0].applied_offset == head
    final = _expected(history, head)
    ids = sorted({rid for _o, kind, rids, _v, _m in history if kind == "write" for rid in rids})
    got: dict[str, str] = {}
    for start in range(0, len(ids), 5000):
        resp = await stub.Get(storage_pb2.ShardGetRequest(collection="docs", ids=ids[start:start + 5000],
                                                          include_vectors=True))
        got.update({r.id: _digest(r.vector, r.metadata_json, r.offset) for r in resp.records})
    assert len(got) == len(final) and got == final
    assert status.collections[0].live_records == len(final)
    # This process applied each entry after the last kill's prefix exactly once.
    assert _applied_entries_metric(node) == head - kills[-1]
