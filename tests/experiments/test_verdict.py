"""The verdict logic on hand-made metric sets: reproduced, reversed, within noise, and the noise itself."""

from __future__ import annotations

import math

import pytest

from cnnlab.experiments.verdict import (
    NOT_REPRODUCED,
    NOT_RESOLVED,
    REPRODUCED,
    Comparison,
    mean_std,
    overall,
    standard_error,
)


def _cmp(a, b, n=1000, expect="greater", **kw) -> Comparison:
    return Comparison("claim", "test_acc", "a", "b", tuple(a), tuple(b), n, expect, **kw)


def test_standard_error_is_the_larger_of_binomial_and_seed_spread():
    # one seed: only the binomial error of an accuracy on n images can be known
    assert standard_error([0.8], 1000) == pytest.approx(math.sqrt(0.8 * 0.2 / 1000))
    # seeds that agree closely: the binomial error still bounds the noise from below
    assert standard_error([0.80, 0.801, 0.799], 1000) == pytest.approx(math.sqrt(0.8 * 0.2 / 1000) / math.sqrt(3))
    # seeds that disagree more than sampling explains: their spread decides
    values = [0.70, 0.80, 0.90]
    assert standard_error(values, 100_000) == pytest.approx(mean_std(values)[1] / math.sqrt(3))
    assert standard_error([0.5], 10, value_se=0.01) == pytest.approx(0.01)


def test_a_clear_difference_in_the_papers_direction_is_reproduced():
    c = _cmp([0.85, 0.86], [0.80, 0.81])
    assert c.difference == pytest.approx(0.05) and c.difference > c.noise
    assert c.outcome == REPRODUCED
    assert "-> reproduced" in c.describe() and "+5.00%" in c.describe()


def test_a_clear_difference_against_the_paper_is_not_reproduced():
    assert _cmp([0.80], [0.86]).outcome == NOT_REPRODUCED


def test_a_difference_within_noise_decides_nothing():
    # 1 point on 1,000 images with one seed each: the noise (2 SE of the difference) is about 3.5 points
    c = _cmp([0.81], [0.80])
    assert c.noise == pytest.approx(2 * math.hypot(math.sqrt(0.81 * 0.19 / 1000), math.sqrt(0.8 * 0.2 / 1000)))
    assert c.outcome == NOT_RESOLVED
    # the same point on 100,000 images is resolved
    assert _cmp([0.81], [0.80], n=100_000).outcome == REPRODUCED


def test_not_less_claims_hold_unless_clearly_worse():
    assert _cmp([0.80], [0.81], expect="not_less").outcome == REPRODUCED  # within noise agrees
    assert _cmp([0.70], [0.81], expect="not_less").outcome == NOT_REPRODUCED
    with pytest.raises(ValueError, match="expect must be one of"):
        _cmp([0.8], [0.8], expect="less")


def test_overall_verdict():
    assert overall([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert overall([REPRODUCED, NOT_RESOLVED]) == NOT_RESOLVED
    assert overall([REPRODUCED, NOT_RESOLVED, NOT_REPRODUCED]) == NOT_REPRODUCED
    assert overall([]) == NOT_RESOLVED


def test_no_runs_is_an_error_not_a_number():
    with pytest.raises(ValueError, match="no finished runs"):
        _ = _cmp([], [0.8]).outcome
