"""One real `vecraft up` cluster for the framework adapters and bulk import/export tests of a module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.cluster import LocalCluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    data_dir = tmp_path_factory.mktemp("integrations") / "data"
    running = LocalCluster(data_dir, shards=2).start()
    yield running
    assert running.stop() == 0, running.tail()
