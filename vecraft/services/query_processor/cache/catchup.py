"""Reading the journal into the cache: the journal calls the processor uses, catch-up and warm-up.

:class:`JournalReader` is the part of ``JournalClient`` the processor needs;
tests pass fakes. :func:`catch_up` pulls a partition from its applied offset
to a target and applies the entries at once (pull-before-read is never slowed
by the apply delay); :func:`warm_up` runs it for every partition at start so a
restarted processor serves from a current cache.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from vecraft.services.query_processor import metrics
from vecraft.services.query_processor.cache.shard_cache import ShardCache
from vecraft.shared.common.errors import Unavailable
from vecraft.shared.replica import PartitionHalted, monotonic_ms
from vecraft.shared.rpc.v1 import journal_pb2

log = logging.getLogger(__name__)


class Subscription(Protocol):
    """Push stream of one partition (``JournalClient.subscribe``): gapless, offset order."""

    head_offset: int
    head_hlc: int

    def __aiter__(self) -> AsyncIterator[journal_pb2.JournalEntry]: ...

    def oldest_pending_hlc(self) -> int: ...

    def skip_to(self, offset: int) -> None: ...

    async def close(self) -> None: ...


class JournalReader(Protocol):
    """The journal verbs the query processor uses. Errors are VecraftErrors (Unavailable when down)."""

    async def get_offset(self, partition: str) -> tuple[int, int]: ...

    async def get_offsets(self, partitions: Sequence[str] = ()) -> dict[str, tuple[int, int]]: ...

    async def pull(self, partition: str, from_offset: int,
                   to_offset: int = 0) -> list[journal_pb2.JournalEntry]: ...

    def subscribe(self, partition: str, from_offset: int, *, replica_id: str, shards: Sequence[int] = (),
                  role: str = "replica", delay_ms: int = 0) -> Subscription: ...


async def catch_up_locked(journal: JournalReader, cache: ShardCache, partition: str, target: int) -> int:
    """Pull ``partition`` up to ``target`` and apply it; the caller holds ``cache.lock(partition)``.

    Pages through the journal (it caps entries per pull) until the applied
    offset reaches ``target``. Returns the number of entries applied.

    Raises:
        Unavailable: the journal cannot be reached, or it has fewer committed
            entries than ``target`` (a target from another journal incarnation).
    """
    applied = cache.applied(partition)[0]
    count = 0
    while applied < target:
        entries = await journal.pull(partition, applied + 1, target)
        if not entries:
            raise Unavailable(f"journal returned no entries for {partition} after offset {applied} "
                              f"(target {target})", details={"partition": partition, "target": target})
        rest = await cache.apply_locked(partition, entries)
        if rest:
            # The journal's pull is gapless; a gap means a broken reply, not a retry case.
            raise Unavailable(f"journal pull of {partition} skipped offsets before {rest[0].offset}")
        new_applied = cache.applied(partition)[0]
        count += new_applied - applied
        applied = new_applied
    return count


async def warm_up(journal: JournalReader, cache: ShardCache, *, retry_s: float = 0.5) -> int:
    """Bring every partition of ``cache`` to the journal head read at the start of the call.

    Retries (forever, with ``retry_s`` pauses) while the journal is
    unavailable: a processor that cannot read the journal must not become
    ready. Returns the number of entries applied.
    """
    while True:
        heard = monotonic_ms()
        try:
            heads = await journal.get_offsets(cache.partitions)
            break
        except Unavailable as err:
            log.warning("warm-up waits for the journal: %s", err.message)
            await asyncio.sleep(retry_s)
    total = 0
    for partition in cache.partitions:
        head, head_hlc = heads.get(partition, (0, 0))
        while True:
            try:
                async with cache.lock(partition):
                    total += await catch_up_locked(journal, cache, partition, head)
                break
            except PartitionHalted:
                break  # reported loudly by the cache; never retried
            except Unavailable as err:
                log.warning("warm-up of %s retries: %s", partition, err.message)
                await asyncio.sleep(retry_s)
        if cache.halts.halted(partition):
            continue
        cache.freshness[partition].note_head(head, head_hlc, heard)
        metrics.HEAD_OFFSET.labels(partition).set(head)
    return total
