"""Chaos load: a 429 is throttling (waited out after Retry-After), reported apart from errors."""

from __future__ import annotations

from types import SimpleNamespace

import httpx
import pytest

from vecraft.bench._history import Verdict
from vecraft.bench.chaos import THROTTLED, OpRecord, _retry_after_ms, summarize


@pytest.mark.parametrize(("header", "ms"), [("1", 1000.0), ("0.25", 250.0), (None, 200.0),
                                           ("soon", 200.0), ("0", 200.0)])
def test_retry_after_is_honoured_in_ms(header: str | None, ms: float) -> None:
    headers = httpx.Headers({"Retry-After": header} if header is not None else {})
    assert _retry_after_ms(headers) == ms


def test_throttled_operations_are_counted_apart_from_errors() -> None:
    ops = [OpRecord("write", 1.0, 1.1, True), OpRecord("write", 1.2, 1.3, False, THROTTLED),
           OpRecord("read:strong", 1.4, 1.5, False, "503")]
    session = SimpleNamespace(ops=ops, changes=[])
    outside = summarize([session], [], Verdict(), recovered_s=None)["outside_faults"]  # type: ignore[list-item]
    assert outside["throttled"] == 1
    assert outside["errors"] == {"503": 1}
    assert outside["operations"] == 3
