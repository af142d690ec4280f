"""tests/support/ranking.py: answers of two index builds compare with a float tolerance and tie groups."""

from __future__ import annotations

import pytest

from tests.support.ranking import assert_same_ranking, tie_groups

pytestmark = pytest.mark.unit


def test_scores_that_round_apart_still_match() -> None:
    # The flake this helper exists for: round(.., 4) gave 13.4612 on one build, 13.4611 on the other.
    assert_same_ranking(["a", "b"], [13.46115004, 9.0], ["a", "b"], [13.46114996, 9.0])


def test_ids_inside_a_tie_may_swap_but_not_across_groups() -> None:
    assert_same_ranking(["a", "b", "c", "d"], [3.0, 2.0000001, 2.0, 1.0],
                        ["a", "c", "b", "d"], [3.0, 2.0000001, 2.0, 1.0])
    with pytest.raises(AssertionError, match=r"positions 0\.\.0"):
        assert_same_ranking(["a", "b"], [3.0, 2.0], ["b", "a"], [3.0, 2.0])
    assert tie_groups([3.0, 2.00001, 2.0, 1.0], [3.0, 2.0, 2.00001, 1.0]) == [range(0, 1), range(1, 3),
                                                                              range(3, 4)]


def test_different_scores_lengths_or_ids_fail() -> None:
    with pytest.raises(AssertionError, match="score 1"):
        assert_same_ranking(["a", "b"], [3.0, 2.0], ["a", "b"], [3.0, 2.01])
    with pytest.raises(AssertionError, match="different lengths"):
        assert_same_ranking(["a"], [3.0], ["a", "b"], [3.0, 2.0])
    with pytest.raises(AssertionError, match=r"positions 1\.\.1"):
        assert_same_ranking(["a", "b"], [3.0, 2.0], ["a", "x"], [3.0, 2.0])
