"""How far each journal partition may be trimmed: the GC floor, from what every reader still needs.

Pure: the service (:mod:`.main`) gathers the inputs (the journal's Stats, the
archive's manifests, the consumers it remembers) and applies the answer.

An entry below a partition's floor is needed by nobody:

- **replicas**: every storage replica (role ``replica``) of the partition has
  applied it. The floor is the lowest applied offset itself, not one past it:
  a follower re-reads its last applied entry to check the journal's history
  before it goes on (``shared/replica/history.py``).
- **remembered consumers**: a replica the journal no longer lists (its node is
  down, or the journal restarted) holds the floor at the offset it had applied
  when last seen, for ``retention_ms`` after it was last seen live. After that it
  no longer holds GC back: it has to be rebuilt from a backup or a peer when it
  returns (its follower halts with cause ``trimmed`` and says so).
- query-processor caches (role ``cache``) hold nothing: a cache is a copy the
  storage replicas can stand in for. One that needs trimmed entries (it was
  down, or fell that far behind) stops following the journal and its
  processor answers through the storage nodes, as with ``--no-cache``.
- **the backup target** (``--backup-target``): only archived entries may go,
  and the last archived one stays (archiving re-reads it to check the history
  before appending); and none after what the newest backed-up copy of each
  shard reflects, since a replica seeded from that copy (a re-placed replica,
  a replaced disk) replays the journal from there. Without a target, nothing
  is trimmed unless the operator says the storage replicas' files are the only
  copy to keep (``--trim-without-backup``).
- the journal itself keeps the entries inside the idempotency window and the
  head entry (``Journal.trim``), and never trims the ``system`` partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vecraft.shared.model.routing import SYSTEM_PARTITION
from vecraft.shared.rpc.v1 import journal_pb2

ROLE_CACHE = "cache"


@dataclass(slots=True)
class Consumer:
    """What the compactor remembers of one replica of one partition."""

    applied: int
    last_live_ms: int


@dataclass(frozen=True, slots=True)
class Floor:
    """The trim floor of one partition and what holds it there."""

    partition: str
    offset: int
    held_by: str


@dataclass(slots=True)
class Memory:
    """Consumers by ``(partition, replica_id)``, updated from each Stats (persisted by the service)."""

    consumers: dict[tuple[str, str], Consumer] = field(default_factory=dict)

    def observe(self, stats: journal_pb2.StatsResponse, now_ms: int) -> None:
        """Record every replica the journal lists (caches hold nothing); live ones are seen now."""
        for r in stats.replicas:
            if r.role == ROLE_CACHE:
                continue
            key = (r.partition, r.replica_id)
            known = self.consumers.get(key)
            # A consumer listed but not live keeps the time it was last seen live (now, if never seen).
            last_live = now_ms if r.live or known is None else known.last_live_ms
            self.consumers[key] = Consumer(r.applied_offset, last_live)

    def forget_expired(self, now_ms: int, retention_ms: int) -> dict[tuple[str, str], Consumer]:
        """Drop the replicas not live for longer than ``retention_ms``; returns what was dropped."""
        gone = {key: c for key, c in self.consumers.items() if now_ms - c.last_live_ms > retention_ms}
        for key in gone:
            del self.consumers[key]
        return gone


def floors(stats: journal_pb2.StatsResponse, memory: Memory, *,
           bounds: Mapping[str, Mapping[str, int]]) -> list[Floor]:
    """The floor of every data partition ``stats`` lists.

    ``bounds``: more limits by name (``"archive"``: last archived offset per
    partition, ``"backup"``: what the newest backed-up shard copies reflect); a
    partition a bound does not list gets 0 from it (nothing may go). A floor at or
    below the first stored offset trims nothing."""
    out = []
    for p in stats.partitions:
        if p.partition == SYSTEM_PARTITION:
            continue
        limits: list[tuple[int, str]] = [(p.head_offset, "head")]
        limits += [(c.applied, f"replica {rid}") for (part, rid), c in memory.consumers.items()
                   if part == p.partition]
        limits += [(bound.get(p.partition, 0), name) for name, bound in bounds.items()]
        offset, held_by = min(limits, key=lambda limit: limit[0])
        out.append(Floor(p.partition, offset, held_by))
    return out


def trimmable(floors_: Iterable[Floor], first_offsets: Mapping[str, int]) -> list[Floor]:
    """The floors above their partition's first stored offset (something to trim)."""
    return [f for f in floors_ if f.offset > first_offsets.get(f.partition, 1)]
