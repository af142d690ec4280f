"""A short seeded chaos schedule on a real `vecraft up --cluster` (etcd + NATS JetStream).

The distributed schedule (test_chaos_schedule.py) hits the services; this one hits what only
cluster mode has: an etcd member, a NATS server, one of the two journal instances (each owns
partitions through an etcd lease with a fencing epoch), plus a storage node, one process at a
time with kill -9 or SIGSTOP, under the same mixed load and history checker.
The long run is `vecraft bench chaos --cluster` (bench/reports/chaos-cluster.md).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from vecraft.bench.chaos import ChaosConfig, render, run_chaos

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.cluster, pytest.mark.timeout(600)]


async def test_faults_on_etcd_nats_and_journal_instances_break_no_guarantee(tmp_path: Path) -> None:
    cfg = ChaosConfig(seed=6, duration_s=40, fault_every_s=6, pause_s=2.5, clients=3, keys_per_client=5,
                      targets=("etcd", "nats", "journal", "storage"), cluster=True)
    result = await run_chaos(cfg, tmp_path)
    print(render(result))
    print(json.dumps(result["history"], indent=1))
    history = result["history"]
    hit = Counter(f["target"].split("-")[0] for f in result["faults"])
    assert len(result["faults"]) >= 4, "the schedule must actually hit processes"
    assert {"etcd", "nats", "journal"} <= set(hit), \
        f"this seed must hit an etcd member, a NATS server and a journal instance: {hit}"
    assert history["acknowledged"] >= 20 and history["reads"] >= 50, "too little load to judge anything"
    assert result["ok"], f"violations: {history['violations']} e.g. {history['examples'][:3]}"
