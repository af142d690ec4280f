"""A shard replica that stops on purpose leaves the journal's ack accounting at once (real processes).

A node told by the placement map to drop shard 0 tells the journal its replica leaves before the
registry stops listing it, so an ``ack=all`` write of shard 0 sent once the registry shows the drop
neither waits for it nor counts it. A node stopped on purpose (SIGTERM) does the same for every
replica it hosts; a killed one cannot, and counts until the journal's liveness window runs out.

The journal here keeps a replica whose stream closed live for ten minutes: nothing below can pass by
a replica aging out, only by its leaving.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from tests.integration.journal.waits import consumers, wait_until
from tests.integration.storage.harness import (
    JOURNAL,
    JOURNAL_ARGS,
    Placer,
    Writer,
    http_get,
    registered,
)
from tests.support.procs import ServiceProcess
from tests.unit.storage import payloads
from vecraft.clients.journal import JournalClient
from vecraft.clients.meta import MetaClient
from vecraft.shared.model.routing import shard_of
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.integration

DIM = 4
SHARDS = 2
NODE = "node-a"
#: A hang detector only: every wait below ends on the condition it checks.
WAIT_S = 60.0


@pytest.fixture
def journal(start_service: Callable[..., ServiceProcess], tmp_path: Path) -> ServiceProcess:
    """The harness's journal, with a liveness window no test reaches."""
    return start_service(JOURNAL, ["--data-dir", str(tmp_path / "journal"), *JOURNAL_ARGS,
                                   "--replica-liveness-ms", "600000"], ready_timeout=60)


@pytest.fixture
async def journal_client(journal: ServiceProcess) -> AsyncIterator[JournalClient]:
    client = JournalClient(journal.grpc_address)
    yield client
    await client.close()


async def _write_to(writer: Writer, shard: int, ack_timeout_ms: int = 0) -> journal_pb2.AppendResponse:
    """An ``ack=all`` write of one record of ``shard``, touching that shard only (as the gateway sends it)."""
    record = next(i for i in (uuid.uuid4().hex for _ in range(1000)) if shard_of(i, SHARDS) == shard)
    vectors = np.ones((1, DIM), dtype=np.float32)
    payload = payloads.write(payloads.schema(dim=DIM, shards=SHARDS), [record], vectors)
    return await writer.client.append("data-0", payload, request_id=uuid.uuid4().hex, shards=[shard],
                                      ack=journal_pb2.ACK_ALL, ack_timeout_ms=ack_timeout_ms)


def _answer(ack: journal_pb2.AppendResponse) -> tuple[int, int, list[str]]:
    return ack.replicas_expected, ack.replicas_acked, list(ack.lagging_replicas)


async def _live(client: JournalClient, *replica_ids: str) -> None:
    """Until the journal counts each of ``replica_ids`` as live (its push stream reached the journal)."""
    async def all_live() -> bool:
        known = await consumers(client, "data-0")
        return all(known.get(r) for r in replica_ids)

    await wait_until(all_live, WAIT_S, f"{replica_ids} live at the journal")


async def test_a_dropped_shard_replica_stops_counting_for_acks_before_the_registry_shows_the_drop(
        start_node: Callable[..., ServiceProcess], meta: ServiceProcess, meta_client: MetaClient,
        writer: Writer, journal_client: JournalClient) -> None:
    await writer.create(payloads.schema(dim=DIM, shards=SHARDS))
    node = start_node(NODE, "--meta-address", meta.grpc_address, "--node-id", NODE, shards="0")
    placer = Placer(meta_client)
    await placer.place({0: [NODE], 1: [NODE]})
    await registered(meta_client, NODE, [0, 1], WAIT_S)
    await _live(journal_client, f"{NODE}/shard-0", f"{NODE}/shard-1")
    assert _answer(await _write_to(writer, 0)) == (1, 1, [])
    assert _answer(await _write_to(writer, 1)) == (1, 1, [])

    await placer.place({0: ["node-elsewhere"], 1: [NODE]})
    await registered(meta_client, NODE, [1], WAIT_S)
    # Right away: the journal no longer knows the shard-0 replica, so the write is answered as
    # durable, nobody expected (no live replica serves shard 0), nobody lagging.
    assert _answer(await _write_to(writer, 0)) == (0, 0, [])
    assert f"{NODE}/shard-0" not in await consumers(journal_client, "data-0")
    assert _answer(await _write_to(writer, 1)) == (1, 1, [])
    # Once the drop is over (its streams closed, its reporter stopped) it still does not count.
    await wait_until(lambda: _drop_over(node), WAIT_S, "the drop of shard 0 to end")
    assert _answer(await _write_to(writer, 0)) == (0, 0, [])

    # Placed back, it joins again with its new stream.
    await placer.place({0: [NODE], 1: [NODE]})
    await registered(meta_client, NODE, [0, 1], WAIT_S)
    await _live(journal_client, f"{NODE}/shard-0")
    assert _answer(await _write_to(writer, 0)) == (1, 1, [])


async def _drop_over(node: ServiceProcess) -> bool:
    status, body = http_get(node, "/healthz")
    return status == 200 and json.loads(body)["hosting"]["changing"] is None


async def test_a_node_stopped_on_purpose_leaves_at_once_and_a_killed_one_counts_until_its_liveness_ends(
        start_node: Callable[..., ServiceProcess], writer: Writer, journal_client: JournalClient) -> None:
    await writer.create(payloads.schema(dim=DIM, shards=SHARDS))
    a = start_node("node-a", "--node-id", "node-a", shards="0")
    b = start_node("node-b", "--node-id", "node-b", shards="0")
    await _live(journal_client, "node-a/shard-0", "node-b/shard-0")
    assert _answer(await _write_to(writer, 0)) == (2, 2, [])

    assert a.stop() == 0  # SIGTERM: a shutdown on purpose
    assert "node-a/shard-0" not in await consumers(journal_client, "data-0")
    assert _answer(await _write_to(writer, 0)) == (1, 1, [])

    # kill -9 leaves no chance to say so: node-b still counts, and holds the write up to its ack timeout.
    b.kill()
    assert _answer(await _write_to(writer, 0, ack_timeout_ms=300)) == (1, 0, ["node-b/shard-0"])
