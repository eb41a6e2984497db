"""domain/stats.py against scipy and statsmodels on known cases (raw data built from the counts)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_effectsize, proportions_ztest

from qunflow.domain.stats import (
    chance_to_beat,
    compare_means,
    compare_proportions,
    sample_size,
    srm_flagged,
    srm_p_value,
)

CASES = [(120, 1000, 150, 1000), (30, 250, 22, 240), (5, 40, 12, 38), (1, 100, 0, 100), (480, 5000, 560, 5100)]


@pytest.mark.parametrize(("xc", "nc", "xv", "nv"), CASES)
def test_proportions_match_statsmodels(xc: int, nc: int, xv: int, nv: int) -> None:
    got = compare_proportions(xc, nc, xv, nv)
    _, p_value = proportions_ztest([xv, xc], [nv, nc], alternative="two-sided")  # pooled by default
    low, high = confint_proportions_2indep(xv, nv, xc, nc, method="wald", compare="diff")
    assert got.diff == pytest.approx(xv / nv - xc / nc, abs=1e-12)
    assert got.p_value == pytest.approx(p_value, abs=1e-9)
    assert (got.ci_low, got.ci_high) == pytest.approx((low, high), abs=1e-9)
    assert got.lift == pytest.approx((xv / nv - xc / nc) / (xc / nc), abs=1e-12)


@pytest.mark.parametrize(("xc", "nc", "xv", "nv"), CASES + [(0, 10, 0, 10), (3000, 40000, 3150, 40000)])
def test_chance_to_beat_control_matches_numeric_integration(xc: int, nc: int, xv: int, nv: int) -> None:
    control, variant = stats.beta(1 + xc, 1 + nc - xc), stats.beta(1 + xv, 1 + nv - xv)
    # P(V > C) = integral of f_V(p) F_C(p) dp, with the mass of both laws inside the range integrated
    edges = sorted({0.0, 1.0, *control.ppf([1e-9, 0.5, 1 - 1e-9]), *variant.ppf([1e-9, 0.5, 1 - 1e-9])})
    expected = sum(integrate.quad(lambda p: variant.pdf(p) * control.cdf(p), a, b, limit=200)[0]
                   for a, b in zip(edges, edges[1:], strict=False))
    assert chance_to_beat(xc, nc, xv, nv) == pytest.approx(expected, abs=1e-6)


def test_chance_to_beat_is_symmetric_and_a_tie_is_one_half() -> None:
    assert chance_to_beat(40, 100, 40, 100) == pytest.approx(0.5, abs=1e-12)
    assert chance_to_beat(30, 100, 45, 100) + chance_to_beat(45, 100, 30, 100) == pytest.approx(1, abs=1e-12)
    assert chance_to_beat(30, 100, 45, 100) > 0.95


def test_empty_denominators_and_no_variance_give_none() -> None:
    empty = compare_proportions(0, 0, 3, 10)
    assert (empty.diff, empty.p_value, empty.chance_to_beat_control) == (None, None, None)
    flat = compare_proportions(0, 10, 0, 12)
    assert (flat.diff, flat.p_value, flat.lift) == (0.0, None, None)
    assert compare_means(1, 5.0, 25.0, 3, 3.0, 5.0).p_value is None  # one member: no variance


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_welch_matches_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    control = rng.exponential(20, 300) * (rng.random(300) < 0.3)
    variant = rng.exponential(25, 280) * (rng.random(280) < 0.3)
    got = compare_means(len(control), control.sum(), (control**2).sum(), len(variant), variant.sum(),
                        (variant**2).sum())
    result = stats.ttest_ind(variant, control, equal_var=False)
    low, high = result.confidence_interval(0.95)
    assert got.diff == pytest.approx(variant.mean() - control.mean(), abs=1e-9)
    assert got.p_value == pytest.approx(result.pvalue, abs=1e-9)
    assert (got.ci_low, got.ci_high) == pytest.approx((low, high), abs=1e-7)


def test_srm_matches_scipy_and_flags_70_30_not_50_50() -> None:
    for observed, weights in (([5030, 4970], [1, 1]), ([700, 300], [1, 1]), ([310, 290, 400], [0.3, 0.3, 0.4])):
        expected = stats.chisquare(observed, [sum(observed) * w / sum(weights) for w in weights]).pvalue
        assert srm_p_value(observed, weights) == pytest.approx(expected, abs=1e-12)
    assert srm_flagged(srm_p_value([7000, 3000], [0.5, 0.5]))
    assert not srm_flagged(srm_p_value([5020, 4980], [0.5, 0.5]))
    assert not srm_flagged(srm_p_value([7000, 3000], [0.7, 0.3]))  # a planned 70/30 is no mismatch
    assert srm_p_value([0, 0], [1, 1]) is None


def test_sample_size_matches_statsmodels_power() -> None:
    """statsmodels uses Cohen's h (arcsine); ours is the classic unpooled/pooled formula: within 2%."""
    for base, mde in ((0.1, 0.2), (0.3, 0.1), (0.05, 0.5)):
        ours = sample_size(base, mde)
        assert ours is not None
        h = proportion_effectsize(base * (1 + mde), base)
        reference = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=1)
        assert ours == pytest.approx(reference, rel=0.02)
    assert sample_size(0.1, 0.2) == 3841  # the textbook figure for 10% -> 12%, alpha 0.05, power 0.8
    assert sample_size(0.0, 0.2) is None and sample_size(None, 0.2) is None
