"""The NATS servers the journal runs on fsync every write before acknowledging it."""

from __future__ import annotations

from pathlib import Path

import pytest

from vecraft.local.nats import NatsCluster, nats_config

pytestmark = [pytest.mark.integration, pytest.mark.cluster]


def test_launched_servers_fsync_every_write(tmp_path: Path) -> None:
    with NatsCluster(tmp_path / "nats", size=1) as cluster:
        node = cluster.nodes[0]
        assert "sync_interval: always" in cluster.config_path(node).read_text()
        # The running server took it (an option it refused would have stopped it from starting).
        assert node.varz()["jetstream"]["config"]["sync_always"] is True


def test_cluster_configuration_fsyncs_every_write(tmp_path: Path) -> None:
    """``vecraft up --cluster`` writes its servers' files with the same function."""
    text = nats_config(name="n", client_port=1, monitor_port=2, store_dir=tmp_path, cluster_port=3,
                       routes=[3, 4, 5])
    assert "sync_interval: always" in text
