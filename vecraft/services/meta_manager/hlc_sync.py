"""HLC coordination: the cluster high-water mark and per-node clock drift.

Services report the HLC they last issued or saw (``ReportHLC``). The manager
keeps the cluster high-water mark: the largest HLC reported by a node in good
standing, never below the manager's own wall clock. A report's drift is its
physical time minus the high-water mark *before* the report (negative = the
node is behind); a node whose drift exceeds ``max_clock_offset_ms`` either
way is flagged, and its report does not raise the high-water mark, so one
runaway clock cannot drag the cluster's view of "now" into the future.

The state is per meta manager and in memory: it is a fresh measurement that
rebuilds within one report interval after a restart.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from vecraft.shared.common.errors import InvalidRequest
from vecraft.shared.common.metrics import gauge
from vecraft.shared.hlc import pack, physical_ms, wall_clock_ms

HLC_DRIFT = gauge("meta", "hlc_drift", "ms",
                  "Reported node HLC physical time minus the cluster high-water mark, in ms", ["node"])
HLC_FLAGGED = gauge("meta", "hlc_flagged", "nodes",
                    "1 when the node's clock is beyond max_clock_offset_ms, else 0", ["node"])
CLUSTER_HLC = gauge("meta", "cluster_hlc", "ms", "Physical part of the cluster HLC high-water mark")


@dataclasses.dataclass(frozen=True)
class HlcReport:
    """The answer to one report."""

    cluster_hlc: int
    drift_ms: int
    flagged: bool


class HlcCoordinator:
    """Keeps the cluster high-water mark and flags nodes with a clock too far off."""

    def __init__(self, max_clock_offset_ms: int, *, wall_clock: Callable[[], int] = wall_clock_ms) -> None:
        self.max_clock_offset_ms = max_clock_offset_ms
        self._wall_clock = wall_clock
        self._high_water = 0
        self._flagged: set[str] = set()
        self._lock = threading.Lock()

    def cluster_hlc(self) -> int:
        """The high-water mark, never below this manager's wall clock."""
        with self._lock:
            return self._current()

    def _current(self) -> int:
        return max(self._high_water, pack(self._wall_clock(), 0))

    def report(self, node_id: str, hlc: int) -> HlcReport:
        """Record ``node_id``'s clock reading.

        Raises:
            InvalidRequest: empty node id or a zero HLC.
        """
        if not node_id:
            raise InvalidRequest("node_id is required")
        if hlc <= 0:
            raise InvalidRequest("hlc must be a positive packed HLC timestamp")
        with self._lock:
            reference = self._current()
            drift = physical_ms(hlc) - physical_ms(reference)
            flagged = abs(drift) > self.max_clock_offset_ms
            if flagged:
                self._flagged.add(node_id)
            else:
                self._flagged.discard(node_id)
                self._high_water = max(self._high_water, hlc)
            cluster = self._current()
        HLC_DRIFT.labels(node_id).set(drift)
        HLC_FLAGGED.labels(node_id).set(1 if flagged else 0)
        CLUSTER_HLC.set(physical_ms(cluster))
        return HlcReport(cluster_hlc=cluster, drift_ms=drift, flagged=flagged)

    def flagged_nodes(self) -> list[str]:
        """Nodes whose last report was beyond ``max_clock_offset_ms``."""
        with self._lock:
            return sorted(self._flagged)
