"""Fraud checks on referrals (issue 5, part 4): plain facts in, a level and its reasons out.

Each check yields a *reason* (a dict with `code`, `severity`, an English `detail` and the numbers behind it).
Reasons combine into a level:

- any **hard** reason (self_referral, shared_device, shared_phone, inviter_coupon, ring) -> `high`;
- **soft** reasons (shared_ip_ua, burst, fast_conversion, never_active, disposable): one -> `medium`,
  `soft_for_high` of them (2 by default) -> `high`;
- **info** reasons (shared_ip) never raise the level: one IP is shared by coworkers, dorms and mobile
  carriers' NAT, so it is only shown to the reviewer.

Signals (device, IP, IP + user agent, phone) arrive as keyed hashes: equal inputs match, none reads back.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import networkx as nx

from qunflow.settings import DEFAULT_ENGAGEMENT

LEVELS = ("low", "medium", "high")
SEVERITY: dict[str, str] = {
    "self_referral": "hard",
    "shared_device": "hard",
    "shared_phone": "hard",
    "inviter_coupon": "hard",
    "ring": "hard",
    "shared_ip_ua": "soft",
    "burst": "soft",
    "fast_conversion": "soft",
    "never_active": "soft",
    "disposable": "soft",
    "shared_ip": "info",
}
# Mainland China's virtual-operator (MVNO) ranges, where most "小号" rented numbers live.
VIRTUAL_PHONE_PREFIXES = ("162", "165", "167", "170", "171")

Reason = dict[str, Any]


@dataclass(frozen=True)
class FraudRules:
    """Thresholds of the checks (settings `fraud_*`, env `QUNFLOW_FRAUD_*`)."""

    burst_count: int = 5  # this many invitees of one inviter ...
    burst_minutes: int = 10  # ... within this many minutes is a burst
    fast_conversion_minutes: int = 10  # a first order sooner than this after the join is too fast
    inactive_days: int = 3  # no activity this many days after the join: never_active
    soft_for_high: int = 2  # this many soft reasons make `high`
    virtual_phone_prefixes: tuple[str, ...] = VIRTUAL_PHONE_PREFIXES
    active_types: tuple[str, ...] = tuple(DEFAULT_ENGAGEMENT)  # events that count as activity


@dataclass(frozen=True)
class Signals:
    """A member's join signals, as keyed hashes (None: not known)."""

    device: str | None = None
    ip: str | None = None
    ip_ua: str | None = None
    phone: str | None = None
    disposable: bool = False


@dataclass(frozen=True)
class Peer:
    """Another invitee of the same inviter."""

    member_id: str
    joined_at: datetime
    signals: Signals | None = None


@dataclass(frozen=True)
class Circle:
    """All invitees of one inviter, counted once for all their referrals: how many share each signal, and
    when they joined (sorted). Scoring a big inviter's referrals stays linear, not quadratic."""

    devices: Counter[str]
    phones: Counter[str]
    ip_uas: Counter[str]
    ips: Counter[str]
    times: tuple[datetime, ...]

    @classmethod
    def of(cls, members: Iterable[tuple[datetime, Signals | None]]) -> Circle:
        items = list(members)
        signals = [s for _, s in items if s is not None]
        return cls(Counter(s.device for s in signals if s.device), Counter(s.phone for s in signals if s.phone),
                   Counter(s.ip_ua for s in signals if s.ip_ua), Counter(s.ip for s in signals if s.ip),
                   tuple(sorted(at for at, _ in items)))


@dataclass(frozen=True)
class ReferralFacts:
    """Everything the checks look at for one referral (inviter -> invitee)."""

    referral_id: int
    inviter_id: str
    invitee_id: str
    joined_at: datetime
    now: datetime
    qualified_at: datetime | None = None  # the invitee's first order
    inviter: Signals | None = None
    invitee: Signals | None = None
    peers: tuple[Peer, ...] = ()  # the inviter's other invitees (or, precomputed, `circle`)
    circle: Circle | None = None  # every invitee of the inviter, this one included
    active: bool = True  # the invitee did something (message, task, order, ...) after joining
    inviter_coupon_used: bool = False  # a coupon of the inviter's was redeemed on the invitee's order
    ring: frozenset[str] = field(default_factory=frozenset)  # the closed cluster holding both, if any


@dataclass(frozen=True)
class Score:
    level: str
    reasons: list[Reason]

    @property
    def codes(self) -> set[str]:
        return {str(r["code"]) for r in self.reasons}


def _reason(code: str, detail: str, **numbers: Any) -> Reason:
    return {"code": code, "severity": SEVERITY[code], "detail": detail, **numbers}


def combine(codes: Iterable[str], rules: FraudRules) -> str:
    """The level of a set of reason codes (see the module's docstring)."""
    severities = [SEVERITY[c] for c in set(codes)]
    soft = severities.count("soft")
    if "hard" in severities or soft >= rules.soft_for_high:
        return "high"
    return "medium" if soft else "low"


def circle_of(f: ReferralFacts) -> Circle:
    """The inviter's circle: as given, or counted from this invitee and the peers."""
    if f.circle is not None:
        return f.circle
    return Circle.of([(f.joined_at, f.invitee), *((p.joined_at, p.signals) for p in f.peers)])


def _others(counts: Counter[str], value: str | None, inviter: str | None = None) -> int:
    """How many others (the inviter included, when given) share `value`; the circle counts this invitee too."""
    if value is None:
        return 0
    return counts[value] - 1 + (1 if inviter == value else 0)


def _identity_checks(f: ReferralFacts, circle: Circle) -> list[Reason]:
    found: list[Reason] = []
    me, inviter = f.invitee or Signals(), f.inviter or Signals()
    if f.inviter_id == f.invitee_id:
        found.append(_reason("self_referral", "the inviter invited themself", match="member"))
    elif me.device is not None and me.device == inviter.device:
        found.append(_reason("self_referral", "the invitee joined on the inviter's device", match="device"))
    elif me.phone is not None and me.phone == inviter.phone:
        found.append(_reason("self_referral", "the invitee has the inviter's phone number", match="phone"))
    if n := _others(circle.devices, me.device):
        found.append(_reason("shared_device", f"the device is shared with {n} other invitee(s) of the inviter",
                             count=n))
    if n := _others(circle.phones, me.phone):
        found.append(_reason("shared_phone", f"the phone number is shared with {n} other invitee(s) of the inviter",
                             count=n))
    if n := _others(circle.ip_uas, me.ip_ua, inviter.ip_ua):
        found.append(_reason("shared_ip_ua", f"the same IP and browser as {n} other member(s) of this referral "
                                             "circle", count=n))
    elif n := _others(circle.ips, me.ip, inviter.ip):
        found.append(_reason("shared_ip", f"the same IP as {n} other member(s) (a shared network; "
                                          "informational only)", count=n))
    if me.disposable:
        found.append(_reason("disposable", "a disposable e-mail domain or virtual phone number at the gate"))
    return found


def burst_size(joined_at: datetime, others: Iterable[datetime], minutes: int) -> int:
    """The most joins of one inviter (this one included) in any window of `minutes` holding this join."""
    return _burst(sorted([joined_at, *others]), joined_at, minutes)


def _burst(times: list[datetime] | tuple[datetime, ...], joined_at: datetime, minutes: int) -> int:
    """burst_size on the sorted join times of the whole circle (this join among them)."""
    span = timedelta(minutes=minutes)
    best = 0
    for i in range(bisect_left(times, joined_at - span), bisect_right(times, joined_at)):
        best = max(best, bisect_right(times, times[i] + span) - i)
    return best


def _behaviour_checks(f: ReferralFacts, circle: Circle, rules: FraudRules) -> list[Reason]:
    found: list[Reason] = []
    size = _burst(circle.times, f.joined_at, rules.burst_minutes)
    if size >= rules.burst_count:
        found.append(_reason("burst", f"{size} invitees of the inviter joined within {rules.burst_minutes} minutes",
                             count=size, minutes=rules.burst_minutes))
    if f.qualified_at is not None:
        minutes = (f.qualified_at - f.joined_at).total_seconds() / 60
        if 0 <= minutes < rules.fast_conversion_minutes:
            found.append(_reason("fast_conversion", f"first order {minutes:.0f} minutes after joining",
                                 minutes=round(minutes, 1)))
    if f.inviter_coupon_used:
        found.append(_reason("inviter_coupon", "the inviter's coupon was used on the invitee's order"))
    if not f.active and f.now - f.joined_at >= timedelta(days=rules.inactive_days):
        found.append(_reason("never_active", f"no message, task or order {rules.inactive_days} days after joining",
                             days=rules.inactive_days))
    if len(f.ring) >= 2:
        found.append(_reason("ring", f"a closed referral cluster of {len(f.ring)} members who invited each other",
                             size=len(f.ring)))
    return found


def score(facts: ReferralFacts, rules: FraudRules | None = None) -> Score:
    """Run every check on one referral."""
    rules = rules or FraudRules()
    circle = circle_of(facts)
    reasons = _identity_checks(facts, circle) + _behaviour_checks(facts, circle, rules)
    return Score(combine((r["code"] for r in reasons), rules), reasons)


def rings(edges: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    """Each member of a closed cluster (a strongly connected component of >= 2 members of the referral
    graph, A->B->A included) mapped to its cluster. Self-loops are self-referrals, not rings."""
    graph: nx.DiGraph[str] = nx.DiGraph()
    graph.add_edges_from((a, b) for a, b in edges if a != b)
    found: dict[str, frozenset[str]] = {}
    for component in nx.strongly_connected_components(graph):
        if len(component) >= 2:
            cluster = frozenset(component)
            found.update(dict.fromkeys(cluster, cluster))
    return found


def ring_of(clusters: dict[str, frozenset[str]], inviter: str, invitee: str) -> frozenset[str]:
    """The cluster a referral lies in (both ends in the same one), or empty."""
    cluster = clusters.get(inviter, frozenset())
    return cluster if invitee in cluster else frozenset()


def normalise_phone(phone: str) -> str:
    """Digits only, without a +86 / 0086 country code, so 138-0013-8000 and +86 13800138000 match."""
    digits = re.sub(r"\D", "", phone)
    for prefix in ("0086", "86"):
        if digits.startswith(prefix) and len(digits) == len(prefix) + 11:
            return digits[len(prefix):]
    return digits


def is_virtual_phone(phone: str, rules: FraudRules | None = None) -> bool:
    digits = normalise_phone(phone)
    prefixes = (rules or FraudRules()).virtual_phone_prefixes
    return len(digits) == 11 and digits.startswith(tuple(prefixes))


def email_domain(email: str) -> str | None:
    local, at, domain = email.strip().lower().rpartition("@")
    return domain.strip(".") or None if at and local else None


def is_disposable_email(email: str) -> bool:
    """Whether an address is at a throwaway-mailbox domain (the community-kept list on PyPI)."""
    from disposable_email_domains import blocklist

    domain = email_domain(email)
    if domain is None:
        return False
    parts = domain.split(".")  # sub.mailinator.com counts as mailinator.com
    return any(".".join(parts[i:]) in blocklist for i in range(len(parts) - 1))
