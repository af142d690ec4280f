"""A short seeded chaos schedule on a real `vecraft up` cluster, judged by the history checker.

The long schedule is `vecraft bench chaos` (docs/benchmarks.md); this one runs in CI:
kill -9 and SIGSTOP of one process at a time (storage and query nodes, the fail-over
manager, the meta manager, the journal, the gateway) under writes with every ack
policy, deletes, transactions and reads at every level. Any phantom, stale or lost
read fails it; the counts are printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vecraft.bench.chaos import ChaosConfig, render, run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(600)]


async def test_a_short_fault_schedule_breaks_no_guarantee(tmp_path: Path) -> None:
    cfg = ChaosConfig(seed=7, duration_s=36, fault_every_s=6, pause_s=2.5, clients=3, keys_per_client=5)
    result = await run_chaos(cfg, tmp_path)
    print(render(result))
    print(json.dumps(result["history"], indent=1))
    history = result["history"]
    assert len(result["faults"]) >= 3, "the schedule must actually hit processes"
    assert history["acknowledged"] >= 20 and history["reads"] >= 50, "too little load to judge anything"
    assert result["ok"], f"violations: {history['violations']} e.g. {history['examples'][:3]}"
