"""tfcompress.paired: the paired top-1 difference, its interval and McNemar's test, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from tfcompress.errors import TfcompressError
from tfcompress.paired import paired_difference


def test_difference_interval_and_p_value_match_hand_computation():
    # 100 images: both right on 70, only A on 12, only B on 4, both wrong on 14.
    a = np.array([1] * 70 + [1] * 12 + [0] * 4 + [0] * 14, bool)
    b = np.array([1] * 70 + [0] * 12 + [1] * 4 + [0] * 14, bool)
    result = paired_difference(a, b)
    assert (result.only_a, result.only_b, result.images) == (12, 4, 100)
    assert result.points == pytest.approx(8.0)
    se = np.sqrt(12 + 4 - 8**2 / 100) / 100
    assert result.low == pytest.approx(100 * (0.08 - 1.959964 * se), abs=1e-4)
    assert result.high == pytest.approx(100 * (0.08 + 1.959964 * se), abs=1e-4)
    # exact two-sided binomial: P(X <= 4) + P(X >= 12), X ~ Bin(16, 1/2)
    from math import comb

    tail = sum(comb(16, k) for k in range(0, 5)) / 2**16
    assert result.p_value == pytest.approx(2 * tail)
    assert paired_difference(b, a).points == pytest.approx(-8.0)


def test_identical_models_differ_by_exactly_zero():
    correct = np.random.default_rng(0).random(650) < 0.75
    result = paired_difference(correct, correct)
    assert (result.points, result.low, result.high, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_bad_inputs_are_refused():
    with pytest.raises(TfcompressError, match="equal, non-empty"):
        paired_difference([True, False], [True])
    with pytest.raises(TfcompressError, match="equal, non-empty"):
        paired_difference([], [])
    with pytest.raises(TfcompressError, match="confidence must be in"):
        paired_difference([True], [False], confidence=1.5)
