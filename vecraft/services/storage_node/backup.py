"""Shard replica checkpoints for base backups (the ``BackupShard`` RPC) and peers (``CopyShard``).

Under the replica's apply lock (applies wait, reads go on) the three stores are
copied into a staging directory beside the replica's files, all at the same
applied offsets: an index snapshot (HNSW graphs and metadata, written fresh),
the location index (SQLite's online backup) and the record file (stored as
``records.bin`` whatever its compaction generation, so a restored or seeded copy
opens it without knowing about compaction). The lock is
then released and the files are uploaded to the target as content-addressed
blobs (``blobs/<sha256>``): a file the target already holds is not uploaded
again, so unchanged index files cost nothing in the next backup. ``CopyShard``
(:mod:`.peer_seeding`) streams the same checkpoint to a peer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import shutil
import sqlite3
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from vecraft.services.snapshot_service.layout import blob_key
from vecraft.services.snapshot_service.target import BackupTarget, open_target
from vecraft.services.storage_node.indexes.snapshots import SnapshotStore
from vecraft.services.storage_node.layout import CHECKPOINT_PREFIX
from vecraft.services.storage_node.record_compaction import LEGACY_NAME
from vecraft.services.storage_node.replica import ShardReplica
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.rpc.v1 import storage_pb2

_READ_CHUNK = 1 << 20


def _checkpoint(replica: ShardReplica, staging: Path, offsets: dict[str, tuple[int, int]]) -> None:
    """Copy the replica's stores into ``staging``; the caller holds the apply lock."""
    local = replica.local
    indexes = {c.collection_id: c.index for c in local.registry.collections()}
    SnapshotStore(staging / "snapshot").save(offsets, indexes)
    source = sqlite3.connect(local.locations.path)
    try:
        dest = sqlite3.connect(staging / "locations.sqlite")
        try:
            source.backup(dest)
            # The copy is stored as records.bin whatever the compaction generation of the file
            # (record_compaction.py): the copy's index names no file, which means that one. Its
            # offsets stay as they are (meta records_base says where the file starts).
            with dest:
                dest.execute("DELETE FROM meta WHERE key = 'records_file'")
        finally:
            dest.close()
    finally:
        source.close()
    shutil.copyfile(local.records.path, staging / LEGACY_NAME)


@contextlib.asynccontextmanager
async def checkpoint(replica: ShardReplica, purpose: str
                     ) -> AsyncIterator[tuple[Path, dict[str, tuple[int, int]]]]:
    """A checkpoint of a serving replica in a staging directory, and the offsets it reflects.

    The staging directory is deleted when the block ends, however it ends (a cancelled
    stream included).

    Raises:
        Unavailable: the replica is not serving (``purpose`` says what to do instead).
    """
    engine = replica.engine
    if engine is None or not replica.ready:
        raise Unavailable(f"shard {replica.shard} of this node is not serving; {purpose} another replica")
    staging = Path(tempfile.mkdtemp(prefix=CHECKPOINT_PREFIX, dir=replica.data_dir))
    try:
        async with engine.lock:
            offsets = dict(engine.applier.applied)
            await asyncio.to_thread(_checkpoint, replica, staging, offsets)
        yield staging, offsets
    finally:
        # Synchronous: a cancelled stream's clean-up must not wait for (or lose) a thread.
        shutil.rmtree(staging, ignore_errors=True)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_READ_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _upload(target: BackupTarget, staging: Path, known: set[str]) -> tuple[list[storage_pb2.BackupFile], int]:
    files = []
    uploaded = 0
    for path in sorted(p for p in staging.rglob("*") if p.is_file()):
        digest = sha256_file(path)
        size = path.stat().st_size
        if digest not in known:
            target.put(blob_key(digest), path.read_bytes())
            known.add(digest)
            uploaded += size
        files.append(storage_pb2.BackupFile(path=path.relative_to(staging).as_posix(), sha256=digest,
                                            bytes=size))
    return files, uploaded


async def backup_replica(replica: ShardReplica, request: storage_pb2.BackupShardRequest
                         ) -> storage_pb2.BackupShardResponse:
    began = time.perf_counter()
    target = open_target(request.target)
    async with checkpoint(replica, "back up") as (staging, offsets):
        files, uploaded = await asyncio.to_thread(_upload, target, staging, set(request.known_blobs))
    applied = [storage_pb2.PartitionProgress(partition=p, applied_offset=o, applied_hlc=h)
               for p, (o, h) in sorted(offsets.items())]
    return storage_pb2.BackupShardResponse(shard=replica.shard, applied=applied, files=files,
                                           uploaded_bytes=uploaded, seconds=time.perf_counter() - began)
