"""The pitfall doctor's findings (SPEC.md P1-P8, the seed's 4-week set-up order), as data. No I/O.

A finding names the pitfall it is a symptom of, how bad it is, what is wrong and how to fix it (a command or
a console link). Its `check` is a stable id, so the console can word it in zh and en (i18n `doctor_<check>`)
and tests can ask for it; `week` is the week of the seed's plan whose set-up step it belongs to.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("error", "warning", "info")
PITFALLS = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8")

# check -> (pitfall, week of the seed's plan): week 1 channels + unique IDs + welcome DM; week 2 warm-up SOP,
# group layering, content calendar; week 3 tools + dashboard; week 4 A/B tests, cut costly channels.
CHECKS: dict[str, tuple[str, int]] = {
    "channel_without_entry_point": ("P1", 1),
    "joins_without_channel": ("P1", 1),
    "welcome_not_applied": ("P3", 1),
    "welcome_slow": ("P3", 1),
    "tier_without_group": ("P2", 2),
    "tier_filling": ("P2", 2),
    "tier_without_calendar": ("P4", 2),
    "no_keyword_rules": ("P7", 3),
    "no_orders": ("P6", 3),
    "no_console_user": ("P8", 3),
    "marketing_without_consent": ("P8", 3),
    "reward_without_budget_cap": ("P5", 4),
    "reward_before_order": ("P5", 4),
    "costly_channel": ("P1", 4),
    "experiment_srm": ("P6", 4),  # the loop's evidence: a split that does not match its plan cannot be trusted
}

WELCOME_WINDOW_MS = 3 * 60 * 1000  # SPEC P3: the welcome DM within 3 minutes (the platforms' window)
ORDER_SILENCE_DAYS = 14  # no conversion events for this long: the loop is broken (P6)
TIER_LOW_SHARE = 0.1  # a tier with less than 10% of its seats left is about to fill (as the dashboard says)
COSTLY_FACTOR = 3.0  # a channel's CPA over 3x the median of the others' is the seed's "costly channel"
CHANCE_SLACK = 2  # acquisitions a channel might have had by chance: judged as if it had had them (costly_channels)


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    message: str
    fix: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def pitfall(self) -> str:
        return CHECKS[self.check][0]

    @property
    def week(self) -> int:
        return CHECKS[self.check][1]

    def as_json(self) -> dict[str, Any]:
        return {"pitfall": self.pitfall, "severity": self.severity, "message": self.message, "fix": self.fix,
                "check": self.check, "week": self.week, "params": self.params}


def in_order(findings: list[Finding]) -> list[Finding]:
    """The seed's set-up order first (week 1 before week 4), then the worst first, then by pitfall."""
    return sorted(findings, key=lambda f: (f.week, SEVERITIES.index(f.severity), f.pitfall, f.check,
                                           sorted(map(str, f.params.values()))))


def p99(values: list[float]) -> float | None:
    """The 99th percentile by the nearest rank (as the demo's headline prints it)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def costly_channels(paid: dict[str, tuple[float, int]]) -> list[tuple[str, float, float]]:
    """Channels whose cost per acquisition is over COSTLY_FACTOR x the median of the other channels' CPA, from
    `paid`: channel -> (spend, acquisitions) for channels with both. Returns (channel, its CPA, the others'
    median). Needs at least two other channels to compare with. A few acquisitions are chance (a channel's count
    over a few weeks is roughly Poisson): a channel is costly only if it still would be with CHANCE_SLACK more
    acquisitions, so one conversion fewer in a small sample raises no alarm, while ¥5,000 for one acquisition
    against ¥100 elsewhere still does."""
    cpa = {channel: spend / acquisitions for channel, (spend, acquisitions) in paid.items()}
    out = []
    for channel, (spend, acquisitions) in sorted(paid.items()):
        others = [c for k, c in cpa.items() if k != channel]
        if len(others) < 2:
            continue
        median = statistics.median(others)
        if median > 0 and spend / (acquisitions + CHANCE_SLACK) > COSTLY_FACTOR * median:
            out.append((channel, cpa[channel], median))
    return out
