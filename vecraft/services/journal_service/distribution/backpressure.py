"""Back-pressure: refuse new writes to a partition while a live replica lags too far behind.

A partition enters back-pressure when any connected storage replica's lag
(one with an open push stream) passes one of the thresholds (ops, bytes, ms)
and leaves it once every connected replica's lag is back under *half* of
each threshold; the gap keeps the state
from flapping on every report. While it is on, Append of a new entry raises
``RateLimited`` with a retry hint; reads (PullWAL, Subscribe, GetOffset) and
retries of already-written request ids keep working. Nothing acknowledged is
ever dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from vecraft.services.journal_service import metrics
from vecraft.services.journal_service.distribution.replicas import Lag, ReplicaState
from vecraft.shared.common.errors import RateLimited

# Leave back-pressure below this fraction of every threshold.
_RELEASE_FRACTION = 0.5
_MIN_RETRY_MS, _MAX_RETRY_MS = 100, 2000


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Lag limits of one live replica before writes are refused."""

    lag_ms: int = 1000
    lag_ops: int = 10_000
    lag_bytes: int = 25 << 20

    def exceeded_by(self, lag: Lag, fraction: float = 1.0) -> str:
        """The first limit ``lag`` passes (scaled by ``fraction``), as a phrase; "" when none."""
        if lag.ms > self.lag_ms * fraction:
            return f"{lag.ms} ms behind (limit {self.lag_ms} ms)"
        if lag.ops > self.lag_ops * fraction:
            return f"{lag.ops} entries behind (limit {self.lag_ops})"
        if lag.bytes > self.lag_bytes * fraction:
            return f"{lag.bytes} bytes behind (limit {self.lag_bytes})"
        return ""


class BackPressure:
    """Per-partition back-pressure state, re-evaluated from replica lags."""

    def __init__(self, thresholds: Thresholds) -> None:
        self.thresholds = thresholds
        self._reason: dict[str, str] = {}
        self._retry_ms: dict[str, int] = {}

    def evaluate(self, partition: str, replicas: Iterable[ReplicaState]) -> bool:
        """Update ``partition``'s state from its live storage replicas' lags; True while on.

        ``replicas`` must already carry a fresh ``lag`` and be filtered to the
        live ones that count.
        """
        on = partition in self._reason
        worst_ms = 0
        reason = ""
        for state in replicas:
            worst_ms = max(worst_ms, state.lag.ms)
            passed = self.thresholds.exceeded_by(state.lag, 1.0 if not on else _RELEASE_FRACTION)
            if passed and not reason:
                reason = f"replica {state.replica_id} of {partition} is {passed}"
        if reason:
            if not on:
                metrics.BACK_PRESSURE.labels(partition).set(1)
            self._reason[partition] = reason
            self._retry_ms[partition] = min(_MAX_RETRY_MS, max(_MIN_RETRY_MS, worst_ms // 2))
            return True
        if on:
            metrics.BACK_PRESSURE.labels(partition).set(0)
            del self._reason[partition]
            del self._retry_ms[partition]
        return False

    def check(self, partition: str) -> None:
        """Raise ``RateLimited`` if ``partition`` is under back-pressure."""
        reason = self._reason.get(partition)
        if reason is not None:
            raise RateLimited(f"journal back-pressure: {reason}; retry later",
                              details={"partition": partition, "reason": reason},
                              retry_after_ms=self._retry_ms[partition])

    def active(self) -> dict[str, str]:
        """Partitions under back-pressure and why."""
        return dict(self._reason)
