"""Following the meta manager's placement map: which shards this storage node is to host.

:func:`follow_placement` watches the ``placement`` topic (the current map as a
snapshot, then every new version) and hands each map to a callback; when the
stream breaks (the meta manager restarts, or fails over) it reconnects with
back-off and the node keeps what it hosts meanwhile (the last map stands).
:func:`~vecraft.clients.meta.assigned_shards` reads this node's shards out of a map.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from vecraft.clients.meta import MetaClient
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.rpc.v1 import meta_pb2

log = logging.getLogger(__name__)

#: Seconds between reconnects of a broken watch, growing to the last one.
RETRY_S = (0.2, 0.5, 1.0, 2.0)


async def follow_placement(meta: MetaClient, on_map: Callable[[meta_pb2.PlacementMap], None], *,
                           retry_s: tuple[float, ...] = RETRY_S) -> None:
    """Call ``on_map`` with the current map and every later version, until cancelled.

    Maps of version 0 (none written yet) are not passed on. The same version may be
    passed again after a reconnect; ``on_map`` ignores what it already has.
    """
    attempt = 0
    reachable = True
    while True:
        try:
            async for event in meta.watch(["placement"], snapshot_end=True):
                if not reachable:
                    log.info("placement watch reconnected")
                reachable, attempt = True, 0
                if (event.WhichOneof("item") == "placement" and event.type == meta_pb2.WatchEvent.PUT
                        and event.placement.version > 0):
                    on_map(event.placement)
            error = "the stream ended"
        except VecraftError as exc:
            error = exc.message
        if reachable:
            log.warning("placement watch broken (%s); keeping the last map and reconnecting", error)
        reachable = False
        await asyncio.sleep(retry_s[min(attempt, len(retry_s) - 1)])
        attempt += 1
