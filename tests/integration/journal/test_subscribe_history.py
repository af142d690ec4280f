"""A Subscribe stream never continues on another history.

A subscriber says which HLC it holds for the entry before its first offset
(``after_hlc``), and the journal client's subscription does so on every
resume. A journal whose entry there differs refuses the stream with
``HistoryMismatch``: the journal was replaced (restored from an old backup,
emptied and written again) by a history the subscriber never followed. On
main a subscription resumed on such a journal went on yielding its entries
after the ones it had received from the other.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.procs import ServiceProcess
from vecraft.clients.journal import JournalClient
from vecraft.shared.common.errors import HistoryMismatch
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = pytest.mark.integration
JOURNAL = "vecraft.services.journal_service"
PARTITION = "data-0"
#: A hang detector only: every step below answers in milliseconds.
WAIT_S = 60.0


async def _append(client: JournalClient, n: int, tag: str) -> list[journal_pb2.AppendResponse]:
    return [await client.append(PARTITION, f"{tag}-{i}".encode(), request_id=uuid.uuid4().hex,
                                ack=journal_pb2.ACK_JOURNAL) for i in range(n)]


async def _next(entries: AsyncIterator[journal_pb2.JournalEntry]) -> journal_pb2.JournalEntry:
    return await asyncio.wait_for(anext(entries), WAIT_S)


def _start(start_service: Callable[..., ServiceProcess], data_dir: Path, name: str) -> ServiceProcess:
    return start_service(JOURNAL, ["--data-dir", str(data_dir), "--data-partitions", "1"],
                         name=name, ready_timeout=60.0)


async def test_subscribe_checks_the_hlc_before_its_first_offset(
        start_service: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    journal = _start(start_service, tmp_path / "j", "journal")
    client = JournalClient(journal.grpc_address)
    try:
        acks = await _append(client, 3, "a")
        good = client.subscribe(PARTITION, 3, replica_id="good", role="cache", after_hlc=acks[1].hlc)
        entry = await _next(aiter(good))
        assert (entry.offset, entry.payload) == (3, b"a-2")
        await good.close()

        bad = client.subscribe(PARTITION, 3, replica_id="bad", role="cache", after_hlc=acks[1].hlc + 1)
        with pytest.raises(HistoryMismatch) as err:
            await _next(aiter(bad))
        assert f"offset 2 has HLC {acks[1].hlc} here" in err.value.message, err.value.message
        await bad.close()
    finally:
        await client.close()


async def test_a_resumed_subscription_refuses_a_replaced_history(
        start_service: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    # The other history first (its own journal, then stopped): longer than what the subscriber
    # will have received, so only a history check tells it from a plain restart.
    other = _start(start_service, tmp_path / "other", "other-journal")
    other_client = JournalClient(other.grpc_address)
    other_acks = await _append(other_client, 7, "b")
    await other_client.close()
    other.stop()

    journal = _start(start_service, tmp_path / "main", "journal")
    client = JournalClient(journal.grpc_address)
    try:
        acks = await _append(client, 4, "a")
        assert {a.hlc for a in acks}.isdisjoint(a.hlc for a in other_acks[:4])
        sub = client.subscribe(PARTITION, 1, replica_id="follower", role="cache")
        entries = aiter(sub)
        assert [(await _next(entries)).payload for _ in range(4)] == [b"a-0", b"a-1", b"a-2", b"a-3"]

        # The journal is replaced by the other history on the same address; the subscription
        # reconnects by itself and resumes after offset 4.
        journal.stop()
        journal.args[journal.args.index("--data-dir") + 1] = str(tmp_path / "other")
        journal.start()
        with pytest.raises(HistoryMismatch) as err:
            entry = await _next(entries)
            pytest.fail(f"entry {entry.offset} ({entry.payload!r}) of the other history was yielded")
        assert (f"offset 4 has HLC {other_acks[3].hlc} here, the subscriber resumes after HLC "
                f"{acks[3].hlc}") in err.value.message, err.value.message
        await sub.close()

        # A restart on the same history resumes as before.
        fresh = client.subscribe(PARTITION, 5, replica_id="follower-2", role="cache",
                                 after_hlc=other_acks[3].hlc)
        assert (await _next(aiter(fresh))).payload == b"b-4"
        await fresh.close()
    finally:
        await client.close()
