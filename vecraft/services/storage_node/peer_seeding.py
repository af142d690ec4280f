"""Seeding a shard replica from a live peer replica (the ``CopyShard`` RPC), no backup target needed.

A replica with no files would otherwise replay the whole journal, which fails
once the compactor trimmed it (the follower halts with ``trimmed``) and is slow
even when it did not. The serving side (:func:`stream_copy`) takes the same
checkpoint a base backup takes (:func:`.backup.checkpoint`: under the apply
lock, into a staging directory deleted when the stream ends or is cancelled)
and streams it: a header with the applied offsets and every file's size and
SHA-256, then the files in chunks of at most 1 MiB. The seeding side
(:func:`seed_from_peer`) writes the stream into a staging directory beside the
replica's, checks every file against the header (:class:`CopyWriter`), and
moves it into place in one rename; the replica then opens it like its own
files and replays only the journal entries after the copy. Any failure leaves
no files behind: the next peer is tried, then the journal as before.

Unlike a backed-up copy, a peer's copy needs no check that it is of the
journal's history: the peer follows that journal now.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import grpc

from vecraft.services.storage_node.backup import checkpoint, sha256_file
from vecraft.services.storage_node.replica import ShardReplica
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.common.grpc_errors import from_rpc_error
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.rpc.v1 import storage_pb2, storage_pb2_grpc

log = logging.getLogger(__name__)

#: Largest piece of a file in one stream message (well under gRPC's message limit).
CHUNK_BYTES = 1 << 20
#: A copy stalled this long between two messages is given up (the next peer is tried).
MESSAGE_TIMEOUT_S = 60.0


class CopyRefused(Exception):
    """The stream does not match its header: a file is unknown, out of order, short, long or damaged."""


# ---- serving side ----------------------------------------------------------------------------
async def stream_copy(replica: ShardReplica) -> AsyncIterator[storage_pb2.ShardFileChunk]:
    """The header, then every file of a fresh checkpoint of ``replica`` in chunks.

    Raises:
        Unavailable: the replica is not serving (the peer asks another one).
    """
    async with checkpoint(replica, "copy from") as (staging, offsets):
        async for chunk in stream_directory(staging, offsets):
            yield chunk


async def stream_directory(directory: Path, applied: dict[str, tuple[int, int]]
                           ) -> AsyncIterator[storage_pb2.ShardFileChunk]:
    """The header for ``directory``'s files (reflecting ``applied``), then the files in chunks."""
    paths = sorted(p for p in directory.rglob("*") if p.is_file())
    files = [storage_pb2.BackupFile(path=p.relative_to(directory).as_posix(),
                                    sha256=await asyncio.to_thread(sha256_file, p), bytes=p.stat().st_size)
             for p in paths]
    yield storage_pb2.ShardFileChunk(
        applied=[storage_pb2.PartitionProgress(partition=p, applied_offset=o, applied_hlc=h)
                 for p, (o, h) in sorted(applied.items())], files=files)
    for path, meta in zip(paths, files, strict=True):
        with open(path, "rb") as f:
            offset = 0
            while data := await asyncio.to_thread(f.read, CHUNK_BYTES):
                yield storage_pb2.ShardFileChunk(path=meta.path, offset=offset, data=data)
                offset += len(data)


# ---- seeding side ----------------------------------------------------------------------------
class CopyWriter:
    """Writes a ``CopyShard`` stream into ``staging`` and checks it against its header.

    Chunks must come file by file in order (each at the offset written so far); a
    path not in the header, or one leaving the directory, is refused. :meth:`finish`
    checks that every listed file arrived whole with its SHA-256 and fsyncs it.
    """

    def __init__(self, staging: Path) -> None:
        self.staging = staging
        self.applied: dict[str, tuple[int, int]] = {}
        self._expected: dict[str, storage_pb2.BackupFile] = {}
        self._written: dict[str, int] = {}
        self._digests: dict[str, hashlib._Hash] = {}
        self._open: tuple[str, BinaryIO] | None = None
        self.bytes = 0

    @property
    def files(self) -> int:
        return len(self._expected)

    def header(self, chunk: storage_pb2.ShardFileChunk) -> None:
        if chunk.data or chunk.path or not chunk.files:
            raise CopyRefused("the stream does not start with a header listing its files")
        for f in chunk.files:
            parts = PurePosixPath(f.path).parts
            if not parts or PurePosixPath(f.path).is_absolute() or ".." in parts:
                raise CopyRefused(f"file {f.path!r} is not inside the replica directory")
            self._expected[f.path] = f
        self.applied = {p.partition: (p.applied_offset, p.applied_hlc) for p in chunk.applied}
        self.staging.mkdir(parents=True)

    def write(self, chunk: storage_pb2.ShardFileChunk) -> None:
        expected = self._expected.get(chunk.path)
        if expected is None:
            raise CopyRefused(f"file {chunk.path!r} is not in the header")
        written = self._written.get(chunk.path, 0)
        if chunk.offset != written:
            raise CopyRefused(f"{chunk.path}: a chunk at offset {chunk.offset}, expected {written}")
        if written + len(chunk.data) > expected.bytes:
            raise CopyRefused(f"{chunk.path}: longer than the {expected.bytes} bytes of the header")
        out = self._file(chunk.path)
        out.write(chunk.data)
        self._digests.setdefault(chunk.path, hashlib.sha256()).update(chunk.data)
        self._written[chunk.path] = written + len(chunk.data)
        self.bytes += len(chunk.data)

    def _file(self, path: str) -> BinaryIO:
        if self._open is not None and self._open[0] == path:
            return self._open[1]
        if path in self._written:
            raise CopyRefused(f"{path}: its chunks are not consecutive in the stream")
        self._close()
        target = self.staging / path
        target.parent.mkdir(parents=True, exist_ok=True)
        self._open = (path, open(target, "wb"))  # noqa: SIM115 - closed by _close
        return self._open[1]

    def _close(self) -> None:
        if self._open is not None:
            out = self._open[1]
            self._open = None
            out.flush()
            os.fsync(out.fileno())
            out.close()

    def finish(self) -> None:
        """Check every file against the header (empty files are created here)."""
        self._close()
        if not self._expected:
            raise CopyRefused("the stream ended before its header")
        for path, f in self._expected.items():
            if f.bytes == 0 and path not in self._written:
                (self.staging / path).parent.mkdir(parents=True, exist_ok=True)
                (self.staging / path).touch()
            written = self._written.get(path, 0)
            if written != f.bytes:
                raise CopyRefused(f"{path}: {written} bytes arrived, the header says {f.bytes}")
            digest = self._digests.get(path, hashlib.sha256()).hexdigest()
            if digest != f.sha256:
                raise CopyRefused(f"{path}: SHA-256 {digest} does not match the header's {f.sha256}")

    def abort(self) -> None:
        """Close what is open and delete the staging directory."""
        if self._open is not None:
            self._open[1].close()
            self._open = None
        shutil.rmtree(self.staging, ignore_errors=True)


@dataclass(frozen=True)
class PeerSeeded:
    peer: str
    #: partition -> (offset, hlc) the copied files reflect.
    applied: dict[str, tuple[int, int]]
    files: int
    bytes: int
    seconds: float


def staging_dir(directory: Path) -> Path:
    """Beside the replica's directory, so the final rename stays on one file system."""
    return directory.with_name(f".seeding-{directory.name}")


async def write_copy(chunks: AsyncIterator[storage_pb2.ShardFileChunk], directory: Path
                     ) -> CopyWriter:
    """Write a stream into the staging directory, check it, and rename it to ``directory``.

    On any failure (raised) nothing is left: neither the staging directory nor ``directory``'s
    contents change.
    """
    writer = CopyWriter(staging_dir(directory))
    shutil.rmtree(writer.staging, ignore_errors=True)
    try:
        first = True
        async for chunk in chunks:
            if first:
                writer.header(chunk)
                first = False
            else:
                writer.write(chunk)
        writer.finish()
        if directory.exists():
            directory.rmdir()  # empty (checked by the caller); refuses otherwise
        os.replace(writer.staging, directory)
    except BaseException:
        writer.abort()
        raise
    return writer


async def _copy_from(address: str, shard: int, directory: Path) -> CopyWriter:
    async with grpc_channel(address) as channel:
        stub = storage_pb2_grpc.StorageNodeServiceStub(channel)
        call = stub.CopyShard(storage_pb2.CopyShardRequest(shard=shard))
        try:
            return await write_copy(_within(call, MESSAGE_TIMEOUT_S), directory)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from exc
        finally:
            call.cancel()


async def _within(call: grpc.aio.UnaryStreamCall, timeout_s: float
                  ) -> AsyncIterator[storage_pb2.ShardFileChunk]:
    """The stream's messages, each awaited at most ``timeout_s`` (a stalled peer is given up)."""
    iterator = call.__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(iterator.__anext__(), timeout_s)
        except StopAsyncIteration:
            return
        yield chunk


async def seed_from_peer(peers: Sequence[tuple[str, str]], shard: int, directory: Path
                         ) -> PeerSeeded | None:
    """Fill ``directory`` (absent or empty) with a copy of ``shard`` from the first peer that gives one.

    ``peers``: (node id, gRPC address) of nodes serving the shard, in the order to try.
    Returns None when none could (each failure logged; the replica then rebuilds from the journal).
    """
    if directory.exists() and any(directory.iterdir()):
        return None
    for peer, address in peers:
        began = time.perf_counter()
        try:
            writer = await _copy_from(address, shard, directory)
        except (VecraftError, CopyRefused, OSError, TimeoutError) as exc:
            log.warning("seeding shard %d from peer %s failed: %s", shard, peer, exc,
                        extra={"shard": shard, "peer": peer, "address": address})
            continue
        seeded = PeerSeeded(peer, writer.applied, writer.files, writer.bytes,
                            time.perf_counter() - began)
        log.info("shard replica seeded from a peer", extra={
            "shard": shard, "peer": peer, "applied": seeded.applied, "files": seeded.files,
            "bytes": seeded.bytes, "seconds": round(seeded.seconds, 3)})
        return seeded
    return None
