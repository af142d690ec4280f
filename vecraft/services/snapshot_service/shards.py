"""Shard replica files in base backups: one serving replica of every shard copies a checkpoint.

The placement map says which storage nodes hold each shard; the registry says
which of them serve it now. The first serving replica of each shard is asked
for a checkpoint (``BackupShard``), the next one if it fails. A shard no
replica could copy is left out of the backup: a restore then rebuilds it by
replaying the journal, as it does for every shard of a journal-only backup.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from vecraft.clients.meta import MetaClient
from vecraft.services.snapshot_service.archive import CorruptBackup, Progress
from vecraft.services.snapshot_service.layout import blob_key
from vecraft.services.snapshot_service.target import BackupTarget, sha256
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.rpc.v1 import meta_pb2, storage_pb2, storage_pb2_grpc

log = logging.getLogger(__name__)

BACKUP_SHARD_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class ShardFiles:
    shard: int
    node_id: str
    #: partition -> [offset, hlc] the files reflect.
    applied: dict[str, list[int]]
    #: {"path", "sha256", "bytes"} per file, paths inside the replica's directory.
    files: list[dict[str, object]]
    uploaded_bytes: int
    seconds: float


def serving_replicas(placement: meta_pb2.PlacementMap, nodes: Sequence[meta_pb2.NodeInfo]
                     ) -> dict[int, list[meta_pb2.NodeInfo]]:
    """Per shard of the map, the storage nodes serving it now (map order)."""
    by_id = {n.node_id: n for n in nodes if n.role == "storage"}
    down = set(placement.down_nodes)
    serving = {}
    for assignment in placement.shards:
        serving[assignment.shard] = [by_id[n] for n in assignment.storage_nodes
                                     if n in by_id and n not in down and assignment.shard in by_id[n].shards]
    return serving


async def _backup_one(node: meta_pb2.NodeInfo, shard: int, target: str,
                      known: Sequence[str]) -> storage_pb2.BackupShardResponse:
    async with grpc_channel(node.address) as channel:
        stub = storage_pb2_grpc.StorageNodeServiceStub(channel)
        request = storage_pb2.BackupShardRequest(shard=shard, target=target, known_blobs=known)
        response: storage_pb2.BackupShardResponse = await stub.BackupShard(request,
                                                                           timeout=BACKUP_SHARD_TIMEOUT_S)
        return response


async def backup_shards(meta: MetaClient, target: str, known_blobs: set[str],
                        progress: Progress | None = None) -> tuple[list[ShardFiles], int]:
    """Checkpoint every shard of the placement map; returns the copies and the map's shard count."""
    placement = await meta.get_placement_map()
    nodes = await meta.list_nodes("storage")
    copies = []
    serving = serving_replicas(placement, nodes)
    for done, (shard, replicas) in enumerate(sorted(serving.items())):
        if progress is not None:
            progress("shards", done, len(serving))
        for node in replicas:
            try:
                r = await _backup_one(node, shard, target, sorted(known_blobs))
            except grpc.aio.AioRpcError as exc:
                log.warning("shard backup failed on %s: %s", node.node_id, exc.details(),
                            extra={"shard": shard, "node_id": node.node_id})
                continue
            known_blobs.update(f.sha256 for f in r.files)
            copies.append(ShardFiles(
                shard, node.node_id, {p.partition: [p.applied_offset, p.applied_hlc] for p in r.applied},
                [{"path": f.path, "sha256": f.sha256, "bytes": f.bytes} for f in r.files],
                r.uploaded_bytes, r.seconds))
            break
        else:
            log.warning("no replica of shard %d could be backed up; a restore replays it from the journal",
                        shard, extra={"shard": shard})
    return copies, len(placement.shards)


def download_copy(target: BackupTarget, shard: int, copy: dict[str, Any], directory: Path) -> int:
    """Write a shard copy's files (each checked against its SHA-256, fsynced) into ``directory``;
    returns the bytes written. Raises CorruptBackup naming a damaged file."""
    size = 0
    for f in copy["files"]:
        key = blob_key(str(f["sha256"]))
        data = target.get(key)
        if sha256(data) != f["sha256"]:
            raise CorruptBackup(f"{key} (shard {shard}: {f['path']}): checksum mismatch")
        path = directory / str(f["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        size += len(data)
    return size
