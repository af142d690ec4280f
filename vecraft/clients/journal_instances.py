"""Which journal instance a client call goes to (several instances share one journal in cluster mode).

Calls that need a partition's owner — Append / AppendBatch (only the owner
writes), Subscribe, ReportApplied and Leave (the owner tracks consumers for write
acknowledgements) — go to the instance the client last saw own the
partition; the others (GetOffset, PullWAL, LookupRequest, Stats: any instance
answers them from the stream) go to the *current* instance, the last one that
answered. The client learns owners from answers: a ``not_owner`` refusal names
the owner's address when the refusing instance knows it (trailing metadata
``vecraft-journal-owner: <partition>=<host:port>``), and a call an instance
answers makes it the owner / current one. An instance whose transport failed
(refused connection, reset, a deadline it missed) is *suspect* for
``suspect_s`` and passed over while another instance is not; redirects to it
are not followed meanwhile, since the instance that named it may not yet know
that it died.

Pure bookkeeping (no I/O), so the switching rules are unit-tested without a network.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

#: Trailing metadata naming a partition's owner (see :mod:`.servicer`).
OWNER_KEY = "vecraft-journal-owner"


def parse_addresses(address: str) -> list[str]:
    """``"host:port[,host:port...]"`` -> the addresses in order, without blanks or repeats."""
    out: list[str] = []
    for part in address.split(","):
        part = part.strip()
        if part and part not in out:
            out.append(part)
    return out or [address]


def owner_hints(metadata: Iterable[tuple[str, str | bytes]] | None) -> dict[str, str]:
    """Partition -> owner address, from ``vecraft-journal-owner`` metadata values."""
    hints: dict[str, str] = {}
    for key, value in metadata or ():
        if key != OWNER_KEY:
            continue
        text = value.decode() if isinstance(value, bytes) else value
        partition, sep, owner = text.partition("=")
        if sep and partition and owner:
            hints[partition] = owner
    return hints


class InstanceRouter:
    """Owner per partition, the current instance, and which instances failed lately.

    Args:
        addresses: the configured instances, in preference order (at least one).
        suspect_s: how long an instance that failed is passed over.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(self, addresses: Sequence[str], *, suspect_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not addresses:
            raise ValueError("a journal client needs at least one address")
        self.instances: list[str] = list(addresses)
        self.suspect_s = suspect_s
        self._clock = clock
        self.current = self.instances[0]
        self._owners: dict[str, str] = {}
        self._failed_at: dict[str, float] = {}

    def owner(self, partition: str) -> str | None:
        """The instance last seen owning ``partition``, if any."""
        return self._owners.get(partition)

    def suspect(self, address: str) -> bool:
        failed = self._failed_at.get(address)
        return failed is not None and self._clock() - failed < self.suspect_s

    def target(self, partition: str | None = None) -> str:
        """Where the next call goes: the partition's owner (when one is known and not suspect), else
        the current instance, else the next one that is not suspect (else the current one anyway)."""
        if partition is not None:
            owner = self._owners.get(partition)
            if owner is not None and not self.suspect(owner):
                return owner
        if not self.suspect(self.current):
            return self.current
        start = self.instances.index(self.current) if self.current in self.instances else 0
        for i in range(1, len(self.instances) + 1):
            candidate = self.instances[(start + i) % len(self.instances)]
            if not self.suspect(candidate):
                return candidate
        return self.current

    def succeeded(self, address: str, partition: str | None = None, *, owner_bound: bool = False) -> None:
        """``address`` answered; for an owner-bound call of ``partition`` it is that partition's owner."""
        self._failed_at.pop(address, None)
        self.current = address
        if owner_bound and partition is not None:
            self._owners[partition] = address

    def failed(self, address: str) -> None:
        """``address`` did not answer (transport error, missed deadline): pass it over for a while."""
        self._failed_at[address] = self._clock()
        for partition in [p for p, owner in self._owners.items() if owner == address]:
            del self._owners[partition]

    def not_owner(self, partition: str | None, refused_by: str, owner: str | None) -> None:
        """``refused_by`` does not own ``partition``; ``owner`` is the owner it named (None: unknown)."""
        if partition is None:
            return
        if owner and owner != refused_by:
            if owner not in self.instances:
                self.instances.append(owner)  # the journal knows instances this client was not given
            self._owners[partition] = owner
        elif self._owners.get(partition) == refused_by:
            del self._owners[partition]
        if not owner and self.current == refused_by and len(self.instances) > 1:
            # It knows no owner: ask the next instance next (it may be the one taking over).
            at = self.instances.index(refused_by) if refused_by in self.instances else -1
            self.current = self.instances[(at + 1) % len(self.instances)]
