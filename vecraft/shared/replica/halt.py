"""Stopping a replica's partition loudly when it cannot go on applying it.

A replica that cannot apply an entry (``UnknownCollection``, a failing index,
a journal whose history diverged from what the replica applied) must not
retry forever behind a READY probe, and must not skip the entry: it *halts*
the partition. From then on:

- the partition's feeders (push stream, pull-before-read) stop applying it;
- reads of the partition answer 503 naming the reason (:meth:`PartitionHalts.check`);
- the service's readiness goes false (the ``on_halt`` callback);
- ``vecraft_replica_halts_total{partition,cause}`` counts it, and a diverged
  journal also counts in ``vecraft_replica_diverged_total{partition}``;
- a CRITICAL log line says what happened and what an operator must do.

A halt lasts until the process restarts (or, for a cache, until it is rebuilt).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal

from vecraft.shared.common.errors import Unavailable, VecraftError
from vecraft.shared.common.metrics import counter, gauge

log = logging.getLogger(__name__)

HaltCause = Literal["apply_failed", "diverged", "trimmed"]

HALTS = counter("replica", "halts", "partitions a replica stopped applying, by cause", ["partition", "cause"])
DIVERGED = counter("replica", "diverged", "journal histories that no longer match what the replica applied",
                   ["partition"])
HALTED = gauge("replica", "halted", "state", "1 while the partition is halted on this replica", ["partition"])


def describe(exc: BaseException) -> str:
    """The reason text of an apply failure."""
    return exc.message if isinstance(exc, VecraftError) else f"{type(exc).__name__}: {exc}"


class PartitionHalted(Unavailable):
    """A read or apply of a partition this replica halted."""


class PartitionHalts:
    """Which partitions this replica halted, and why. Call from the event loop."""

    def __init__(self, *, on_halt: Callable[[str, VecraftError], None] | None = None) -> None:
        self.on_halt = on_halt
        self._halted: dict[str, tuple[HaltCause, str]] = {}

    def halt(self, partition: str, cause: HaltCause, reason: str, *, action: str = "") -> PartitionHalted:
        """Halt ``partition`` (idempotent); returns the error its readers get."""
        if partition not in self._halted:
            self._halted[partition] = (cause, reason)
            HALTS.labels(partition, cause).inc()
            HALTED.labels(partition).set(1)
            if cause == "diverged":
                DIVERGED.labels(partition).inc()
            log.critical("replica halted %s: %s%s", partition, reason, f"; {action}" if action else "",
                         extra={"partition": partition, "cause": cause})
            err = self.error(partition)
            if self.on_halt is not None:
                self.on_halt(partition, err)
        return self.error(partition)

    def clear(self, partition: str) -> None:
        """The partition was rebuilt from scratch: it may be applied again."""
        if self._halted.pop(partition, None) is not None:
            HALTED.labels(partition).set(0)

    def halted(self, partition: str) -> bool:
        return partition in self._halted

    @property
    def any(self) -> bool:
        return bool(self._halted)

    def reasons(self) -> dict[str, str]:
        return {p: reason for p, (_cause, reason) in self._halted.items()}

    def error(self, partition: str) -> PartitionHalted:
        cause, reason = self._halted[partition]
        return PartitionHalted(f"partition {partition} is halted on this replica ({cause}): {reason}",
                               details={"partition": partition, "cause": cause})

    def check(self, partition: str) -> None:
        """Raise :class:`PartitionHalted` (503, with the reason) if ``partition`` is halted."""
        if partition in self._halted:
            raise self.error(partition)
