"""The specification's pull-before-read evaluation plan, as data.

``SPEC_P95`` is the spec's benchmark matrix verbatim (P95 in ms of eventual,
bounded staleness and strong reads, and the sync overhead); ``SCALES`` turns
its four scenarios into runnable settings: ``spec`` is the plan as written,
``small`` the same matrix with smaller data sets, lower arrival rates and
shorter cells, sized to finish in about 15 minutes on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass

#: HNSW parameters of every benchmark collection (Chroma's defaults: M 16, construction ef 100).
HNSW = {"m": 16, "ef_construction": 100, "ef_search": 64}
LEVELS = ("eventual", "bounded", "read_your_writes", "strong")
LAGS_MS = (0, 100, 500, 1000)

#: (dim, shards, lag_ms) -> (eventual, bounded, strong, sync overhead), ms, from the spec's table.
SPEC_P95: dict[tuple[int, int, int], tuple[float, float, float, float]] = {
    (128, 3, 0): (15, 15, 15, 0), (128, 3, 100): (15, 18, 25, 10),
    (128, 3, 500): (15, 25, 45, 30), (128, 3, 1000): (15, 35, 65, 50),
    (512, 3, 0): (25, 25, 25, 0), (512, 3, 100): (25, 28, 35, 10),
    (512, 3, 500): (25, 35, 55, 30), (512, 3, 1000): (25, 45, 75, 50),
    (1536, 3, 0): (40, 40, 40, 0), (1536, 3, 100): (40, 43, 50, 10),
    (1536, 3, 500): (40, 50, 70, 30), (1536, 3, 1000): (40, 60, 90, 50),
    (128, 10, 0): (12, 12, 12, 0), (128, 10, 100): (12, 15, 22, 10),
    (128, 10, 500): (12, 22, 42, 30), (128, 10, 1000): (12, 32, 62, 50),
    (512, 10, 0): (22, 22, 22, 0), (512, 10, 100): (22, 25, 32, 10),
    (512, 10, 500): (22, 32, 52, 30), (512, 10, 1000): (22, 42, 72, 50),
}

#: (dim, shards) blocks of the spec's matrix, in its order.
MATRIX: tuple[tuple[int, int], ...] = ((128, 3), (512, 3), (1536, 3), (128, 10), (512, 10))

#: Scenario 4: 512-d, 100 ms lag, these shard counts.
SCALING_DIM = 512
SCALING_LAG_MS = 100
SCALING_SHARDS = (1, 3, 5, 10, 20, 50)


@dataclass(frozen=True, slots=True)
class Scale:
    """Sizes and rates of one run of the consistency benchmark."""

    name: str
    #: dim -> base vectors (scenarios 1-3).
    vectors: dict[int, int]
    #: dim -> arrival rate of searches (per second).
    qps: dict[int, float]
    #: Seconds of measured load per (dim, shards, lag, level) cell.
    cell_s: float
    #: Seconds of load before the first cell of a block (connections, caches), not measured.
    warmup_s: float
    queries: int
    #: Write requests per second of the background writer (1 row each, ack=journal).
    write_rate: float
    #: Scenario 4's arrival rate is qps[512] * (shards / 3) when True ("scaled with shard count").
    scaling_qps_with_shards: bool

    def scaling_qps(self, shards: int) -> float:
        base = self.qps[SCALING_DIM]
        return base * shards / 3 if self.scaling_qps_with_shards else base


SCALES: dict[str, Scale] = {
    "spec": Scale(name="spec", vectors={128: 1_000_000, 512: 500_000, 1536: 100_000},
                  qps={128: 100, 512: 50, 1536: 20}, cell_s=60, warmup_s=5, queries=1000,
                  write_rate=20, scaling_qps_with_shards=True),
    # 2 cores run the client, the gateway, the journal and every shard's processes at
    # once, so the small scale halves the rates and keeps them fixed in scenario 4.
    "small": Scale(name="small", vectors={128: 20_000, 512: 10_000, 1536: 5_000},
                   qps={128: 50, 512: 25, 1536: 10}, cell_s=6, warmup_s=1, queries=200,
                   write_rate=20, scaling_qps_with_shards=False),
}


def spec_figures(dim: int, shards: int, lag_ms: int) -> tuple[float, float, float, float] | None:
    """The spec's (eventual, bounded, strong, overhead) P95 for a cell, None if it has none."""
    return SPEC_P95.get((dim, shards, lag_ms))
