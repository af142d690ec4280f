"""A phase-fair readers-writer lock for the in-memory indexes.

Searches (readers) run concurrently; index mutations (writers) run alone,
because faiss HNSW ``add`` reallocates the graph and vector storage under a
concurrent search. Writers apply big batches as a series of short write
sections, so the lock must be *phase fair*: when a writer releases, every
reader that was already waiting gets in before the next writer, even if that
writer asks again at once. A search therefore waits for at most one write
section, never for a whole batch, and writers are not starved by a steady
stream of searches (new readers queue behind a waiting writer).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class RWLock:
    """Readers-writer lock; not reentrant (a thread must not nest ``read`` in ``write``)."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0
        self._readers_waiting = 0
        # Bumped on each write release; a waiting reader that sees it change enters.
        self._phase = 0
        # Readers admitted by the last write release that have not entered yet;
        # the next writer waits for them.
        self._admitted = 0

    def acquire_read(self) -> None:
        with self._cond:
            if self._writer or self._writers_waiting:
                phase = self._phase
                self._readers_waiting += 1
                while (self._writer or self._writers_waiting) and self._phase == phase:
                    self._cond.wait()
                self._readers_waiting -= 1
                if self._phase != phase:
                    self._admitted -= 1
            self._readers += 1

    def try_acquire_read(self) -> bool:
        """Take the lock shared if no writer holds it or waits for it; False (not taken) otherwise."""
        with self._cond:
            if self._writer or self._writers_waiting:
                return False
            self._readers += 1
            return True

    def release_read(self) -> None:
        with self._cond:
            self._readers -= 1
            if self._readers == 0:
                self._cond.notify_all()

    def acquire_write(self) -> None:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers or self._admitted:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True

    def release_write(self) -> None:
        with self._cond:
            self._writer = False
            self._phase += 1
            self._admitted = self._readers_waiting
            self._cond.notify_all()

    @contextmanager
    def read(self) -> Iterator[None]:
        """Hold the lock shared for the ``with`` block."""
        self.acquire_read()
        try:
            yield
        finally:
            self.release_read()

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the lock exclusively for the ``with`` block."""
        self.acquire_write()
        try:
            yield
        finally:
            self.release_write()
