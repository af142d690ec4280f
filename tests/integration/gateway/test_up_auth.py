"""`vecraft up --auth`: the gateway requires keys and the first admin key lands in DATA/admin.key."""

from __future__ import annotations

import stat
from pathlib import Path

import httpx
import pytest

from tests.support.cluster import LocalCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_up_with_auth_writes_the_admin_key_once_and_requires_keys(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "data", shards=1, extra_args=["--auth"])
    cluster.start()
    try:
        key_file = tmp_path / "data" / "admin.key"
        key = key_file.read_text().strip()
        assert key and stat.S_IMODE(key_file.stat().st_mode) == 0o600
        with httpx.Client(base_url=cluster.endpoint, timeout=30.0) as c:
            assert c.get("/v1/collections").status_code == 401
            bad = {"Authorization": "Bearer vk_nope_nope"}
            assert c.get("/v1/collections", headers=bad).status_code == 401
            ok = c.get("/v1/collections", headers={"Authorization": f"Bearer {key}"})
            assert ok.status_code == 200, ok.text
        # The key is in no log.
        for log in (tmp_path / "data" / "logs").glob("*.log"):
            assert key not in log.read_text(), log
        assert key not in cluster.tail(500)
    finally:
        cluster.stop()
