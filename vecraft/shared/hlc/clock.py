"""The hybrid logical clock (Kulkarni et al.) every journal writer stamps entries with.

Guarantees:

- every timestamp returned by :meth:`HybridLogicalClock.now` or
  :meth:`HybridLogicalClock.update` is strictly greater than every one this
  clock returned before, and :meth:`update` returns more than the remote
  timestamp it was given;
- the physical part follows the wall clock when it moves forward and holds
  still when it goes backwards (the logical counter breaks ties);
- the logical counter never overflows: past 0xFFFF the physical part advances
  by 1 ms instead;
- a peer more than ``max_clock_offset_ms`` ahead of the local wall clock is
  refused with :class:`ClockSkew` (and counted), so one bad clock cannot drag
  the whole cluster into the future;
- with ``persist_path``, a restarted process never issues a timestamp <= any
  it issued before, even if the wall clock went backwards across the restart.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from vecraft.shared.common.errors import ClockSkew
from vecraft.shared.common.metrics import counter, gauge
from vecraft.shared.hlc.timestamp import MAX_LOGICAL, format_hlc, pack, split

REMOTE_REJECTED = counter(
    "hlc", "remote_rejected",
    "Remote HLC timestamps refused because they were too far ahead of the local wall clock")
DRIFT_MS = gauge(
    "hlc", "drift", "ms",
    "Last observed remote HLC physical time minus the local wall clock, in ms (positive = peer ahead)")


def wall_clock_ms() -> int:
    """Wall-clock milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


class HybridLogicalClock:
    """A thread-safe hybrid logical clock producing packed uint64 timestamps.

    Args:
        max_clock_offset_ms: the largest amount a remote physical time may be
            ahead of the local wall clock in :meth:`update`.
        wall_clock: returns wall-clock milliseconds (injectable for tests).
        persist_path: file holding a reserved upper bound of issued physical
            times (the high-water mark); None keeps the clock in memory only.
        reserve_ms: how far past the current physical time the persisted bound
            is set. The file is rewritten (fsync'd) only when issued times come
            within half of this of the bound, so ``now()`` rarely touches disk.
            After a restart faster than ``reserve_ms`` the clock may run up to
            ``reserve_ms`` ahead of the wall clock until the wall catches up.
    """

    def __init__(self, *, max_clock_offset_ms: int = 500,
                 wall_clock: Callable[[], int] = wall_clock_ms,
                 persist_path: Path | None = None, reserve_ms: int = 1000) -> None:
        if max_clock_offset_ms < 0:
            raise ValueError("max_clock_offset_ms must be >= 0")
        if reserve_ms < 2:
            raise ValueError("reserve_ms must be >= 2")
        self.max_clock_offset_ms = max_clock_offset_ms
        self._wall = wall_clock
        self._path = Path(persist_path) if persist_path is not None else None
        self._reserve_ms = reserve_ms
        self._lock = threading.Lock()
        self._last = 0
        # Invariant: every issued timestamp has physical part < self._bound.
        self._bound = 0
        if self._path is not None:
            self._bound = _load_bound(self._path)
            if self._bound:
                # Everything issued before the restart is < pack(bound, 0).
                self._last = pack(self._bound, 0)

    @property
    def last(self) -> int:
        """The greatest timestamp issued (or loaded as the persisted bound); 0 before any."""
        with self._lock:
            return self._last

    def now(self) -> int:
        """A timestamp for a local or send event: greater than every one issued before."""
        wall = self._wall()
        with self._lock:
            last_p, last_l = split(self._last)
            if wall > last_p:
                return self._issue(wall, 0)
            return self._issue(last_p, last_l + 1)

    def restore(self, issued: int) -> None:
        """Move the clock past ``issued``, a timestamp recovered from this system's own storage.

        No skew check: a journal that finds its own entries ahead of the wall
        clock (logical overflow, or a host whose clock is behind the previous
        one) must still never issue a timestamp <= them.
        """
        with self._lock:
            if issued > self._last:
                phys, log = split(issued)
                self._issue(phys, log)

    def update(self, remote: int) -> int:
        """Merge a timestamp received from a peer; return one greater than it and than ``last``.

        Raises:
            ClockSkew: the remote physical time is more than ``max_clock_offset_ms``
                ahead of the local wall clock; the clock is left unchanged.
            ValueError: ``remote`` is not a uint64.
        """
        remote_p, remote_l = split(remote)
        wall = self._wall()
        drift = remote_p - wall
        DRIFT_MS.set(drift)
        if drift > self.max_clock_offset_ms:
            REMOTE_REJECTED.inc()
            raise ClockSkew(
                f"remote HLC {format_hlc(remote)} is {drift} ms ahead of the local wall clock; "
                f"at most {self.max_clock_offset_ms} ms (max_clock_offset_ms) is tolerated - "
                f"check NTP on the peer",
                details={"remote_hlc": remote, "drift_ms": drift,
                         "max_clock_offset_ms": self.max_clock_offset_ms})
        with self._lock:
            last_p, last_l = split(self._last)
            phys = max(wall, last_p, remote_p)
            if phys == last_p and phys == remote_p:
                log = max(last_l, remote_l) + 1
            elif phys == last_p:
                log = last_l + 1
            elif phys == remote_p:
                log = remote_l + 1
            else:
                log = 0
            return self._issue(phys, log)

    def _issue(self, phys: int, log: int) -> int:
        """Record and return ``(phys, log)``, carrying logical overflow into phys. Lock held."""
        if log > MAX_LOGICAL:
            phys, log = phys + 1, 0
        if self._path is not None and phys + self._reserve_ms // 2 >= self._bound:
            # Persist before returning: the bound must cover the timestamp we hand out.
            new_bound = phys + self._reserve_ms
            _store_bound(self._path, new_bound)
            self._bound = new_bound
        self._last = pack(phys, log)
        return self._last


def _load_bound(path: Path) -> int:
    """The persisted bound, 0 when there is no file; ValueError when the file is damaged."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return 0
    try:
        bound = int(json.loads(text)["reserved_physical_ms"])
    except (ValueError, KeyError, TypeError) as exc:
        # Starting from 0 could reissue old timestamps; refuse instead.
        raise ValueError(f"HLC high-water mark file {path} is damaged ({exc}); "
                         f"restore it or remove it only if no timestamps were issued") from exc
    return bound


def _store_bound(path: Path, bound: int) -> None:
    """Durably replace the bound: temp file + fsync + atomic rename + directory fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps({"reserved_physical_ms": bound}))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
