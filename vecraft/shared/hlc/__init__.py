"""Hybrid logical clock: packed uint64 timestamps and the clock that issues them (DESIGN.md section 4)."""

from vecraft.shared.hlc.clock import HybridLogicalClock, wall_clock_ms
from vecraft.shared.hlc.timestamp import (
    LOGICAL_BITS,
    MAX_LOGICAL,
    MAX_PHYSICAL,
    format_hlc,
    logical,
    pack,
    physical_ms,
    split,
    to_datetime,
)

__all__ = [
    "LOGICAL_BITS",
    "MAX_LOGICAL",
    "MAX_PHYSICAL",
    "HybridLogicalClock",
    "format_hlc",
    "logical",
    "pack",
    "physical_ms",
    "split",
    "to_datetime",
    "wall_clock_ms",
]
