"""Which shard replicas a storage node hosts, changed one step at a time towards a wanted set.

The placement map (or, without one, the ``--shards`` flag) says which shards the
node should host; :class:`ShardHosting` moves the hosted set there:

- **one change at a time**: a load (open the replica's files, start its loops)
  or a drop (leave the journal's ack accounting, stop routing to it, wait for its
  requests, stop its loops, final snapshot, close; the files stay) runs to its
  end before the next begins;
- **the newest wanted set wins**: after every step the next one is computed
  from the latest :meth:`ShardHosting.want`, so a map that arrives while a
  step runs supersedes any the node had not got to yet;
- drops come before loads (they free memory and threads), each in shard order;
- a change that fails (a directory that belongs to another shard, a disk
  error) is logged and kept in :attr:`ShardHosting.failed`; it is tried again
  with the next wanted set, or after ``retry_s``.

A load ends once the replica is open and following: its catch-up to the
journal head runs in the background (the replica is *catching up*, not
serving), so a long catch-up never holds up the next change, and dropping a
replica that is still catching up cancels it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Literal, Protocol

log = logging.getLogger(__name__)

#: Seconds before a failed change is tried again (unless a new wanted set comes first).
RETRY_FAILED_S = 10.0

Step = tuple[Literal["drop", "load"], int]


class ReplicaHost(Protocol):
    """What :class:`ShardHosting` changes: the node's hosted replicas."""

    def hosted(self) -> set[int]:
        """Shards with an open replica (catching up or serving)."""
        ...

    async def load(self, shard: int) -> None:
        """Open the replica of ``shard`` and start it (its catch-up runs on in the background).

        Raises anything that kept it from opening; it is not hosted then.
        """
        ...

    async def drop(self, shard: int) -> None:
        """Leave the journal, stop serving ``shard``, stop its loops, snapshot and close it (files stay)."""
        ...


def next_step(hosted: set[int], wanted: frozenset[int], failed: Iterable[int] = ()) -> Step | None:
    """The next change from ``hosted`` towards ``wanted`` (None: nothing to do).

    Drops first, then loads, each in shard order; ``failed`` shards are not tried again here.
    """
    skip = set(failed)
    extra = sorted(hosted - wanted - skip)
    if extra:
        return "drop", extra[0]
    missing = sorted(wanted - hosted - skip)
    if missing:
        return "load", missing[0]
    return None


class ShardHosting:
    """Serialised reconciliation of a node's hosted shards (:meth:`run` is the node's loop)."""

    def __init__(self, host: ReplicaHost, *, retry_s: float = RETRY_FAILED_S) -> None:
        self._host = host
        self.retry_s = retry_s
        #: The latest wanted set (None: nothing asked yet, the hosted set stays).
        self.wanted: frozenset[int] | None = None
        #: Changes that failed since the last wanted set: shard -> reason.
        self.failed: dict[int, str] = {}
        #: The step running now, for status.
        self.current: Step | None = None
        self._wake = asyncio.Event()

    def want(self, shards: Iterable[int]) -> None:
        """Host exactly ``shards`` from now on (supersedes every earlier call not yet reached)."""
        wanted = frozenset(shards)
        if wanted != self.wanted:
            self.failed.clear()
        self.wanted = wanted
        self._wake.set()

    def pending(self) -> Step | None:
        """The next step, as things stand."""
        if self.wanted is None:
            return None
        return next_step(self._host.hosted(), self.wanted, self.failed)

    async def reconcile(self) -> None:
        """Take steps until the hosted set is the wanted one (failed changes aside)."""
        while (step := self.pending()) is not None:
            kind, shard = step
            self.current = step
            try:
                if kind == "drop":
                    log.info("dropping shard %d (no longer placed here)", shard, extra={"shard": shard})
                    await self._host.drop(shard)
                else:
                    log.info("loading shard %d (placed here)", shard, extra={"shard": shard})
                    await self._host.load(shard)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one shard's failure must not stop the others
                log.error("could not %s shard %d: %s", kind, shard, exc, exc_info=exc,
                          extra={"shard": shard})
                self.failed[shard] = f"could not {kind} it: {type(exc).__name__}: {exc}"
            finally:
                self.current = None

    async def run(self) -> None:
        """Reconcile whenever a wanted set arrives, until cancelled; failed changes are retried."""
        while True:
            timeout = self.retry_s if self.failed else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            if not self._wake.is_set():
                self.failed.clear()  # the retry time passed: try the failed changes again
            self._wake.clear()
            await self.reconcile()
