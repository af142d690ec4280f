"""EventHub fan-out: order per subscriber, close, overflow cut-off."""

from __future__ import annotations

import asyncio

import pytest

from vecraft.services.meta_manager.store import EventHub, SubscriptionOverflow

pytestmark = pytest.mark.unit


async def test_every_subscriber_gets_every_event_in_order() -> None:
    hub: EventHub[int] = EventHub()
    with hub.subscribe() as a, hub.subscribe() as b:
        for i in range(5):
            hub.publish(i)
        a.close()
        assert [e async for e in a] == [0, 1, 2, 3, 4]
        hub.publish(5)
        b.close()
        assert [e async for e in b] == [0, 1, 2, 3, 4, 5]
    assert hub.subscribers == 0


async def test_close_all_ends_a_waiting_iteration() -> None:
    hub: EventHub[int] = EventHub()
    sub = hub.subscribe()

    async def drain() -> list[int]:
        return [e async for e in sub]

    task = asyncio.create_task(drain())
    await asyncio.sleep(0)
    hub.publish(1)
    hub.close_all()
    assert await asyncio.wait_for(task, 5) == [1]


async def test_a_slow_subscriber_is_cut_off_not_buffered_forever() -> None:
    hub: EventHub[int] = EventHub(max_pending=3)
    slow = hub.subscribe()
    for i in range(10):
        hub.publish(i)
    with pytest.raises(SubscriptionOverflow):
        async for _ in slow:
            pass
    assert hub.subscribers == 0
