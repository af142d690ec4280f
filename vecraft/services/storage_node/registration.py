"""Registration of the storage node with the meta manager (node registry with leases).

The node stays registered through :meth:`MetaClient.keep_registered
<vecraft.clients.meta.MetaClient.keep_registered>` (heartbeat at a
third of the lease, registered again at once when ``changed`` is set, deregistered
when the node stops on purpose). What it declares (:func:`node_info`):

- ``shards``: the shards it serves now (caught up);
- ``loading_shards``: shards it hosts that are still catching up;
- ``local_shards``: every ``shard-<s>`` directory of its data dir, hosted or not
  (the fail-over manager places a shard where its files already are);
- ``replica``: its ``--replica`` flag.

Optional: with no meta manager, or one that does not answer, the node serves
anyway and keeps retrying in the background, so start-up order does not matter.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING

from vecraft.services.storage_node.layout import local_shards
from vecraft.shared.rpc.v1 import meta_pb2

if TYPE_CHECKING:
    from vecraft.clients.meta import MetaClient
    from vecraft.services.storage_node.main import StorageNode


def node_info(node: StorageNode) -> meta_pb2.NodeInfo:
    """What the node declares now."""
    return meta_pb2.NodeInfo(node_id=node.node_id, role="storage", address=node.grpc_address,
                             http_address=node.http_address, shards=node.serving_shards(),
                             loading_shards=node.loading_shards(),
                             local_shards=local_shards(Path(node.cfg.data_dir)), replica=node.replica,
                             pid=os.getpid(), state="up")


async def register_with_meta(node: StorageNode, meta: MetaClient, ttl_ms: int,
                             changed: asyncio.Event) -> None:
    """Stay registered until cancelled (then leave the registry); ``changed`` re-registers at once."""
    await meta.keep_registered(lambda: node_info(node), ttl_ms, changed=changed)
