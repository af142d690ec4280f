"""What the seeding tests share: a cluster whose compactor trims the journal as soon as it can, the
records they write round after round, and how they read the trim point and a node's metrics."""

from __future__ import annotations

import os
import re
import shutil
import signal
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.cluster import LocalCluster

DIM = 16
IDS = [f"r{i}" for i in range(200)]
ROUNDS = 8
#: Small segments so a trim has files to delete; a short idempotency window so entries may go at once.
ENV = {"VECRAFT_GC_INTERVAL_S": "0.3", "VECRAFT_SEGMENT_BYTES": "32768",
       "VECRAFT_REQUEST_ID_RETENTION_S": "1"}


def vectors(round_: int) -> np.ndarray:
    """The vectors of every id in write round ``round_``."""
    return np.random.default_rng(round_).standard_normal((len(IDS), DIM)).astype(np.float32)


def first_offset(data_dir: Path) -> int:
    """The first offset the journal's data partition still holds (1 until a trim)."""
    start = data_dir / "journal" / "data-0" / "START"
    return int(start.read_text()) if start.exists() else 1


def metric(text: str, name: str, labels: str = "") -> list[float]:
    """The values of metric ``name`` whose labels contain ``labels``, in a /metrics text."""
    pattern = rf"^{re.escape(name)}\{{[^}}]*{labels}[^}}]*\}} (\S+)$"
    return [float(m[1]) for m in re.finditer(pattern, text, re.MULTILINE)]


def wipe_and_restart(cluster: LocalCluster, name: str = "storage-0") -> dict[str, Any]:
    """Freeze storage node ``name`` (no write of its own after the wipe), delete its two shard
    directories, kill it: the supervisor restarts it with no shard files at all. Returns its status
    row once it is back and up."""
    victim = cluster.process(name)
    shard_dirs = sorted((cluster.data_dir / "storage" / f"node-{name.rsplit('-', 1)[1]}").glob("shard-*"))
    assert len(shard_dirs) == 2, shard_dirs
    os.kill(victim["pid"], signal.SIGSTOP)
    for directory in shard_dirs:
        shutil.rmtree(directory)
    os.kill(victim["pid"], signal.SIGKILL)
    return cluster.wait_restarted(name, victim["pid"])


def log_since_restart(cluster: LocalCluster, name: str = "storage-0") -> str:
    """The log of ``name`` since the supervisor last started it."""
    log = (cluster.data_dir / "logs" / f"{name}.log").read_text()
    return log[log.rindex(f"supervisor starts {name}"):]
