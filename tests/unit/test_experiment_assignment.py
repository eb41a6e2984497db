"""Sticky assignment (domain/experiments.py): same variant in every process, balanced, ramp without re-bucketing."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from qunflow.domain.experiments import assign

MEMBERS = 100_000


@settings(max_examples=8, deadline=None)
@given(name=st.text(min_size=1, max_size=30), weights=st.lists(st.integers(1, 9), min_size=2, max_size=4))
def test_100k_members_split_by_the_weights_within_binomial_noise(name: str, weights: list[int]) -> None:
    variants = [(f"v{i}", float(w)) for i, w in enumerate(weights)]
    counts = dict.fromkeys((v for v, _ in variants), 0)
    for i in range(MEMBERS):
        counts[assign(name, f"member-{i}", variants)] += 1  # type: ignore[index]
    total = sum(weights)
    expected = [MEMBERS * w / total for w in weights]
    # a chi-square goodness of fit at 1e-4: a fair hash fails it once in 10,000 experiments
    assert stats.chisquare(list(counts.values()), expected).pvalue > 1e-4, counts


def test_the_same_member_gets_the_same_variant_in_another_process() -> None:
    variants = [("A", 1.0), ("B", 1.0), ("C", 2.0)]
    here = [assign("welcome-copy", f"m{i}", variants, 0.6) for i in range(2000)]
    code = ("import json; from qunflow.domain.experiments import assign; "
            "print(json.dumps([assign('welcome-copy', f'm{i}', [('A', 1.0), ('B', 1.0), ('C', 2.0)], 0.6) "
            "for i in range(2000)]))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # another hash salt: Python's hash() plays no part
    there = json.loads(subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                                      text=True).stdout)
    assert here == there
    assert set(here) == {"A", "B", "C", None}


@settings(max_examples=30, deadline=None)
@given(low=st.floats(0.05, 0.9), step=st.floats(0.01, 0.5))
def test_ramping_up_adds_members_and_moves_nobody(low: float, step: float) -> None:
    variants = [("A", 1.0), ("B", 1.0)]
    for i in range(2000):
        before = assign("ramp", f"m{i}", variants, low)
        after = assign("ramp", f"m{i}", variants, min(1.0, low + step))
        assert before is None or before == after
        assert after in (None, assign("ramp", f"m{i}", variants, 1.0))
