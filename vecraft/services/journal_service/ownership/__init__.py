"""Partition ownership: which journal instance writes which partition.

:class:`Ownership` is what the journal's verbs ask; :class:`OwnAll` is the
single-instance default (every partition owned, nothing refused), and
:class:`~.leased.LeasedOwnership` (cluster mode: ``--backend jetstream`` with
``--meta-address``) takes partitions over through the meta manager's leases
and fences them into the JetStream streams (docs/journal.md, "Fail-over").
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

from vecraft.shared.common.errors import NotOwner


class Ownership(abc.ABC):
    """Which partitions this journal instance writes, and where the others are written."""

    @abc.abstractmethod
    def check_write(self, partition: str) -> None:
        """Return if this instance may append to ``partition`` now.

        Raises:
            NotOwner: it may not (the owner's address in ``details`` when known).
        """

    @abc.abstractmethod
    def check_tracking(self, partition: str) -> None:
        """Return if this instance should serve a Subscribe, ReportApplied or Leave of ``partition``: it
        owns it, or no other owner is known (then it serves the stream itself rather than leave it
        unserved).

        Raises:
            NotOwner: another instance owns it and its address is known.
        """

    @abc.abstractmethod
    def not_owner(self, partition: str, why: str = "") -> NotOwner:
        """The NotOwner error for ``partition`` (naming the owner when known)."""

    @abc.abstractmethod
    def generation(self, partition: str) -> int:
        """Changes when ``partition`` stops being served here (ownership lost, or another owner
        appeared): Subscribe streams of it end then, and their clients reconnect to the owner."""

    @abc.abstractmethod
    def owned(self) -> list[str]:
        """Partitions this instance owns now."""

    def describe(self) -> dict[str, object]:
        """For ``/healthz``."""
        return {}

    async def release_all(self) -> None:  # noqa: B027 - a no-op unless ownership is leased
        """Give every owned partition up (graceful shutdown, after the last write)."""


class OwnAll(Ownership):
    """One journal instance owns every partition (local backend, or no meta manager)."""

    def __init__(self, partitions: Sequence[str]) -> None:
        self._partitions = list(partitions)

    def check_write(self, partition: str) -> None:
        return None

    def check_tracking(self, partition: str) -> None:
        return None

    def not_owner(self, partition: str, why: str = "") -> NotOwner:
        suffix = f": {why}" if why else ""
        return NotOwner(f"journal partition {partition} cannot be written here now{suffix}",
                        details={"partition": partition})

    def generation(self, partition: str) -> int:
        return 0

    def owned(self) -> list[str]:
        return list(self._partitions)
