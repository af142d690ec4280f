"""The storage node's binding of the shared partition follower (:mod:`vecraft.shared.replica.follower`).

The node follows each data partition with a
:class:`~vecraft.shared.replica.follower.PartitionFollower` driving its
durable :class:`~.engine.ApplyEngine` (record file + SQLite + indexes); this
module only names the node's metrics and how a follower is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vecraft.services.storage_node import metrics
from vecraft.services.storage_node.journal_replay.engine import ApplyEngine
from vecraft.shared.replica.follower import FollowerObserver, HeadWatch, PartitionFollower, SyncOutcome
from vecraft.shared.replica.history import STORAGE_ACTION

if TYPE_CHECKING:
    from vecraft.clients.journal import JournalClient

__all__ = ["HeadWatch", "PartitionFollower", "StorageObserver", "SyncOutcome", "storage_follower"]


class StorageObserver(FollowerObserver):
    """The storage node's follower metrics (labelled with the replica's shard)."""

    def __init__(self, engine: ApplyEngine) -> None:
        self.engine = engine
        self.shard = str(engine.applier.shard)

    def head(self, partition: str, offset: int) -> None:
        metrics.HEAD_OFFSET.labels(self.shard, partition).set(offset)
        applied = self.engine.applied(partition)[0]
        metrics.REPLAY_LAG.labels(self.shard, partition).set(max(0, offset - applied))

    def staleness(self, partition: str, ms: int) -> None:
        metrics.STALENESS.labels(self.shard, partition).set(ms)

    def sync_done(self, partition: str, pulled: bool, seconds: float) -> None:
        metrics.SYNCS.labels(str(pulled).lower()).inc()
        metrics.SYNC_LATENCY.observe(seconds)


def storage_follower(partition: str, engine: ApplyEngine, journal: JournalClient, *, replica_id: str,
                     shard: int, apply_delay_ms: int = 0) -> PartitionFollower:
    """A follower of ``partition`` applying durably through ``engine`` (role ``replica``: it acks writes)."""
    return PartitionFollower(partition, engine, journal, replica_id=replica_id, shards=[shard],
                             role="replica", delay_ms=apply_delay_ms, action=STORAGE_ACTION,
                             observer=StorageObserver(engine), batch_entries=2048)
