"""The record listing's consistency levels end to end, through a real ``vecraft up`` cluster (3 shards)
whose push path lags 3 s behind the journal (``--apply-delay-ms 3000``).

Writes are made with ``ack=journal``: answered once durable, so the storage replicas really lag
behind them. A ``strong`` listing must see every acknowledged write, a session's
``read_your_writes`` listing its own, and (the control that shows the lag is real) an ``eventual``
listing right after the write does not see it yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

from tests.support.cluster import LocalCluster
from vecraft_client import VecraftClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

#: Far above a write + listing round trip even on a loaded machine (as in test_consistency_e2e).
APPLY_DELAY_MS = 3000
DIM = 4


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VecraftClient]:
    data_dir = tmp_path_factory.mktemp("e2e-listing") / "data"
    running = LocalCluster(data_dir, shards=3, apply_delay_ms=APPLY_DELAY_MS).start()
    try:
        with VecraftClient(running.endpoint, timeout=60.0) as c:
            yield c
    finally:
        assert running.stop() == 0, running.tail()


def _ids(client: VecraftClient, name: str, **options: object) -> list[str]:
    return [r.id for r in client.iter_records(name, page_size=7, **options)]  # type: ignore[arg-type]


def test_levels_of_the_listing_against_lagging_replicas(client: VecraftClient) -> None:
    name = f"lag_{uuid.uuid4().hex[:8]}"
    client.create_collection(name, dim=DIM)
    base = [f"base-{i:02d}" for i in range(20)]
    client.insert_vectors(np.eye(20, DIM, dtype=np.float32), ids=base, collection=name)
    # A lagging replica may not know the new collection yet (an eventual read then answers 404, as a
    # read by id does); a strong listing first brings every shard to the journal head.
    assert _ids(client, name, consistency_level="strong") == base
    assert _ids(client, name, consistency_level="eventual") == base

    fresh = [f"fresh-{i:02d}" for i in range(10)]
    client.insert_vectors(np.ones((10, DIM), dtype=np.float32), ids=fresh, collection=name, ack="journal")
    # The control: the replicas have not applied the write yet, an eventual listing misses it. (The
    # level is explicit: without one the SDK reads this client's own writes.)
    assert _ids(client, name, consistency_level="eventual") == base
    assert _ids(client, name, consistency_level="strong") == sorted(base + fresh)

    session = client.create_session()
    mine = [f"mine-{i:02d}" for i in range(5)]
    session.insert_vectors(np.ones((5, DIM), dtype=np.float32), ids=mine, collection=name, ack="journal")
    session.delete_vectors(base[:3], collection=name, ack="journal")
    expected = sorted(set(base + fresh + mine) - set(base[:3]))
    assert [r.id for r in session.iter_records(name, page_size=7, consistency_level="read_your_writes")] \
        == expected
