"""Read consistency levels (one enum for HTTP, gRPC, the SDK and the query processor) and the
report of the consistency a read achieved.

The integer values are the proto's (``vecraft.v1.ConsistencyLevel``), so
``int(level)`` and :meth:`ConsistencyLevel.from_int` convert without a table
(:mod:`vecraft.shared.rpc.convert` does it at the gRPC edges, and
tests/unit/model/test_schema.py checks the values against the proto). Text accepted by
:meth:`ConsistencyLevel.parse` (case-insensitive,
``-`` and ``_`` interchangeable): ``eventual``; ``bounded``,
``bounded_staleness``; ``read_your_writes``, ``ryw``, ``session``; ``strong``,
``linearizable``. Responses use :attr:`ConsistencyLevel.wire_name`
(``eventual``, ``bounded``, ``read_your_writes``, ``strong``), the names the
spec's HTTP example shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from vecraft.shared.common.errors import InvalidRequest


class ConsistencyLevel(IntEnum):
    """How fresh a read must be (spec 4.3); values equal the proto enum's."""

    EVENTUAL = 0
    BOUNDED_STALENESS = 1
    READ_YOUR_WRITES = 2
    STRONG = 3

    @property
    def wire_name(self) -> str:
        """The HTTP name used in headers and JSON responses."""
        return _WIRE_NAMES[self]

    def __str__(self) -> str:
        # Printed as the HTTP API names it ("bounded"), not as the proto integer IntEnum
        # would print; comparisons, int() and the proto value are unchanged.
        return _WIRE_NAMES[self]

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)

    @classmethod
    def parse(cls, value: Any) -> ConsistencyLevel:
        """A level from text (see module doc), a level, or its proto integer.

        Raises:
            InvalidRequest: unknown text or integer; the message lists the accepted names.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls.from_int(value)
        if isinstance(value, str):
            key = value.strip().lower().replace("-", "_")
            if key in _ALIASES:
                return _ALIASES[key]
        raise InvalidRequest(
            f"unknown consistency level {value!r}; accepted: {', '.join(ACCEPTED_NAMES)}",
            details={"accepted": list(ACCEPTED_NAMES)})

    @classmethod
    def from_int(cls, value: int) -> ConsistencyLevel:
        """The level of its integer (the proto enum's value); InvalidRequest if unknown."""
        try:
            return cls(value)
        except ValueError:
            raise InvalidRequest(
                f"unknown consistency level {value}; accepted: "
                f"{', '.join(f'{m.value} ({m.name})' for m in cls)}") from None


_WIRE_NAMES = {
    ConsistencyLevel.EVENTUAL: "eventual",
    ConsistencyLevel.BOUNDED_STALENESS: "bounded",
    ConsistencyLevel.READ_YOUR_WRITES: "read_your_writes",
    ConsistencyLevel.STRONG: "strong",
}

_ALIASES: dict[str, ConsistencyLevel] = {
    "eventual": ConsistencyLevel.EVENTUAL,
    "bounded": ConsistencyLevel.BOUNDED_STALENESS,
    "bounded_staleness": ConsistencyLevel.BOUNDED_STALENESS,
    "read_your_writes": ConsistencyLevel.READ_YOUR_WRITES,
    "ryw": ConsistencyLevel.READ_YOUR_WRITES,
    "session": ConsistencyLevel.READ_YOUR_WRITES,
    "strong": ConsistencyLevel.STRONG,
    "linearizable": ConsistencyLevel.STRONG,
}

#: Every name :meth:`ConsistencyLevel.parse` accepts (lower-case form).
ACCEPTED_NAMES: tuple[str, ...] = tuple(_ALIASES)


@dataclass(frozen=True, slots=True)
class ConsistencyReport:
    """The consistency a read achieved, true of every result it returned."""

    level_requested: ConsistencyLevel
    level_achieved: ConsistencyLevel
    staleness_ms: int
    #: The bound the level promised: bounded staleness its bound, strong 0, others None.
    max_allowed_staleness_ms: int | None
    #: The applied journal offset the index reflected (the smallest over the shards).
    index_version: int
    cache_hit: bool
    sync_performed: bool
