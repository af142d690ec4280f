"""The readers-writer lock is phase fair: waiting readers get in before the next writer."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from vecraft.shared.index.collection import CollectionIndex
from vecraft.shared.index.rwlock import RWLock

pytestmark = pytest.mark.unit


def _wait_until(predicate: object) -> None:
    deadline = time.monotonic() + 10
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_waiting_reader_enters_before_a_writer_that_asks_again() -> None:
    lock = RWLock()
    order: list[str] = []
    lock.acquire_write()
    reader = threading.Thread(target=lambda: (lock.acquire_read(), order.append("R"),
                                              lock.release_read()))
    reader.start()
    _wait_until(lambda: lock._readers_waiting == 1)
    lock.release_write()
    lock.acquire_write()  # the same writer at once: must not overtake the waiting reader
    order.append("W")
    lock.release_write()
    reader.join(5)
    assert order == ["R", "W"]


def test_new_readers_queue_behind_a_waiting_writer() -> None:
    lock = RWLock()
    order: list[str] = []
    lock.acquire_read()
    writer = threading.Thread(target=lambda: (lock.acquire_write(), order.append("W"),
                                              lock.release_write()))
    writer.start()
    _wait_until(lambda: lock._writers_waiting == 1)
    late = threading.Thread(target=lambda: (lock.acquire_read(), order.append("R2"),
                                            lock.release_read()))
    late.start()
    _wait_until(lambda: lock._readers_waiting == 1)
    assert order == []
    lock.release_read()
    writer.join(5)
    late.join(5)
    assert order == ["W", "R2"]


def test_readers_share_and_writers_exclude() -> None:
    lock = RWLock()
    inside = {"readers": 0, "writers": 0, "max_readers": 0}
    guard = threading.Lock()
    violations: list[str] = []

    def enter(kind: str) -> None:
        with guard:
            inside[kind] += 1
            inside["max_readers"] = max(inside["max_readers"], inside["readers"])
            if inside["writers"] > 1 or (inside["writers"] and inside["readers"]):
                violations.append(str(inside))

    def leave(kind: str) -> None:
        with guard:
            inside[kind] -= 1

    def reader() -> None:
        for _ in range(300):
            with lock.read():
                enter("readers")
                time.sleep(0)
                leave("readers")

    def writer() -> None:
        for _ in range(100):
            with lock.write():
                enter("writers")
                time.sleep(0)
                leave("writers")

    threads = [threading.Thread(target=reader) for _ in range(4)]
    threads += [threading.Thread(target=writer) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not violations and not any(t.is_alive() for t in threads)


def test_try_acquire_read_never_waits_for_a_writer() -> None:
    lock = RWLock()
    assert lock.try_acquire_read() and lock.try_acquire_read()  # readers share
    lock.release_read()
    lock.release_read()
    lock.acquire_write()
    assert not lock.try_acquire_read()  # a writer holds it: refused at once, not waited for
    lock.release_write()
    assert lock.try_acquire_read()
    lock.release_read()


def test_search_now_declines_while_a_write_holds_the_index() -> None:
    index = CollectionIndex(dim=2, metric="l2")
    index.upsert(["a", "b"], np.array([[0, 0], [1, 1]], dtype=np.float32), [None, None])
    query = np.zeros(2, dtype=np.float32)
    found = index.search_records_now(query, 1)
    assert found is not None and found[0] == ["a"]
    with index._rw.write():
        assert index.search_records_now(query, 1) is None
    again = index.search_records_now(query, 1)
    assert again is not None and again[0] == ["a"]
