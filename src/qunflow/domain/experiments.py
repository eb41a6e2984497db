"""Experiments: sticky assignment and the results contract (docs/experiments.md); no I/O.

Assignment hashes the experiment and the member, so every worker, process and restart gives a member
the same variant. Two independent hashes: one decides whether the member is in the experiment's
traffic at all (ramping up only adds members), the other picks the variant by the weights (it never
depends on the traffic, so a ramp never moves anyone between variants).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from qunflow.domain.stats import compare_means, compare_proportions, sample_size, srm_flagged, srm_p_value

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
            variants: Sequence[tuple[str, float]] | None, *, min_mature: int, mde: float) -> dict[str, Any]:
    """The results contract from per-variant sufficient statistics.

    `variants`: the document's variants and weights in order (the first is the control), or None for an
    experiment known only from events (variants as seen, alphabetically; equal weights).
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
    srm = srm_p_value([v["members"] for v in out_variants], [w for _, w in plan]) if plan else None
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
    report = {
        "experiment": experiment, "as_of": as_of.isoformat(),
        "control": control["variant"] if control else None,
        "srm_p_value": srm, "srm_flagged": srm_flagged(srm),
        "enough_data": enough, "min_mature": min_mature,
        "mde": mde, "sample_size_per_variant": needed,
        "variants": out_variants, "comparisons": comparisons, "mean_comparisons": mean_comparisons,
    }
    report["verdict"] = verdict(report)
    return report


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
