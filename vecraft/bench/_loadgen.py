"""Open-loop load: requests leave on a fixed schedule, whatever the server does.

A closed-loop client (send, wait, send) slows down with the server and hides
queueing: when the server stalls, the client simply sends less. Here request
``i`` is due at ``start + i / rate``; its latency is measured from that due
time, not from when it actually left, so time spent waiting behind a slow
server (or a busy client event loop) is counted as the user would feel it
("coordinated omission" avoided). Requests that cannot even be started because
``max_in_flight`` are already pending count as errors ("client-overload"),
never silently skipped.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

#: Error name of a request the generator refused because too many were pending.
CLIENT_OVERLOAD = "client-overload"


@dataclass(slots=True)
class Reply:
    """What a request function reports about one answer.

    ``ok`` is False for an HTTP error or a transport failure; ``error`` then
    names it (``"http-429"``, ``"ReadTimeout"``). ``info`` carries whatever the
    benchmark wants to aggregate (consistency info, result ids).
    """

    ok: bool
    status: int = 0
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Outcome:
    """One request of an open-loop run. Times in seconds since the run started."""

    index: int
    due: float
    sent: float
    done: float
    reply: Reply

    @property
    def latency_ms(self) -> float:
        """From the scheduled send time to the answer: includes client-side queueing."""
        return (self.done - self.due) * 1000.0

    @property
    def service_ms(self) -> float:
        """From the actual send to the answer: the server's share only."""
        return (self.done - self.sent) * 1000.0


@dataclass(slots=True)
class LoadResult:
    """All outcomes of one run, in schedule order, and the run's wall time."""

    rate: float
    duration_s: float
    outcomes: list[Outcome]
    wall_s: float

    @property
    def ok(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.reply.ok]

    @property
    def errors(self) -> dict[str, int]:
        """Count of failed requests by error name."""
        counts: dict[str, int] = {}
        for o in self.outcomes:
            if not o.reply.ok:
                name = o.reply.error or f"http-{o.reply.status}"
                counts[name] = counts.get(name, 0) + 1
        return counts

    @property
    def achieved_qps(self) -> float:
        """Successful answers per second of wall time (first due time to last answer)."""
        return len(self.ok) / self.wall_s if self.wall_s > 0 else 0.0


async def run_open_loop(send: Callable[[int], Awaitable[Reply]], *, rate: float, duration_s: float,
                        max_in_flight: int = 1000,
                        clock: Callable[[], float] = time.perf_counter) -> LoadResult:
    """Call ``send(i)`` at ``rate`` per second for ``duration_s`` seconds; wait for every answer.

    Args:
        send: issues request ``i`` and returns its :class:`Reply`; an exception
            it raises becomes a failed reply named after the exception class.
        rate: arrivals per second (> 0).
        duration_s: length of the schedule; ``int(rate * duration_s)`` requests.
        max_in_flight: pending requests beyond this are refused as
            :data:`CLIENT_OVERLOAD` (keeps a stalled server from exhausting the client).
        clock: monotonic seconds (tests may pass their own).

    Returns:
        The outcomes in schedule order.
    """
    if rate <= 0 or duration_s <= 0:
        raise ValueError(f"rate and duration must be > 0, got {rate}, {duration_s}")
    total = int(rate * duration_s)
    outcomes: list[Outcome | None] = [None] * total
    pending: set[asyncio.Task[None]] = set()
    start = clock()

    async def one(i: int, due: float) -> None:
        sent = clock() - start
        try:
            reply = await send(i)
        except Exception as exc:  # noqa: BLE001 - a failed request is data, not a crash of the run
            reply = Reply(ok=False, error=type(exc).__name__)
        outcomes[i] = Outcome(i, due, sent, clock() - start, reply)

    for i in range(total):
        due = i / rate
        delay = due - (clock() - start)
        if delay > 0:
            await asyncio.sleep(delay)
        if len(pending) >= max_in_flight:
            now = clock() - start
            outcomes[i] = Outcome(i, due, now, now, Reply(ok=False, error=CLIENT_OVERLOAD))
            continue
        task = asyncio.create_task(one(i, due), name=f"open-loop-{i}")
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.gather(*pending)
    done = [o for o in outcomes if o is not None]
    wall = max((o.done for o in done), default=0.0)
    return LoadResult(rate=rate, duration_s=duration_s, outcomes=done, wall_s=wall)
