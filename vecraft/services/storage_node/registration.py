"""Registration of the storage node with the meta manager (node registry with leases): its hosted
shards and replica number.

Optional: with no meta manager, or one that does not answer, the node serves
anyway and keeps retrying in the background, so start-up order does not matter.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING

import grpc

from vecraft.shared.common.service import grpc_channel
from vecraft.shared.rpc.v1 import meta_pb2, meta_pb2_grpc

if TYPE_CHECKING:
    from vecraft.services.storage_node.main import StorageNode

log = logging.getLogger(__name__)

_RETRY_S = 2.0


async def register_with_meta(node: StorageNode, address: str, ttl_ms: int) -> None:
    """Register, then heartbeat every ttl/3; re-register when the lease is lost. Runs until cancelled."""
    channel = grpc_channel(address)
    stub = meta_pb2_grpc.MetaManagerServiceStub(channel)
    lease = ""
    try:
        while True:
            try:
                if not lease:
                    info = meta_pb2.NodeInfo(node_id=node.node_id, role="storage", address=node.grpc_address,
                                             http_address=node.http_address, shards=node.shards,
                                             replica=node.replica, pid=os.getpid(), state="up")
                    resp = await stub.RegisterNode(meta_pb2.RegisterNodeRequest(node=info, ttl_ms=ttl_ms),
                                                   timeout=5)
                    lease = resp.lease_id
                    log.info("registered with the meta manager", extra={"lease_id": lease})
                else:
                    beat = await stub.Heartbeat(meta_pb2.HeartbeatRequest(node_id=node.node_id,
                                                                          lease_id=lease), timeout=5)
                    if not beat.ok:
                        lease = ""
                        continue
                await asyncio.sleep(ttl_ms / 3000)
            except grpc.RpcError as exc:
                log.debug("meta manager unavailable; retrying", extra={"error": str(exc.code())})
                lease = ""
                await asyncio.sleep(_RETRY_S)
    finally:
        await channel.close()
