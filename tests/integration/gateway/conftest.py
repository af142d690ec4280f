"""One real cluster for the whole gateway integration package."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.gateway.cluster import Cluster, run_cluster


@pytest.fixture(scope="package")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with run_cluster(tmp_path_factory.mktemp("gateway-cluster"), shards=3, data_partitions=2) as c:
        yield c
