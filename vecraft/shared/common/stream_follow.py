"""Following a "snapshot, end marker, then changes" stream that reconnects: the one loop behind every
Watch follower (the gateway's node registry and schema cache, its API keys and quotas, the fail-over
manager's cluster view, a query node's placement map).

Each connection's snapshot is collected until its end marker and handed over in one call (the
follower replaces its state with it); the changes after it one by one. A stream that ends or breaks
is opened again with :class:`~vecraft.shared.common.backoff.Backoff` (reset by a complete snapshot);
meanwhile the follower's last state stays in force.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from vecraft.shared.common.backoff import Backoff
from vecraft.shared.common.errors import VecraftError

log = logging.getLogger(__name__)

E = TypeVar("E")


async def follow_snapshot_stream(open_stream: Callable[[], AsyncIterator[E]], *, is_end: Callable[[E], bool],
                                 snapshot: Callable[[list[E]], None], change: Callable[[E], None],
                                 backoff: Backoff, what: str,
                                 broken: Callable[[], None] | None = None) -> None:
    """Follow the stream until cancelled (never raises otherwise).

    ``broken`` is called each time a connection ends or fails, before the wait; ``what`` names the
    follower in the logs.
    """
    while True:
        pending: list[E] | None = []
        try:
            async for event in open_stream():
                if is_end(event):
                    if pending is not None:
                        snapshot(pending)
                        pending = None
                        backoff.reset()
                elif pending is not None:
                    pending.append(event)
                else:
                    change(event)
            log.warning("%s watch ended; the last state stays in force until it is back", what)
        except asyncio.CancelledError:
            raise
        except VecraftError as exc:
            log.warning("%s watch interrupted; the last state stays in force until it is back: %s", what,
                        exc.message)
        except Exception:
            log.exception("%s watch failed; the last state stays in force until it is back", what)
        if broken is not None:
            broken()
        await backoff.sleep()
