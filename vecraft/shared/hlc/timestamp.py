"""HLC timestamps as one uint64: 48-bit physical milliseconds << 16 | 16-bit logical counter.

Packed timestamps order exactly like (physical, logical) pairs, so journal
entries, offsets and replicas compare them as plain integers. 48 bits of
milliseconds last until the year 10889.
"""

from __future__ import annotations

from datetime import UTC, datetime

LOGICAL_BITS = 16
PHYSICAL_BITS = 48
MAX_LOGICAL = (1 << LOGICAL_BITS) - 1
MAX_PHYSICAL = (1 << PHYSICAL_BITS) - 1
MAX_HLC = (1 << (PHYSICAL_BITS + LOGICAL_BITS)) - 1


def pack(physical_ms: int, logical: int) -> int:
    """The uint64 of ``(physical_ms, logical)``; ValueError when either is out of range."""
    if not 0 <= physical_ms <= MAX_PHYSICAL:
        raise ValueError(f"HLC physical time {physical_ms} ms is outside 0..{MAX_PHYSICAL}")
    if not 0 <= logical <= MAX_LOGICAL:
        raise ValueError(f"HLC logical counter {logical} is outside 0..{MAX_LOGICAL}")
    return (physical_ms << LOGICAL_BITS) | logical


def physical_ms(hlc: int) -> int:
    """Milliseconds since the Unix epoch of a packed timestamp."""
    return hlc >> LOGICAL_BITS


def logical(hlc: int) -> int:
    """The logical counter of a packed timestamp."""
    return hlc & MAX_LOGICAL


def split(hlc: int) -> tuple[int, int]:
    """``(physical_ms, logical)``; ValueError when ``hlc`` is not a uint64."""
    if not 0 <= hlc <= MAX_HLC:
        raise ValueError(f"HLC {hlc} is not an unsigned 64-bit value")
    return hlc >> LOGICAL_BITS, hlc & MAX_LOGICAL


def to_datetime(hlc: int) -> datetime:
    """The physical part as an aware UTC datetime (the logical part is dropped)."""
    return datetime.fromtimestamp(physical_ms(hlc) / 1000, tz=UTC)


def format_hlc(hlc: int) -> str:
    """Human form for logs, e.g. ``2025-03-01T12:00:00.123Z+7`` (physical time + logical counter)."""
    stamp = to_datetime(hlc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    return f"{stamp}Z+{logical(hlc)}"
