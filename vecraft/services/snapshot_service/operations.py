"""Long-running admin operations (backup, verify) tracked with their progress.

One operation runs at a time: the snapshot service is the only writer of its
target, and a backup and an archiving pass must not write the same manifests
concurrently. Finished operations are kept (the newest :data:`KEEP`) so a
client polling ``GET /v1/operations/{id}`` sees the outcome.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from vecraft.shared.common.errors import Conflict, NotFound, VecraftError

KEEP = 50


@dataclass
class Operation:
    id: str
    kind: str
    state: str = "running"  # running | done | failed
    phase: str = ""
    done: int = 0
    total: int = 0
    started_unix_ms: int = field(default_factory=lambda: int(time.time() * 1000))
    ended_unix_ms: int = 0
    result: dict[str, Any] | None = None
    error: str = ""

    def progress(self, phase: str, done: int, total: int) -> None:
        self.phase, self.done, self.total = phase, done, total

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.state,
                "progress": {"phase": self.phase, "done": self.done, "total": self.total},
                "started_unix_ms": self.started_unix_ms, "ended_unix_ms": self.ended_unix_ms,
                "result": self.result, "error": self.error}


class Operations:
    def __init__(self) -> None:
        self._ops: OrderedDict[str, Operation] = OrderedDict()
        #: Held by whatever writes the target: an operation or an archiving pass.
        self.writer = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()

    def running(self) -> Operation | None:
        return next((op for op in self._ops.values() if op.state == "running"), None)

    def start(self, kind: str, work: Callable[[Operation], Awaitable[dict[str, Any]]]) -> Operation:
        """Run ``work`` in the background as operation ``kind``; Conflict while another runs."""
        busy = self.running()
        if busy is not None:
            raise Conflict(f"operation {busy.id} ({busy.kind}) is running; wait for it",
                           details={"operation": busy.id})
        op = Operation(f"op-{secrets.token_hex(6)}", kind)
        self._ops[op.id] = op
        while len(self._ops) > KEEP:
            self._ops.popitem(last=False)

        async def run() -> None:
            try:
                async with self.writer:
                    op.result = await work(op)
                op.state = "done"
            except VecraftError as exc:
                op.state, op.error = "failed", exc.message
            except Exception as exc:  # noqa: BLE001 - reported to the client polling the operation
                op.state, op.error = "failed", f"{type(exc).__name__}: {exc}"
            finally:
                op.ended_unix_ms = int(time.time() * 1000)

        task = asyncio.create_task(run(), name=f"operation:{op.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return op

    def get(self, op_id: str) -> Operation:
        op = self._ops.get(op_id)
        if op is None:
            raise NotFound(f"no operation {op_id!r}")
        return op

    def all(self) -> list[Operation]:
        return list(self._ops.values())

    async def cancel_all(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
