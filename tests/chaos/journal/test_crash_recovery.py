"""kill -9 under write load, torn segment tails and damaged records, against a real journal process."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import pytest

from tests.support.procs import ServiceProcess
from vecraft.clients.journal import JournalClient
from vecraft.shared.common.errors import VecraftError
from vecraft.shared.rpc.v1 import journal_pb2

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

JOURNAL = "vecraft.services.journal_service"
Acked = dict[str, tuple[int, int, bytes]]


async def write_until_failure(client: JournalClient, acked: Acked, writers: int,
                              stop: asyncio.Event) -> None:
    async def writer(w: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            key = f"w{w}-{i}-{uuid.uuid4().hex[:6]}"
            payload = os.urandom(50 + (w * 131 + i * 17) % 4000)
            try:
                resp = await client.append("data-0", payload, request_id=key, ack=journal_pb2.ACK_JOURNAL)
            except VecraftError:
                return
            acked[key] = (resp.offset, resp.hlc, payload)

    await asyncio.gather(*[writer(w) for w in range(writers)])


async def check_log(client: JournalClient, acked: Acked) -> list[journal_pb2.JournalEntry]:
    entries = await client.pull("data-0", 1)
    assert [e.offset for e in entries] == list(range(1, len(entries) + 1))
    assert all(a.hlc < b.hlc for a, b in pairwise(entries))
    rids = [e.request_id for e in entries]
    assert len(rids) == len(set(rids)), "an entry was duplicated"
    by_rid = {e.request_id: e for e in entries}
    for key, (offset, hlc, payload) in acked.items():
        e = by_rid.get(key)
        assert e is not None, f"acknowledged entry {key} at {offset} is missing"
        assert (e.offset, e.hlc, e.payload) == (offset, hlc, payload)
    return entries


def segments(data: Path) -> list[Path]:
    return sorted((data / "data-0").glob("*.wal"))


async def test_kill_9_under_load_loses_no_acknowledged_entry(
        start_service: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    data = tmp_path / "data"
    # Small segments: the crash also exercises segment rolling.
    journal = start_service(JOURNAL, ["--data-dir", str(data), "--segment-bytes", "200000"], ready_timeout=60)
    client = JournalClient(journal.grpc_address)
    client.unavailable_retry_s = 0  # a dead journal must end the load, not be waited out
    acked: Acked = {}
    stop = asyncio.Event()
    load = asyncio.create_task(write_until_failure(client, acked, 16, stop))
    deadline = asyncio.get_running_loop().time() + 120
    while len(acked) < 400:
        # The load ending early (a writer failed) or stalling must fail here, not hang the test.
        assert not load.done() and asyncio.get_running_loop().time() < deadline, len(acked)
        await asyncio.sleep(0.05)
    await asyncio.to_thread(journal.kill)  # -9 while appends are in flight
    stop.set()
    await load
    await client.close()
    assert len(segments(data)) > 1

    await asyncio.to_thread(journal.start)
    client = JournalClient(journal.grpc_address)
    entries = await check_log(client, acked)
    assert len(entries) >= len(acked)
    # Retrying an acknowledged write after the crash gets its original position.
    key, (offset, hlc, payload) = next(iter(acked.items()))
    retry = await client.append("data-0", payload, request_id=key, ack=journal_pb2.ACK_JOURNAL)
    assert retry.duplicate and (retry.offset, retry.hlc) == (offset, hlc)
    new = await client.append("data-0", b"after", request_id="after-crash", ack=journal_pb2.ACK_JOURNAL)
    assert new.offset == len(entries) + 1 and new.hlc > entries[-1].hlc
    await client.close()


async def test_truncated_tail_is_cut_and_damage_in_the_middle_refuses_to_start(
        start_service: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    data = tmp_path / "data"
    journal = start_service(JOURNAL, ["--data-dir", str(data)], ready_timeout=60)
    client = JournalClient(journal.grpc_address)
    acked: Acked = {}
    for i in range(20):
        payload = os.urandom(300)
        resp = await client.append("data-0", payload, request_id=f"t{i}", ack=journal_pb2.ACK_JOURNAL)
        acked[f"t{i}"] = (resp.offset, resp.hlc, payload)
    await client.close()
    await asyncio.to_thread(journal.kill)

    seg = segments(data)[-1]
    os.truncate(seg, seg.stat().st_size - 100)  # the last record loses its end
    await asyncio.to_thread(journal.start)
    assert "cut torn tail" in journal.tail(200)
    client = JournalClient(journal.grpc_address)
    del acked["t19"]
    entries = await check_log(client, acked)
    assert len(entries) == 19 and not (await client.lookup_request("t19")).found
    await client.close()
    await asyncio.to_thread(journal.stop)

    raw = bytearray(seg.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    seg.write_bytes(bytes(raw))
    with pytest.raises(RuntimeError, match="exited"):
        await asyncio.to_thread(journal.start)
    assert "refuses to skip damaged records" in journal.tail(200)
