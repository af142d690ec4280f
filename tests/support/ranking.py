"""Compare two ranked search answers that come from different index builds.

Two builds of the same data (a restart from a snapshot, a rebuild from the
journal, another process) sum the same floats in another order, so a score can
differ in its last bits: ``round(score, 4)`` may then fall on either side of a
rounding boundary (13.4612 vs 13.4611), and two results whose scores are that
close may swap places. :func:`assert_same_ranking` therefore compares scores
with a tolerance and ids as a ranked list only where ties cannot swap: results
are cut into *tie groups* (runs of neighbours whose scores are within the
tolerance) and each group must hold the same set of ids in both answers.

A tie group that reaches the end of a top-k answer could in principle hold an
id whose tied twin was cut off at k; that needs the k-th and (k+1)-th scores
within float rounding (~1e-6), which random test data does not produce.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

# Float32 scores of two builds agree to ~1e-6 relative; these bounds leave ample room
# while still telling apart any two results a test means to distinguish.
REL = 1e-5
ABS = 1e-4


def close(a: float, b: float, *, rel: float = REL, abs: float = ABS) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs)


def tie_groups(scores_a: Sequence[float], scores_b: Sequence[float], *, rel: float = REL,
               abs: float = ABS) -> list[range]:
    """Positions cut where neighbouring scores differ by more than the tolerance in both answers."""
    groups: list[range] = []
    start = 0
    for i in range(1, len(scores_a)):
        if not (close(scores_a[i - 1], scores_a[i], rel=rel, abs=abs)
                or close(scores_b[i - 1], scores_b[i], rel=rel, abs=abs)):
            groups.append(range(start, i))
            start = i
    if scores_a:
        groups.append(range(start, len(scores_a)))
    return groups


def assert_same_ranking(ids_a: Sequence[str], scores_a: Sequence[float], ids_b: Sequence[str],
                        scores_b: Sequence[float], *, rel: float = REL, abs: float = ABS) -> None:
    """Assert two ranked answers agree: same length, scores equal within the tolerance position by
    position, and the same ids in each tie group (their order inside a group may differ)."""
    assert len(ids_a) == len(scores_a) and len(ids_b) == len(scores_b)
    shown = (f"\n  a: {list(zip(ids_a, scores_a, strict=True))}"
             f"\n  b: {list(zip(ids_b, scores_b, strict=True))}")
    assert len(ids_a) == len(ids_b), f"different lengths {len(ids_a)} != {len(ids_b)}{shown}"
    for i, (sa, sb) in enumerate(zip(scores_a, scores_b, strict=True)):
        assert close(sa, sb, rel=rel, abs=abs), f"score {i}: {sa} != {sb} (rel={rel}, abs={abs}){shown}"
    for group in tie_groups(scores_a, scores_b, rel=rel, abs=abs):
        got_a = {ids_a[i] for i in group}
        got_b = {ids_b[i] for i in group}
        assert got_a == got_b, f"positions {group.start}..{group.stop - 1}: {got_a} != {got_b}{shown}"
