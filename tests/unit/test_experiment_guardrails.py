"""Guardrails and playbook-step documents (domain/experiments.py), pure: comparisons against scipy and
statsmodels-style formulas, the worse flag, the document rules for `varies: {playbook, step}`."""

from __future__ import annotations

from datetime import date

import pytest
from scipy import stats

from qunflow.domain.experiments import (
    GUARDRAIL_METRICS,
    PlaybookStep,
    guardrail_columns,
    guardrail_comparisons,
    parse_experiments,
    results,
)
from qunflow.domain.metrics import METRIC_KEYS
from qunflow.domain.playbooks import PlaybookErrors
from qunflow.services.experiments import conclusion, format_guardrail

STEP_DOC = """kind: experiment
key: s2-day2
varies: {playbook: s2_warmup, step: day2}
variants:
  - {key: control}
  - {key: b, text: {zh: "看这里 {{ link }}", en: "Look here {{ link }}"}}
guardrails: [retention_d7, revenue_per_member]
"""


def test_guardrail_metrics_are_metrics_md_keys_with_their_columns() -> None:
    assert set(GUARDRAIL_METRICS) <= set(METRIC_KEYS)
    assert guardrail_columns("retention_d7") == ("retention_d7_n", "retention_d7_x")
    assert guardrail_columns("k_factor") == ("k_factor_n", "k_factor_sum", "k_factor_sq")


def test_a_rate_guardrail_matches_the_pooled_z_test_and_flags_worse() -> None:
    counts = {"a": {"retention_d7_n": 200, "retention_d7_x": 120}, "b": {"retention_d7_n": 180, "retention_d7_x": 80}}
    [row] = guardrail_comparisons(["retention_d7"], counts, ["a", "b"])
    p0, p1, pooled = 120 / 200, 80 / 180, 200 / 380
    z = (p1 - p0) / (pooled * (1 - pooled) * (1 / 200 + 1 / 180)) ** 0.5
    assert row["value"] == pytest.approx(p1) and row["control_value"] == pytest.approx(p0)
    assert row["p_value"] == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    se = (p0 * (1 - p0) / 200 + p1 * (1 - p1) / 180) ** 0.5
    assert row["ci_low"] == pytest.approx(p1 - p0 - stats.norm.ppf(0.975) * se, rel=1e-9)
    assert row["worse"] is True and (row["members"], row["control_members"]) == (180, 200)
    better = guardrail_comparisons(["retention_d7"], {"a": counts["b"], "b": counts["a"]}, ["a", "b"])[0]
    assert better["p_value"] == pytest.approx(row["p_value"]) and better["worse"] is False  # better is not worse


def test_a_mean_guardrail_matches_welch_and_empty_gives_null() -> None:
    control, variant = [5.0, 0.0, 3.0, 8.0, 0.0, 1.0], [0.0, 0.0, 2.0, 1.0]
    counts = {name: {"revenue_per_member_n": len(xs), "revenue_per_member_sum": sum(xs),
                     "revenue_per_member_sq": sum(x * x for x in xs)}
              for name, xs in (("c", control), ("v", variant))}
    [row] = guardrail_comparisons(["revenue_per_member"], counts, ["c", "v"])
    assert row["p_value"] == pytest.approx(stats.ttest_ind(variant, control, equal_var=False).pvalue, rel=1e-9)
    assert row["diff"] == pytest.approx(3 / 4 - 17 / 6)
    [empty] = guardrail_comparisons(["revenue_per_member"], {"c": counts["c"]}, ["c", "v"])
    assert (empty["value"], empty["diff"], empty["p_value"], empty["worse"]) == (None, None, None, False)
    assert guardrail_comparisons(["revenue_per_member"], counts, ["c"]) == []


def test_results_carry_guardrails_and_the_conclusion_warns_in_both_languages() -> None:
    counts = {"a": {"members": 300, "mature": 300, "converted": 30, "converted_mature": 30},
              "b": {"members": 300, "mature": 300, "converted": 31, "converted_mature": 31}}
    guards = {"a": {"retention_d1_n": 300, "retention_d1_x": 150}, "b": {"retention_d1_n": 300, "retention_d1_x": 90}}
    report = results("x", date(2026, 1, 1), counts, [("a", 1.0), ("b", 1.0)], min_mature=100, mde=0.1,
                     guardrails=["retention_d1"], guardrail_counts=guards)
    assert report["verdict"] == "no_difference" and report["guardrails_worse"] is True
    assert report["guardrail_metrics"] == ["retention_d1"]
    assert "Guardrail warning: retention_d1 is significantly worse in b (-20.0 pt" in conclusion(report, "en")
    assert "护栏指标警告:b 组的 retention_d1 显著变差" in conclusion(report, "zh")
    plain = results("x", date(2026, 1, 1), counts, [("a", 1.0), ("b", 1.0)], min_mature=100, mde=0.1)
    assert plain["guardrails"] == [] and plain["guardrails_worse"] is False
    assert "Guardrail" not in conclusion(plain, "en")


def test_format_guardrail() -> None:
    assert format_guardrail(0.256, "proportion") == "25.6%"
    assert format_guardrail(-0.031, "proportion", signed=True) == "-3.1 pt"
    assert format_guardrail(12.5, "mean") == "12.50" and format_guardrail(None, "mean") == "—"


def test_a_playbook_step_document() -> None:
    [source] = parse_experiments(STEP_DOC)
    doc = source.experiment
    assert doc.varies == PlaybookStep(playbook="s2_warmup", step="day2")
    assert doc.varies_json() == {"playbook": "s2_warmup", "step": "day2"} and doc.varies_label == "s2_warmup/day2"
    assert doc.varies.matches("s2_warmup", "day2", "day2_content")
    assert doc.varies.matches("s2_warmup", None, "day2")  # or the template the step sends
    assert not doc.varies.matches("s1_welcome", "day2", None)
    assert doc.variant("b").body.en.startswith("Look")  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "message"), [
    (STEP_DOC.replace("text: {zh", "dm: {zh"), "give `text`, not `dm`"),
    (STEP_DOC.replace("  - {key: control}", "  - {key: control, text: {zh: a, en: b}}"), "keeps the step's own"),
    (STEP_DOC.replace("  - {key: b, text", "  - {key: b, weight: 2}\n  - {key: c, text"), "gives its text"),
    (STEP_DOC.replace("revenue_per_member]", "revenue_per_member, retention_d7]"), "named twice"),
    (STEP_DOC.replace("revenue_per_member]", "cohort_size]"), "cannot be a guardrail"),
    (STEP_DOC.replace("revenue_per_member]", "d7_retention]"), "<text>:7: guardrails: not a METRICS.md"),
    (STEP_DOC.replace("{{ link }}\", en", "{{ coupon_link }}\", en"), "<text>:6: variants.1.text.zh"),
    (STEP_DOC.replace("step: day2}", "step: Day 2}"), "varies"),
])
def test_bad_step_documents_name_the_line(text: str, message: str) -> None:
    with pytest.raises(PlaybookErrors, match=message):
        parse_experiments(text)
