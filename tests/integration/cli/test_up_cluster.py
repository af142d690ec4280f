"""`vecraft up --cluster`: etcd + NATS JetStream under the supervisor, serving through the gateway."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.cluster, pytest.mark.slow]

VECTOR = [0.1, 0.2, 0.3, 0.4]


def strong_search(endpoint: str) -> list[str]:
    found = httpx.post(f"{endpoint}/v1/vectors/search", timeout=60,
                       json={"vector": VECTOR, "k": 3, "consistency_level": "strong"})
    assert found.status_code == 200, found.text
    return [r["id"] for r in found.json()["results"]]


def test_up_cluster_serves_stops_cleanly_and_resumes_with_the_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    cluster = LocalCluster(data_dir, shards=1, extra_args=["--cluster"])
    try:
        cluster.start()
        roles = {r["name"]: r["role"] for r in cluster.status()["processes"]}  # type: ignore[index]
        assert [n for n, r in roles.items() if r in ("etcd", "nats")] == [
            "etcd-0", "etcd-1", "etcd-2", "nats-0", "nats-1", "nats-2"]
        # Two journal instances on JetStream; each partition is owned by one of them.
        assert all(cluster.process(f"journal-{i}")["health"] == "up" for i in range(2))
        written = httpx.post(f"{cluster.endpoint}/v1/vectors", timeout=60,
                             json={"id": "doc_1", "vector": VECTOR, "metadata": {"category": "documents"}})
        assert written.status_code in (200, 201), written.text
        assert strong_search(cluster.endpoint) == ["doc_1"]
    finally:
        assert cluster.stop() == 0, cluster.tail()
    plan = json.loads((data_dir / "cluster.json").read_text())
    assert plan["params"]["cluster"] is True and plan["ports"]["nats-0"]["peer"]
    assert (data_dir / "nats-0" / "jetstream").is_dir() and (data_dir / "etcd-0" / "member").is_dir()

    # No --cluster (and new gateway ports): the stored plan brings back cluster mode and its data.
    again = LocalCluster(data_dir, shards=1)
    try:
        again.start()
        assert again.process("nats-1")["health"] == "up"
        assert strong_search(again.endpoint) == ["doc_1"]
    finally:
        assert again.stop() == 0, again.tail()
