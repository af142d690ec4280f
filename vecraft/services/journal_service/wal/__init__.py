"""The journal's log interface: :class:`JournalBackend` holds one :class:`PartitionLog` per partition.

Backends: ``local`` (:mod:`.local`, segmented files with CRC32C records and
group-commit fsync) and ``jetstream`` (:mod:`.jetstream`, one replicated NATS
JetStream stream per partition). Everything above this package (acks,
subscriptions, back-pressure, the gRPC servicer) only talks to these
interfaces.

Heads and request ids are answered from an in-memory index. A backend whose
storage another journal process may write too (JetStream) can be behind it;
:meth:`PartitionLog.refresh`, :meth:`JournalBackend.refresh` and
:meth:`JournalBackend.lookup_latest` read the storage's own state first, and
the service awaits them before answering a head, a pull past the head or a
lookup of an unknown id. The local backend is the only writer of its files,
so for it they answer at once from the index.

Shared invariants every backend keeps:

- offsets are gapless per partition, starting at 1, in commit order; the
  compactor may trim a prefix (:meth:`PartitionLog.trim`), after which the
  stored entries are ``first_offset..head``;
- each entry's HLC is strictly greater than the previous entry's in the same
  partition and than the ``client_hlc`` of its write;
- an entry is visible to readers (:meth:`PartitionLog.read`, :attr:`head`)
  only once it is durable, and never disappears afterwards;
- request ids are unique across the whole journal: a write whose id is
  already committed (or being committed) is answered with the original
  position, never appended twice.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from vecraft.shared.rpc.v1 import journal_pb2


@dataclass(frozen=True, slots=True)
class LogWrite:
    """One entry to append. ``request_id`` "" means no idempotency for this write."""

    request_id: str
    payload: bytes
    shards: tuple[int, ...] = ()
    client_hlc: int = 0


@dataclass(frozen=True, slots=True)
class Position:
    """Where an entry lives in the journal."""

    partition: str
    offset: int
    hlc: int


@dataclass(frozen=True, slots=True)
class Appended:
    """Outcome of :meth:`PartitionLog.append`; ``duplicate`` = the request id was already there."""

    position: Position
    duplicate: bool


@dataclass(frozen=True, slots=True)
class TrimResult:
    """What :meth:`PartitionLog.trim` removed: the new first offset, and the entries and bytes freed."""

    first_offset: int
    entries: int
    bytes: int


class JournalCorruption(Exception):
    """Stored journal data is damaged somewhere other than a torn tail; refuse to serve it."""


class PartitionLog(abc.ABC):
    """The ordered, durable log of one partition."""

    name: str

    @property
    @abc.abstractmethod
    def head(self) -> tuple[int, int]:
        """``(offset, hlc)`` of the latest durable entry; ``(0, 0)`` when empty."""

    @property
    @abc.abstractmethod
    def first_offset(self) -> int:
        """Lowest offset still stored (1 until the compactor trimmed the partition)."""

    @abc.abstractmethod
    async def trim(self, before: int) -> TrimResult:
        """Remove stored entries below ``before`` as far as the storage's granularity allows.

        Never removes the head entry. The local backend removes whole segment
        files only (so it may keep entries below ``before``); afterwards
        :meth:`read` from an offset below :attr:`first_offset` raises
        :class:`~vecraft.shared.common.errors.Trimmed`. Callers (the
        compactor) decide which entries nobody needs any more.
        """

    @abc.abstractmethod
    async def refresh(self) -> tuple[int, int]:
        """The head as the partition's storage holds it, entries written by another process included.

        Afterwards :attr:`head`, :meth:`read`, :meth:`hlc_at` and the backend's
        :meth:`JournalBackend.lookup` cover every entry acknowledged before the
        call. A backend that is the only writer of its storage returns
        :attr:`head` without any I/O.

        Raises:
            Unavailable: the storage did not answer.
        """

    @abc.abstractmethod
    async def append(self, write: LogWrite) -> Appended:
        """Append ``write`` as one entry and return once it is durable.

        Safe to call concurrently; the backend batches concurrent calls into
        one durable write (group commit). A request id already committed or
        in flight anywhere in the journal returns that entry's position with
        ``duplicate=True`` and appends nothing. Cancelling the caller does not
        cancel the write.

        Raises:
            ClockSkew: ``write.client_hlc`` is too far ahead of this clock.
            Unavailable: the log cannot write (closing, or its writer failed -
                a disk write, fsync or clock persist error - which leaves the
                partition read-only until a restart).
        """

    @abc.abstractmethod
    async def read(self, from_offset: int, to_offset: int, *, max_entries: int,
                   max_bytes: int) -> list[journal_pb2.JournalEntry]:
        """Committed entries ``from_offset..to_offset`` (both inclusive), in offset order.

        Requires ``1 <= from_offset <= to_offset <= head offset`` (callers
        validate). Returns a prefix of the range holding at most
        ``max_entries`` entries and, beyond the first entry, at most
        ``max_bytes`` of payload; never an empty list.

        Raises:
            JournalCorruption: a stored record does not verify.
            Trimmed: ``from_offset`` is below :attr:`first_offset`.
        """

    @abc.abstractmethod
    async def wait_for(self, offset: int, timeout: float) -> bool:
        """Wait until the head reaches ``offset`` or ``timeout`` seconds pass; True if it did."""

    @abc.abstractmethod
    def hlc_at(self, offset: int) -> int:
        """HLC (commit time) of the committed entry at ``offset``; 0 outside ``first_offset..head``."""

    @abc.abstractmethod
    def bytes_after(self, offset: int) -> int:
        """Bytes stored for the entries after ``offset`` up to the head (lag in bytes)."""

    @abc.abstractmethod
    def size(self) -> tuple[int, int]:
        """``(bytes, segments)`` the partition occupies."""


class JournalBackend(abc.ABC):
    """All partitions of one journal and the request-id index across them."""

    @abc.abstractmethod
    async def open(self) -> None:
        """Open or recover every partition; afterwards every committed entry is readable."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Finish in-flight appends, refuse new ones, release files. Idempotent."""

    @abc.abstractmethod
    def partitions(self) -> list[str]:
        """Names of every partition, in routing order."""

    @abc.abstractmethod
    def partition(self, name: str) -> PartitionLog:
        """The log of ``name``.

        Raises:
            NotFound: no such partition (the message names the known ones).
        """

    @abc.abstractmethod
    def lookup(self, request_id: str) -> Position | None:
        """Position of the committed entry written with ``request_id`` as this process's index knows
        it (within the idempotency window), else None."""

    @abc.abstractmethod
    async def lookup_latest(self, request_id: str) -> Position | None:
        """:meth:`lookup` that also finds an entry another journal process wrote to the same storage.

        A known id is answered at once (entries never move); an unknown one may
        :meth:`refresh` every partition first.

        Raises:
            Unavailable: the storage did not answer.
        """

    @abc.abstractmethod
    async def refresh(self, partitions: Sequence[str] = ()) -> None:
        """:meth:`PartitionLog.refresh` of each of ``partitions`` (default: all), concurrently.

        Raises:
            NotFound: an unknown partition. Unavailable: the storage did not answer.
        """

    @abc.abstractmethod
    def failed_partitions(self) -> dict[str, str]:
        """Partitions whose writer failed (they refuse appends until a restart) -> the cause."""


__all__ = ["Appended", "JournalBackend", "JournalCorruption", "LogWrite", "PartitionLog", "Position",
           "TrimResult"]
