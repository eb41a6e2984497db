"""Experiment statistics from sufficient statistics (counts, sums, sums of squares); no I/O.

SQL counts and sums per variant; these functions turn them into tests and intervals
(docs/experiments.md says which and why). A value whose denominator is empty, or whose
variance is zero so that no test statistic exists, is None, never 0.

numpy and scipy are imported where a test needs them: importing scipy takes about half a second of CPU,
and the join path imports this module (through the experiments' assignment) without ever testing anything;
in `qunflow serve` that import stalled the first joins after a start by 0.4 s (bench/bench_connectors.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

LEVEL = 0.95
SRM_THRESHOLD = 0.001  # below this p-value the split is not the one planned: the result cannot be trusted
_NORMAL = NormalDist()


def _z(level: float) -> float:
    return _NORMAL.inv_cdf(0.5 + level / 2)


@dataclass(frozen=True)
class Proportions:
    """Variant against control for a rate: converted x out of n mature members in each."""

    diff: float | None  # variant rate - control rate
    ci_low: float | None  # Wald interval of the difference (unpooled standard error)
    ci_high: float | None
    p_value: float | None  # two-sided pooled two-proportion z-test
    lift: float | None  # relative: diff / control rate
    chance_to_beat_control: float | None  # P(variant rate > control rate), Beta(1, 1) priors


def compare_proportions(x_control: int, n_control: int, x_variant: int, n_variant: int,
                        level: float = LEVEL) -> Proportions:
    if n_control <= 0 or n_variant <= 0:
        return Proportions(None, None, None, None, None, None)
    p_c, p_v = x_control / n_control, x_variant / n_variant
    diff = p_v - p_c
    se = math.sqrt(p_c * (1 - p_c) / n_control + p_v * (1 - p_v) / n_variant)
    half = _z(level) * se
    pooled = (x_control + x_variant) / (n_control + n_variant)
    pooled_se = math.sqrt(pooled * (1 - pooled) * (1 / n_control + 1 / n_variant))
    p_value = 2 * _NORMAL.cdf(-abs(diff) / pooled_se) if pooled_se > 0 else None
    lift = diff / p_c if p_c > 0 else None
    return Proportions(diff, diff - half, diff + half, p_value, lift,
                       chance_to_beat(x_control, n_control, x_variant, n_variant))


def chance_to_beat(x_control: int, n_control: int, x_variant: int, n_variant: int) -> float:
    """P(p_variant > p_control) with p ~ Beta(1 + x, 1 + n - x), exactly (Evan Miller's closed form).

    P(B > A) = sum over i < a_B of B(a_A + i, b_A + b_B) / ((b_B + i) B(1 + i, b_B) B(a_A, b_A)).
    The sum runs over the smaller of the two `a`s (P(A > B) = 1 - P(B > A) for continuous laws).
    """
    a_c, b_c = 1 + x_control, 1 + n_control - x_control
    a_v, b_v = 1 + x_variant, 1 + n_variant - x_variant
    if a_v <= a_c:
        return _beats(a_c, b_c, a_v, b_v)
    return 1.0 - _beats(a_v, b_v, a_c, b_c)


def _beats(a_a: int, b_a: int, a_b: int, b_b: int) -> float:
    import numpy as np
    from scipy import special

    i = np.arange(a_b, dtype=np.float64)
    logs = (special.betaln(a_a + i, b_a + b_b) - np.log(b_b + i) - special.betaln(1 + i, b_b)
            - special.betaln(a_a, b_a))
    return float(min(1.0, max(0.0, np.exp(logs).sum())))


@dataclass(frozen=True)
class Means:
    """Variant against control for a per-member mean (revenue per member): Welch's t-test."""

    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    lift: float | None


def compare_means(n_control: int, sum_control: float, sumsq_control: float,
                  n_variant: int, sum_variant: float, sumsq_variant: float, level: float = LEVEL) -> Means:
    if n_control <= 0 or n_variant <= 0:
        return Means(None, None, None, None, None)
    m_c, m_v = sum_control / n_control, sum_variant / n_variant
    diff = m_v - m_c
    lift = diff / m_c if m_c != 0 else None
    if n_control < 2 or n_variant < 2:
        return Means(diff, None, None, None, lift)
    var_c = max(0.0, (sumsq_control - n_control * m_c * m_c) / (n_control - 1))
    var_v = max(0.0, (sumsq_variant - n_variant * m_v * m_v) / (n_variant - 1))
    s_c, s_v = var_c / n_control, var_v / n_variant
    se = math.sqrt(s_c + s_v)
    if se == 0:
        return Means(diff, None, None, None, lift)
    df = (s_c + s_v) ** 2 / (s_c**2 / (n_control - 1) + s_v**2 / (n_variant - 1))
    from scipy import stats as sps

    p_value = float(2 * sps.t.sf(abs(diff) / se, df))
    half = float(sps.t.ppf(0.5 + level / 2, df)) * se
    return Means(diff, diff - half, diff + half, p_value, lift)


def srm_p_value(observed: Sequence[int], weights: Sequence[float]) -> float | None:
    """Chi-square goodness of fit of the exposures per variant against the planned weights."""
    total = sum(observed)
    weight_sum = sum(weights)
    if len(observed) < 2 or total <= 0 or weight_sum <= 0:
        return None
    expected = [total * w / weight_sum for w in weights]
    if any(e <= 0 for e in expected):
        return None
    statistic = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    from scipy import stats as sps

    return float(sps.chi2.sf(statistic, len(observed) - 1))


def srm_flagged(p_value: float | None) -> bool:
    return p_value is not None and p_value < SRM_THRESHOLD


def sample_size(base_rate: float | None, mde_relative: float, alpha: float = 0.05, power: float = 0.8) -> int | None:
    """Mature members per variant for a two-sided two-proportion z-test to detect base_rate x (1 + mde)."""
    if base_rate is None or not 0 < base_rate < 1 or mde_relative == 0:
        return None
    target = base_rate * (1 + mde_relative)
    if not 0 < target < 1:
        return None
    z_a, z_b = _NORMAL.inv_cdf(1 - alpha / 2), _NORMAL.inv_cdf(power)
    mean = (base_rate + target) / 2
    top = (z_a * math.sqrt(2 * mean * (1 - mean))
           + z_b * math.sqrt(base_rate * (1 - base_rate) + target * (1 - target))) ** 2
    return math.ceil(top / (target - base_rate) ** 2)
