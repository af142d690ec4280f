"""The chaos run's history checker (vecraft/bench/_history.py) on hand-made histories."""

from __future__ import annotations

import pytest

from vecraft.bench._history import ABSENT, Change, Outcome, Read, check

OK, UNKNOWN, FAILED = Outcome.OK, Outcome.UNKNOWN, Outcome.FAILED


def write(v: int, t0: float, t1: float, outcome: Outcome = OK, key: str = "a") -> Change:
    return Change(key, v, v, t0, t1, outcome)


def delete(v: int, t0: float, t1: float, outcome: Outcome = OK, key: str = "a") -> Change:
    return Change(key, v, ABSENT, t0, t1, outcome)


def strong(state: int, t0: float, t1: float, key: str = "a", final: bool = False) -> Read:
    return Read(key, "strong", t0, t1, state, horizon=t0, final=final)


def kinds(changes: list[Change], reads: list[Read]) -> list[str]:
    return [v.kind for v in check(changes, reads).violations]


def test_a_strong_read_sees_every_write_acknowledged_before_it_began() -> None:
    history = [write(1, 0, 1), write(2, 2, 3)]
    assert kinds(history, [strong(2, 4, 5), strong(1, 1.5, 1.6)]) == []
    assert kinds(history, [strong(1, 4, 5)]) == ["stale"]
    assert kinds(history, [strong(ABSENT, 4, 5)]) == ["stale"]
    # Concurrent with write 2: either answer is fine.
    assert kinds(history, [strong(1, 2.5, 2.6), strong(2, 2.5, 2.6)]) == []


def test_a_read_of_a_value_never_requested_is_a_phantom_at_every_level() -> None:
    history = [write(1, 0, 1)]
    assert kinds(history, [Read("a", "eventual", 2, 3, 7, horizon=None)]) == ["phantom"]
    # A write requested only after the read completed cannot explain it either.
    assert kinds([*history, write(2, 5, 6)], [Read("a", "eventual", 2, 3, 2, horizon=None)]) == ["phantom"]
    assert kinds([*history, write(2, 5, 6, FAILED)], [Read("a", "eventual", 6, 7, 2, horizon=None)]) == [
        "phantom"]


def test_unknown_outcomes_explain_either_answer_and_taint_the_key() -> None:
    history = [write(1, 0, 1), write(2, 2, 3, UNKNOWN), write(3, 4, 5)]
    # After the unknown change the key is only checked for phantoms.
    verdict = check(history, [strong(1, 6, 7), strong(2, 6, 7)])
    assert verdict.ok and verdict.tainted_keys == 1
    # Before it, the key is judged as usual.
    assert kinds(history, [strong(ABSENT, 1.5, 1.7)]) == ["stale"]


def test_deletes_and_the_final_read() -> None:
    history = [write(1, 0, 1), delete(2, 2, 3)]
    assert kinds(history, [strong(ABSENT, 4, 5, final=True)]) == []
    assert kinds(history, [strong(1, 4, 5, final=True)]) == ["lost"]


def test_bounded_reads_are_judged_from_their_bound_and_may_miss() -> None:
    history = [write(1, 0, 1), write(2, 2, 3)]
    # Horizon = start - bound: write 2 (acked at 3) need not be visible to a read at 3.5 with 1 s bound.
    assert kinds(history, [Read("a", "bounded", 3.5, 3.6, 1, horizon=2.5)]) == []
    assert kinds(history, [Read("a", "bounded", 5, 5.1, 1, horizon=4)]) == ["stale"]
    # A bounded search that found nothing is not judged (approximate search).
    assert kinds(history, [Read("a", "bounded", 5, 5.1, ABSENT, horizon=4, judge_absent=False)]) == []


def test_changes_must_be_numbered_in_sequence() -> None:
    with pytest.raises(ValueError, match="numbered"):
        check([write(1, 0, 1), write(3, 2, 3)], [])
