"""Experiments: sticky assignment and the results contract (docs/experiments.md); no I/O.

Assignment hashes the experiment and the member, so every worker, process and restart gives a member
the same variant. Two independent hashes: one decides whether the member is in the experiment's
traffic at all (ramping up only adds members), the other picks the variant by the weights (it never
depends on the traffic, so a ramp never moves anyone between variants).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from qunflow.domain.playbooks import (
    TEMPLATE_VARIABLES,
    PlaybookErrors,
    Problem,
    Step,
    Strict,
    Text,
    _documents,
    _line_of,
    template_problems,
    validation_problems,
)
from qunflow.domain.stats import compare_means, compare_proportions, sample_size, srm_flagged, srm_p_value
from qunflow.domain.welcome import DM_VARIABLES

SCALE = float(1 << 60)


def unit_hash(*parts: str) -> float:
    """A number in [0, 1) from the parts, the same in every process (no Python hash salt)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") >> 4) / SCALE


def assign(experiment: str, member: str, variants: Sequence[tuple[str, float]], traffic: float = 1.0) -> str | None:
    """The member's variant, or None when the member is outside the experiment's traffic share."""
    if unit_hash("traffic", experiment, member) >= traffic:
        return None
    total = sum(weight for _, weight in variants)
    point = unit_hash("variant", experiment, member) * total
    upto = 0.0
    for name, weight in variants:
        upto += weight
        if point < upto:
            return name
    return variants[-1][0]


def _ratio(top: float, bottom: float) -> float | None:
    return top / bottom if bottom else None


def results(experiment: str, as_of: date, counts: Mapping[str, Mapping[str, Any]],
            variants: Sequence[tuple[str, float]] | None, *, min_mature: int, mde: float,
            guardrails: Sequence[str] = (),
            guardrail_counts: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The results contract from per-variant sufficient statistics.

    `variants`: the document's variants and weights in order (the first is the control), or None for an
    experiment known only from events (variants as seen, alphabetically; equal weights).
    `guardrails`, `guardrail_counts`: the document's guardrail metrics and their sufficient statistics per
    variant (columns named by `guardrail_columns`).
    """
    plan = list(variants) if variants else [(name, 1.0) for name in sorted(counts)]
    empty = {"members": 0, "mature": 0, "converted": 0, "converted_mature": 0, "revenue": 0.0, "revenue_sq": 0.0}
    rows = [{**empty, **counts.get(name, {})} for name, _ in plan]
    out_variants: list[dict[str, Any]] = []
    for (name, weight), row in zip(plan, rows, strict=True):
        out_variants.append({
            "variant": name, "weight": weight, "members": int(row["members"]), "mature": int(row["mature"]),
            "converted": int(row["converted"]), "converted_mature": int(row["converted_mature"]),
            "in_progress": int(row["members"]) - int(row["mature"])
            - (int(row["converted"]) - int(row["converted_mature"])),
            "conversion_rate": _ratio(int(row["converted_mature"]), int(row["mature"])),
            "revenue_per_member": _ratio(float(row["revenue"]), int(row["mature"])),
        })
    planned = [(v["members"], w) for v, (_, w) in zip(out_variants, plan, strict=True) if w > 0]
    srm = srm_p_value([m for m, _ in planned], [w for _, w in planned])  # a variant the plan dropped: not in it
    control = out_variants[0] if out_variants else None
    comparisons: list[dict[str, Any]] = []
    mean_comparisons: list[dict[str, Any]] = []
    for variant, row in zip(out_variants[1:], rows[1:], strict=True):
        assert control is not None
        p = compare_proportions(control["converted_mature"], control["mature"],
                                variant["converted_mature"], variant["mature"])
        comparisons.append({"variant": variant["variant"], "metric": "conversion_rate", "diff": p.diff,
                            "ci_low": p.ci_low, "ci_high": p.ci_high, "p_value": p.p_value, "lift": p.lift,
                            "chance_to_beat_control": p.chance_to_beat_control})
        c_row = rows[0]
        m = compare_means(control["mature"], float(c_row["revenue"]), float(c_row["revenue_sq"]),
                          variant["mature"], float(row["revenue"]), float(row["revenue_sq"]))
        mean_comparisons.append({"variant": variant["variant"], "metric": "revenue_per_member", "diff": m.diff,
                                 "ci_low": m.ci_low, "ci_high": m.ci_high, "p_value": m.p_value, "lift": m.lift})
    enough = bool(out_variants) and all(v["mature"] >= min_mature for v in out_variants)
    needed = sample_size(control["conversion_rate"], mde) if control else None
    guarded = guardrail_comparisons(guardrails, guardrail_counts or {}, [v["variant"] for v in out_variants])
    report: dict[str, Any] = {
        "experiment": experiment, "as_of": as_of.isoformat(),
        "control": control["variant"] if control else None,
        "srm_p_value": srm, "srm_flagged": srm_flagged(srm),
        "enough_data": enough, "min_mature": min_mature,
        "mde": mde, "sample_size_per_variant": needed,
        "variants": out_variants, "comparisons": comparisons, "mean_comparisons": mean_comparisons,
    }
    report.update(guardrail_metrics=list(guardrails), guardrails=guarded,
                  guardrails_worse=any(g["worse"] for g in guarded))
    report["verdict"] = verdict(report)
    return report


# --- guardrails -------------------------------------------------------------------------------------------
#
# A guardrail is a METRICS.md metric compared per member, anchored at the first exposure in place of the
# join (docs/experiments.md "Guardrails"). Every one of them is "higher is better", so a guardrail got worse
# when the variant's value is significantly (p < 0.05) below the control's.

GUARDRAIL_METRICS: dict[str, str] = {
    "retention_d1": "proportion", "retention_d7": "proportion", "retention_d14": "proportion",
    "retention_d30": "proportion", "task_completion_d1": "proportion", "active_ratio_7d": "proportion",
    "active_ratio_14d": "proportion", "active_ratio_30d": "proportion", "conversion_rate": "proportion",
    "invites_per_member": "mean", "k_factor": "mean", "revenue_per_member": "mean", "margin_per_member": "mean",
    "ltv_90_revenue": "mean", "ltv_90_margin": "mean",
}
SIGNIFICANCE = 0.05


def guardrail_columns(metric: str) -> tuple[str, ...]:
    """The sufficient-statistic columns of one guardrail: (n, x) for a rate, (n, sum, sum of squares) for a
    per-member mean."""
    if GUARDRAIL_METRICS[metric] == "proportion":
        return f"{metric}_n", f"{metric}_x"
    return f"{metric}_n", f"{metric}_sum", f"{metric}_sq"


def guardrail_comparisons(metrics: Sequence[str], counts: Mapping[str, Mapping[str, Any]],
                          variants: Sequence[str]) -> list[dict[str, Any]]:
    """Each guardrail, each non-control variant against the control (the first of `variants`): the values,
    the difference with its 95% interval and p-value, and whether it got significantly worse."""
    out: list[dict[str, Any]] = []
    if len(variants) < 2:
        return out
    control = variants[0]
    for metric in metrics:
        cols = guardrail_columns(metric)
        c_stats = [counts.get(control, {}).get(col) or 0 for col in cols]
        for name in variants[1:]:
            v_stats = [counts.get(name, {}).get(col) or 0 for col in cols]
            if GUARDRAIL_METRICS[metric] == "proportion":
                (c_n, c_x), (v_n, v_x) = (int(c) for c in c_stats), (int(v) for v in v_stats)
                p = compare_proportions(c_x, c_n, v_x, v_n)
                value, control_value = _ratio(v_x, v_n), _ratio(c_x, c_n)
                diff, low, high, p_value = p.diff, p.ci_low, p.ci_high, p.p_value
            else:
                c_n, v_n = int(c_stats[0]), int(v_stats[0])
                m = compare_means(c_n, float(c_stats[1]), float(c_stats[2]), v_n, float(v_stats[1]), float(v_stats[2]))
                value, control_value = _ratio(float(v_stats[1]), v_n), _ratio(float(c_stats[1]), c_n)
                diff, low, high, p_value = m.diff, m.ci_low, m.ci_high, m.p_value
            out.append({"metric": metric, "variant": name, "kind": GUARDRAIL_METRICS[metric],
                        "members": v_n, "control_members": c_n, "value": value, "control_value": control_value,
                        "diff": diff, "ci_low": low, "ci_high": high, "p_value": p_value,
                        "worse": p_value is not None and diff is not None and p_value < SIGNIFICANCE and diff < 0})
    return out


def verdict(report: Mapping[str, Any]) -> str:
    """One word for the conclusion: srm, not_enough_data, winner, loser or no_difference.

    Fixed horizon (docs/experiments.md): the decision is read once, when every variant has the planned
    number of mature members; before that the verdict is not_enough_data whatever the p-values say.
    """
    if report["srm_flagged"]:
        return "srm"
    if not report["enough_data"]:
        return "not_enough_data"
    significant = [c for c in report["comparisons"] if c["p_value"] is not None and c["p_value"] < 0.05]
    if any(c["diff"] > 0 for c in significant):
        return "winner"
    if significant:
        return "loser"
    return "no_difference"


def best_variant(report: Mapping[str, Any]) -> str | None:
    """The significant variant with the largest gain over the control (for the conclusion)."""
    ups = [c for c in report["comparisons"] if c["p_value"] is not None and c["p_value"] < 0.05 and c["diff"] > 0]
    return max(ups, key=lambda c: c["diff"])["variant"] if ups else None


# --- the `kind: experiment` document -------------------------------------------------------------------
#
#     kind: experiment
#     key: welcome-copy
#     title: {zh: 欢迎语 A/B, en: Welcome copy A/B}
#     varies: welcome_dm                 # what the variants change (the S1 welcome DM), or
#                                        # {playbook: s2_warmup, step: day2} (a send_dm step: its id or template)
#     variants:                          # the first is the control; it keeps the welcome's own DM (the step's text)
#       - {key: control, weight: 1}
#       - {key: short, weight: 1, dm: {zh: "欢迎 {{ name }}!…", en: "Welcome, {{ name }}! …"}}
#                                        # a playbook step's variants give `text` instead of `dm`;
#                                        # {reward_program: s3_referral, rule: invite_one}: the variants give
#                                        # `reward: {inviter: 30}` (the face value per role; roles not named keep
#                                        # the rule's coupon)
#     primary_metric: conversion_rate    # any METRICS.md metric key
#     guardrails: [retention_d7]         # GUARDRAIL_METRICS keys, compared per variant
#     traffic: 1.0                       # share of members in the experiment (ramp up; never re-buckets)
#     start: 2026-12-01                  # optional: no exposures before (local day)
#     stop: 2027-01-15                   # optional: none after
#     shipped: short                     # optional: stopped, everyone gets this variant, no more exposures

EXPERIMENT_KIND = "experiment"
VARIES = ("welcome_dm", "playbook step", "reward rule")
REWARD_ROLES = ("inviter", "invitee", "team")
Amount = Annotated[Decimal, Field(gt=0, le=100000, decimal_places=2)]


def _doc_key(value: str) -> str:
    from qunflow.domain.entry import KEY_PATTERN

    if not KEY_PATTERN.fullmatch(value):
        raise ValueError("use lower-case letters, digits, '.', '-' or '_' (at most 64)")
    return value


def _metric_key(value: str) -> str:
    from qunflow.domain.metrics import METRIC_KEYS

    if value not in METRIC_KEYS:
        raise ValueError(f"not a METRICS.md metric key: {value!r}")
    return value


def _guardrail_key(value: str) -> str:
    _metric_key(value)
    if value not in GUARDRAIL_METRICS:
        raise ValueError(f"{value!r} cannot be a guardrail: it is not compared per member; use one of "
                         + ", ".join(GUARDRAIL_METRICS))
    return value


class VariantDoc(Strict):
    key: str
    weight: float = Field(default=1.0, gt=0, le=1000)
    dm: Text | None = None  # varies: welcome_dm
    text: Text | None = None  # varies: {playbook, step} on a send_dm step
    coupon_value: Amount | None = None  # varies: {playbook, step} on an issue_coupon step (the incentive)
    step: Step | None = None  # varies: {playbook, step}: another step in its place (any action but control flow)

    @field_validator("step")
    @classmethod
    def _not_control_flow(cls, value: Step | None) -> Step | None:
        if value is not None and value.action in CONTROL_FLOW:
            raise ValueError(f"a variant's step cannot be a {value.action} (it would move the playbook's "
                             "other steps); vary what a step does, not when or whether later steps run")
        return value
    reward: dict[Literal["inviter", "invitee", "team"], Amount] | None = Field(default=None, min_length=1)

    _key = field_validator("key")(_doc_key)

    @property
    def body(self) -> Text | None:
        return self.dm if self.dm is not None else self.text


CONTROL_FLOW = ("wait", "branch", "exit")


class PlaybookStep(Strict):
    """A step of a playbook, named by the step's `id`, or by the template it sends or the coupon it issues.
    Variants give its text (a `send_dm` step), its coupon's value (an `issue_coupon` step) or a whole other
    step in its place (any step but a wait, branch or exit)."""

    playbook: str
    step: str

    _keys = field_validator("playbook", "step")(_doc_key)

    def matches(self, playbook_key: str, step_id: str | None, template: str | None) -> bool:
        return playbook_key == self.playbook and self.step in (step_id, template)


class RewardRule(Strict):
    """A rule of a `kind: rewards` program: the variants change the face value it grants per role."""

    reward_program: str
    rule: str

    _keys = field_validator("reward_program", "rule")(_doc_key)

    def matches(self, program: str, rule: str) -> bool:
        return (program, rule) == (self.reward_program, self.rule)


class ExperimentDoc(Strict):
    kind: Literal["experiment"]
    key: str
    title: Text | None = None
    varies: Literal["welcome_dm"] | PlaybookStep | RewardRule
    variants: list[VariantDoc] = Field(min_length=2, max_length=10)
    primary_metric: str = "conversion_rate"
    guardrails: list[str] = Field(default=[], max_length=10)
    traffic: float = Field(default=1.0, ge=0, le=1)
    start: date | None = None
    stop: date | None = None
    shipped: str | None = None

    _key = field_validator("key")(_doc_key)

    @field_validator("primary_metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        return _metric_key(value)

    @field_validator("guardrails")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        return [_guardrail_key(v) for v in value]

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentDoc:
        keys = [v.key for v in self.variants]
        if len(set(keys)) != len(keys):
            raise ValueError("variant keys must differ")
        if self.shipped is not None and self.shipped not in keys:
            raise ValueError(f"shipped names no variant (variants: {', '.join(keys)})")
        if self.start and self.stop and self.stop < self.start:
            raise ValueError("stop is before start")
        if len(set(self.guardrails)) != len(self.guardrails):
            raise ValueError("a guardrail is named twice")
        field, what = {"welcome_dm": ("dm", "the welcome's own DM"), "step": ("text", "the step's own text"),
                       "reward": ("reward", "the rule's own coupons")}[self.varies_kind]
        if self.varies_kind == "step" and any(v.coupon_value is not None for v in self.variants):
            field, what = "coupon_value", "the step's own coupon value"
        elif self.varies_kind == "step" and any(v.step is not None for v in self.variants):
            field, what = "step", "the playbook's own step"
        for other in {"dm", "text", "reward", "coupon_value", "step"} - {field}:
            if any(getattr(v, other) is not None for v in self.variants):
                raise ValueError(f"variants of {self.varies_label} give `{field}`, not `{other}`")
        if getattr(self.variants[0], field) is not None:
            raise ValueError(f"the first variant is the control: it keeps {what} (no {field})")
        if any(getattr(v, field) is None for v in self.variants[1:]):
            raise ValueError(f"every variant after the control gives its {field}")
        return self

    @property
    def replaces_step(self) -> bool:
        """Its variants put a whole other step in place of the playbook's (not only text or a coupon value)."""
        return any(v.step is not None for v in self.variants)

    @property
    def varies_kind(self) -> str:
        """welcome_dm, step or reward."""
        if isinstance(self.varies, str):
            return self.varies
        return "step" if isinstance(self.varies, PlaybookStep) else "reward"

    @property
    def varies_label(self) -> str:
        """What varies, in words: `welcome_dm`, `playbook/step` or `program/rule`."""
        if isinstance(self.varies, PlaybookStep):
            return f"{self.varies.playbook}/{self.varies.step}"
        if isinstance(self.varies, RewardRule):
            return f"{self.varies.reward_program}/{self.varies.rule}"
        return self.varies

    def reward_roles(self) -> set[str]:
        """The roles whose face value some variant changes (a reward rule's experiment)."""
        return {role for v in self.variants for role in (v.reward or {})}

    def varies_json(self) -> str | dict[str, str]:
        return self.varies if isinstance(self.varies, str) else self.varies.model_dump()

    def plan(self) -> list[tuple[str, float]]:
        return [(v.key, v.weight) for v in self.variants]

    def running(self, day: date) -> bool:
        """Whether members meet it on this local day (started, not stopped, not shipped)."""
        return (self.shipped is None and (self.start is None or self.start <= day)
                and (self.stop is None or day <= self.stop) and self.traffic > 0)

    def variant(self, key: str) -> VariantDoc | None:
        return next((v for v in self.variants if v.key == key), None)


@dataclass(frozen=True)
class ExperimentSource:
    experiment: ExperimentDoc
    text: str
    file: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def parse_experiments(text: str, file: str = "<text>") -> list[ExperimentSource]:
    """Every `kind: experiment` document of one YAML text, or PlaybookErrors naming each problem's line."""
    problems: list[Problem] = []
    sources: list[ExperimentSource] = []
    for tree, chunk, _first in _documents(text, file):
        if not (isinstance(tree, dict) and tree.get("kind") == EXPERIMENT_KIND):
            continue
        try:
            doc = ExperimentDoc.model_validate(tree)
        except ValidationError as exc:
            problems += validation_problems(exc, tree, file)
            continue
        field, variables = ("dm", DM_VARIABLES) if doc.varies == "welcome_dm" else ("text", TEMPLATE_VARIABLES)
        for i, variant in enumerate(doc.variants if doc.varies_kind != "reward" else []):
            for lang in ("zh", "en"):
                body = getattr(variant.body, lang) if variant.body else None
                if body is not None:
                    problems += [Problem(file, _line_of(tree, ("variants", i, field, lang)) + 1,
                                         f"variants.{i}.{field}.{lang}", m)
                                 for m in template_problems(body, variables)]
        if not problems:
            sources.append(ExperimentSource(doc, chunk, file))
    keys = [s.experiment.key for s in sources]
    problems += [Problem(file, 1, "key", f"experiment {k!r} is defined twice") for i, k in enumerate(keys)
                 if k in keys[:i]]
    if problems:
        raise PlaybookErrors(problems)
    return sources
