"""Reports applied offsets to the journal, batched.

The journal answers ``ack=all`` writes once the live replicas of the touched
shards have reported applying them, so reports must be prompt; but one RPC per
applied chunk would be wasteful under load. :class:`AppliedReporter` keeps the
latest applied offset per partition and one sender task: a report goes out as
soon as the previous one has finished, carrying whatever was applied
meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vecraft.clients.journal import JournalClient

log = logging.getLogger(__name__)


class AppliedReporter:
    def __init__(self, journal: JournalClient, replica_id: str) -> None:
        self.journal = journal
        self.replica_id = replica_id
        self._applied: dict[str, int] = {}
        self._reported: dict[str, int] = {}
        self._wake = asyncio.Event()

    def applied(self, partition: str, offset: int) -> None:
        """Record a committed applied offset (cheap; call after every commit)."""
        if offset > self._applied.get(partition, 0):
            self._applied[partition] = offset
            self._wake.set()

    async def run(self) -> None:
        """Send reports until cancelled; a failed report is retried with the next one."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            for partition, offset in list(self._applied.items()):
                if offset <= self._reported.get(partition, 0):
                    continue
                try:
                    await self.journal.report_applied(partition, self.replica_id, offset)
                    self._reported[partition] = offset
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - best effort; retried until it succeeds
                    log.debug("report_applied failed; retrying", extra={"partition": partition,
                                                                        "error": str(exc)})
                    await asyncio.sleep(0.2)
                    self._wake.set()
