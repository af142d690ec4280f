"""One measured cell of the consistency matrix: a level's open-loop run, summarized.

A cell is (dim, shards, storage lag, consistency level). Its figures come from
the answers themselves: latency from the scheduled send time, and the
``consistency_info`` each response reported (staleness, whether a sync was
performed, whether it was a cache hit, which level was achieved), plus
recall@k of the returned ids against the exact ground truth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from vecraft.bench._datasets import recall_at_k
from vecraft.bench._loadgen import LoadResult
from vecraft.bench._stats import LatencySummary, fraction, summarize


@dataclass(slots=True)
class Cell:
    """Figures of one (dim, shards, lag, level) run."""

    dim: int
    shards: int
    lag_ms: int
    level: str
    target_qps: float
    requests: int
    achieved_qps: float
    latency: LatencySummary
    #: Latency from the actual send (without client-side queueing), for comparison.
    service: LatencySummary
    errors: dict[str, int]
    #: Distribution of the staleness_ms the answers reported.
    staleness: LatencySummary
    sync_fraction: float
    cache_hit_fraction: float
    #: Answers whose level_achieved differs from the level requested.
    level_mismatches: int
    recall: float
    writer_acked: int = 0
    writer_errors: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["error_count"] = self.error_count
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Cell:
        """Rebuild a cell from its JSON form (``None`` figures become NaN)."""
        def summary(s: dict[str, Any]) -> LatencySummary:
            figures: dict[str, Any] = {k: (float("nan") if v is None else v) for k, v in s.items()}
            return LatencySummary(**figures)
        nan = float("nan")
        fields = {k: v for k, v in d.items() if k != "error_count"}
        for name in ("latency", "service", "staleness"):
            fields[name] = summary(fields[name])
        for name in ("sync_fraction", "cache_hit_fraction", "recall", "achieved_qps"):
            fields[name] = nan if fields[name] is None else fields[name]
        return cls(**fields)


def summarize_cell(result: LoadResult, *, dim: int, shards: int, lag_ms: int, level: str,
                   truth: np.ndarray, k: int) -> Cell:
    """Reduce an open-loop run over queries ``i % len(truth)`` to a :class:`Cell`."""
    ok = result.ok
    infos = [o.reply.info for o in ok]
    found = [info.get("ids", []) for info in infos]
    rows = np.array([o.index % truth.shape[0] for o in ok], dtype=np.int64)
    recall = recall_at_k(found, truth[rows, :k]) if ok else float("nan")
    staleness = [float(i["staleness_ms"]) for i in infos if i.get("staleness_ms") is not None]
    mismatches = sum(1 for i in infos if i.get("level_achieved") is not None
                     and i["level_achieved"] != i.get("level_requested"))
    return Cell(
        dim=dim, shards=shards, lag_ms=lag_ms, level=level, target_qps=result.rate,
        requests=len(result.outcomes), achieved_qps=result.achieved_qps,
        latency=summarize(o.latency_ms for o in ok), service=summarize(o.service_ms for o in ok),
        errors=result.errors, staleness=summarize(staleness),
        sync_fraction=fraction(i.get("sync_performed") for i in infos),
        cache_hit_fraction=fraction(i.get("cache_hit") for i in infos),
        level_mismatches=mismatches, recall=recall)
