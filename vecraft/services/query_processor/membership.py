"""Registration of the query processor with the meta manager (node registry with leases).

Optional: with no meta manager, or one that does not answer, the processor
serves anyway and keeps retrying in the background, so start-up order does
not matter and the gateway can still be given processor addresses directly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from vecraft.shared.common.errors import VecraftError
from vecraft.shared.common.grpc_errors import translate_rpc_error
from vecraft.shared.common.service import grpc_channel
from vecraft.shared.rpc.v1 import meta_pb2, meta_pb2_grpc

log = logging.getLogger(__name__)

_RETRY_S = 2.0


async def keep_registered(address: str, node: Callable[[], meta_pb2.NodeInfo], ttl_ms: int) -> None:
    """Register ``node()``, heartbeat every ttl/3, re-register when the lease is lost.

    Runs until cancelled; never raises for an unreachable meta manager.
    ``node`` is called at each registration so the info reflects the moment.
    """
    channel = grpc_channel(address)
    stub = meta_pb2_grpc.MetaManagerServiceStub(channel)
    lease = ""
    reachable = True
    try:
        while True:
            try:
                with translate_rpc_error():
                    if not lease:
                        info = node()
                        resp = await stub.RegisterNode(
                            meta_pb2.RegisterNodeRequest(node=info, ttl_ms=ttl_ms), timeout=5)
                        lease = resp.lease_id
                        log.info("registered with the meta manager",
                                 extra={"lease_id": lease, "node_id": info.node_id})
                    else:
                        beat = await stub.Heartbeat(
                            meta_pb2.HeartbeatRequest(node_id=node().node_id, lease_id=lease), timeout=5)
                        if not beat.ok:
                            lease = ""
                            continue
                reachable = True
                await asyncio.sleep(ttl_ms / 3000)
            except VecraftError as err:
                if reachable:
                    log.warning("meta manager unavailable; serving anyway and retrying",
                                extra={"error": err.message})
                reachable = False
                lease = ""
                await asyncio.sleep(_RETRY_S)
    finally:
        await channel.close()
