"""The ``CopyShard`` stream between peers: a directory streamed in chunks is written back byte for byte
and renamed into place; a stream that does not match its header (a corrupted, missing, reordered or
foreign chunk, a short file) is refused and leaves no files behind."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from vecraft.services.storage_node.peer_seeding import (
    CHUNK_BYTES,
    CopyRefused,
    seed_from_peer,
    staging_dir,
    stream_directory,
    write_copy,
)
from vecraft.shared.rpc.v1 import storage_pb2

pytestmark = pytest.mark.unit

APPLIED = {"data-0": (42, 4200), "data-1": (7, 700)}


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A replica checkpoint's shape: a record file of several chunks, an index, a snapshot, an empty file."""
    root = tmp_path / "source"
    (root / "snapshot" / "s1").mkdir(parents=True)
    (root / "records.bin").write_bytes(bytes(range(256)) * (CHUNK_BYTES * 5 // 2 // 256 + 3))
    (root / "locations.sqlite").write_bytes(b"sqlite" * 1000)
    (root / "snapshot" / "s1" / "graph.faiss").write_bytes(b"\x01\x02" * 5000)
    (root / "snapshot" / "s1" / "empty").write_bytes(b"")
    return root


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


async def _chunks(source: Path) -> list[storage_pb2.ShardFileChunk]:
    return [c async for c in stream_directory(source, APPLIED)]


async def _replay(chunks: list[storage_pb2.ShardFileChunk]) -> AsyncIterator[storage_pb2.ShardFileChunk]:
    for chunk in chunks:
        yield chunk


async def test_a_streamed_directory_is_written_back_whole_and_renamed_into_place(source: Path,
                                                                                 tmp_path: Path) -> None:
    chunks = await _chunks(source)
    assert all(len(c.data) <= CHUNK_BYTES for c in chunks)
    assert sum(1 for c in chunks if c.path == "records.bin") == 3
    target = tmp_path / "shard-0"
    target.mkdir()  # an empty replica directory is replaced
    writer = await write_copy(_replay(chunks), target)
    assert _tree(target) == _tree(source)
    assert writer.applied == APPLIED and writer.files == 4
    assert writer.bytes == sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    assert not staging_dir(target).exists()


def _corrupt(chunks: list[storage_pb2.ShardFileChunk]) -> None:
    flipped = bytearray(chunks[2].data)
    flipped[10] ^= 0xFF
    chunks[2].data = bytes(flipped)


def _drop_last(chunks: list[storage_pb2.ShardFileChunk]) -> None:
    del chunks[-1]


def _swap(chunks: list[storage_pb2.ShardFileChunk]) -> None:
    chunks[1], chunks[2] = chunks[2], chunks[1]


def _foreign(chunks: list[storage_pb2.ShardFileChunk]) -> None:
    chunks[1].path = "../outside"


def _escaping_header(chunks: list[storage_pb2.ShardFileChunk]) -> None:
    chunks[0].files[0].path = "../../etc/evil"


def _no_header(chunks: list[storage_pb2.ShardFileChunk]) -> None:
    del chunks[0]


def _grown(chunks: list[storage_pb2.ShardFileChunk]) -> None:
    chunks[-1].data += b"x"


@pytest.mark.parametrize("damage", [_corrupt, _drop_last, _swap, _foreign, _escaping_header, _no_header,
                                    _grown])
async def test_a_stream_not_matching_its_header_is_refused_and_leaves_nothing(
        source: Path, tmp_path: Path, damage: Callable[[list[storage_pb2.ShardFileChunk]], None]) -> None:
    chunks = await _chunks(source)
    damage(chunks)
    target = tmp_path / "shard-0"
    with pytest.raises(CopyRefused):
        await write_copy(_replay(chunks), target)
    assert not target.exists()
    assert not staging_dir(target).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source"]


async def test_a_broken_stream_leaves_nothing(source: Path, tmp_path: Path) -> None:
    chunks = await _chunks(source)

    async def breaks() -> AsyncIterator[storage_pb2.ShardFileChunk]:
        for chunk in chunks[:3]:
            yield chunk
        raise ConnectionError("peer gone")

    target = tmp_path / "shard-0"
    with pytest.raises(ConnectionError):
        await write_copy(breaks(), target)
    assert not target.exists() and not staging_dir(target).exists()


async def test_seeding_skips_a_directory_with_files_and_survives_unreachable_peers(tmp_path: Path) -> None:
    full = tmp_path / "shard-0"
    full.mkdir()
    (full / "records.bin").write_bytes(b"mine")
    assert await seed_from_peer([("peer", "127.0.0.1:1")], 0, full) is None
    assert (full / "records.bin").read_bytes() == b"mine"
    empty = tmp_path / "shard-1"
    assert await seed_from_peer([("gone", "127.0.0.1:1")], 1, empty) is None
    assert not empty.exists() and not staging_dir(empty).exists()
