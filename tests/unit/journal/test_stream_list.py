"""Listing a prefix's JetStream streams while a clustered JetStream settles.

``StreamIO.streams_on`` pages through ``STREAM.LIST``. A cluster that is still
electing stream leaders answers with streams it could not describe (``missing``)
and a ``total`` that counts them: taken at face value the list is incomplete,
and paging by ``offset = len(found)`` re-asked the same page forever (a journal
that never became ready on a restarted cluster). Both are now transient errors,
which the journal's start retries with its back-off and log line.
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import nats.errors
import pytest

from vecraft.services.journal_service.wal.jetstream_io import TRANSIENT, StreamIO

pytestmark = pytest.mark.unit


def _info(name: str, messages: int) -> dict[str, Any]:
    return {"config": {"name": name, "subjects": [f"v.journal.{name}"]}, "state": {"messages": messages}}


class _Nats:
    """Answers STREAM.LIST requests with the given pages, in order (the last one repeats)."""

    def __init__(self, *pages: dict[str, Any]) -> None:
        self.pages = list(pages)
        self.asked: list[int] = []

    def jetstream(self, timeout: float) -> None:
        return None

    def new_inbox(self) -> str:
        return "_INBOX.test"

    async def request(self, subject: str, payload: bytes, timeout: float) -> SimpleNamespace:
        assert subject == "$JS.API.STREAM.LIST"
        self.asked.append(json.loads(payload)["offset"])
        page = self.pages.pop(0) if len(self.pages) > 1 else self.pages[0]
        return SimpleNamespace(data=json.dumps(page).encode())


async def test_a_complete_list_pages_to_the_end() -> None:
    nc = _Nats({"total": 2, "streams": [_info("a", 3)]}, {"total": 2, "streams": [_info("b", 0)]})
    found = await StreamIO(nc, timeout=1.0).streams_on("v.journal.*")  # type: ignore[arg-type]
    assert found == {"a": (["v.journal.a"], 3), "b": (["v.journal.b"], 0)} and nc.asked == [0, 1]


async def test_streams_it_could_not_describe_are_a_transient_error() -> None:
    nc = _Nats({"total": 2, "streams": [_info("a", 3)], "missing": ["b"]})
    with pytest.raises(TRANSIENT) as err:
        await StreamIO(nc, timeout=1.0).streams_on("v.journal.*")  # type: ignore[arg-type]
    assert isinstance(err.value, nats.errors.Error) and "['b']" in str(err.value)


async def test_pages_that_do_not_advance_are_a_transient_error_not_a_spin() -> None:
    # total counts a stream no page ever shows: before, offset 1 was asked again and again.
    nc = _Nats({"total": 2, "streams": [_info("a", 3)]}, {"total": 2, "streams": [_info("a", 3)]})
    with pytest.raises(TRANSIENT):
        await StreamIO(nc, timeout=1.0).streams_on("v.journal.*")  # type: ignore[arg-type]
    assert nc.asked == [0, 1]
