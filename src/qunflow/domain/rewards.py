"""Reward programs as data (issue 5, P5): who earns which coupon for which referral result. No I/O.

A `kind: rewards` document sits in the same files as playbooks (`qunflow apply`):

    kind: rewards
    key: spring_referral
    campaign: spring            # only invitees who joined through this campaign count (empty: all)
    hold_days: 7                # refund window: a reward is paid this long after it was earned
    budget: {total: 20000, per_day: 2000}
    coupons:
      c20: {name: 邀请券, value: 20, valid_days: 30, redemption_rate: 0.6}
      c50: {name: 组队券, value: 50, valid_days: 30, redemption_rate: 0.5}
      c30: {name: 好友首单奖, value: 30, valid_days: 30, redemption_rate: 0.7}
      c10: {name: 新人券, value: 10, valid_days: 14, redemption_rate: 0.4}
    rules:
      - {id: invite_1, invitees: 1, inviter: c20, invitee: c10}   # double-sided
      - {id: team_3, invitees: 3, inviter: c50}                    # "3 form a team, get 50 more"
      - {id: first_order, qualify: first_order, inviter: c30}      # quality: after a real order

A rule either counts an inviter's invitees (`invitees: N`: the Nth joined invitee earns it; `team`
gives each of those N invitees a coupon) or waits for each invitee's qualifying action (`qualify:
first_order | task_done | active_days`). Each grant has a cause (`rw:program:rule:role:subject`) the
ledger keeps unique, so re-evaluating a rule can never pay twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from qunflow.domain.playbooks import (
    Strict,
    _key,
    parse_kind,
)

KIND = "rewards"
ROLES = ("inviter", "invitee", "team")
QUALIFY = ("first_order", "task_done", "active_days")


class Budget(Strict):
    total: Decimal | None = Field(default=None, gt=0, le=Decimal("1e9"))
    per_day: Decimal | None = Field(default=None, gt=0, le=Decimal("1e9"))


class CouponSpec(Strict):
    name: str = Field(min_length=1, max_length=64)
    value: Decimal = Field(gt=0, le=100000, decimal_places=2)
    valid_days: int = Field(30, ge=1, le=365)
    redemption_rate: float = Field(0.5, ge=0, le=1)  # expected share redeemed: prices the rule


class Rule(Strict):
    id: str
    invitees: int | None = Field(None, ge=1, le=1000)
    qualify: Literal["first_order", "task_done", "active_days"] | None = None
    task: str | None = Field(None, max_length=64)  # task_done: this task only (default: any)
    days: int | None = Field(None, ge=1, le=90)  # active_days: active on this many days
    inviter: str | None = None
    invitee: str | None = None
    team: str | None = None  # invitees: N only: each of the N invitees
    budget: Budget = Field(default_factory=Budget)

    _id = field_validator("id")(_key)

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if (self.invitees is None) == (self.qualify is None):
            raise ValueError("a rule has either invitees: N (a threshold) or qualify: first_order | task_done | "
                             "active_days (a quality reward)")
        if not (self.inviter or self.invitee or self.team):
            raise ValueError("name at least one coupon for inviter, invitee or team")
        if self.team and self.invitees is None:
            raise ValueError("team rewards go with invitees: N")
        if (self.qualify == "active_days") != (self.days is not None):
            raise ValueError("days goes with qualify: active_days, and active_days needs days")
        if self.task and self.qualify != "task_done":
            raise ValueError("task goes with qualify: task_done")
        return self

    def coupons(self) -> dict[str, str]:
        """role -> coupon key, for the roles this rule rewards."""
        return {role: key for role in ROLES if (key := getattr(self, role))}


class Program(Strict):
    kind: Literal["rewards"]
    key: str
    enabled: bool = True
    campaign: str | None = Field(None, max_length=64)
    hold_days: int = Field(7, ge=0, le=90)
    budget: Budget = Field(default_factory=Budget)
    coupons: dict[str, CouponSpec] = Field(min_length=1, max_length=50)
    rules: list[Rule] = Field(min_length=1, max_length=50)

    _program_key = field_validator("key")(_key)

    def rule(self, rule_id: str) -> Rule:
        return next(r for r in self.rules if r.id == rule_id)

    def reference_problems(self) -> list[tuple[tuple[Any, ...], str]]:
        out: list[tuple[tuple[Any, ...], str]] = []
        for key in self.coupons:
            if _bad_key(key):
                out.append((("coupons", key), f"coupon key {key!r}: lower-case letters, digits and '_'"))
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.id in seen:
                out.append((("rules", i, "id"), f"rule id {rule.id!r} is used more than once"))
            seen.add(rule.id)
            for role, key in rule.coupons().items():
                if key not in self.coupons:
                    out.append((("rules", i, role), f"no coupon {key!r} in coupons (have: "
                                f"{', '.join(sorted(self.coupons))})"))
        return out


def _bad_key(key: str) -> bool:
    try:
        _key(key)
    except ValueError:
        return True
    return False


@dataclass(frozen=True)
class ProgramSource:
    program: Program
    text: str
    file: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def is_program(tree: Any) -> bool:
    return isinstance(tree, dict) and tree.get("kind") == KIND


def parse_programs(text: str, file: str = "<text>") -> list[ProgramSource]:
    """Every `kind: rewards` document of one YAML text, or PlaybookErrors naming each problem's line."""
    found = parse_kind(text, file, KIND, Program, lambda program: program.reference_problems(), 'reward program')
    return [ProgramSource(doc, chunk, file) for doc, chunk in found]


# --- grants: what a rule owes, as plain values ---------------------------------------------------

@dataclass(frozen=True)
class Grant:
    cause: str  # unique per reward: the ledger refuses a second one
    rule: str
    member_id: str
    role: str  # inviter, invitee, team
    coupon: str  # key into Program.coupons
    referral_id: int


def cause(program: str, rule: str, role: str, subject: str) -> str:
    return f"rw:{program}:{rule}:{role}:{subject}"


def threshold_grants(program: Program, inviter_id: str, invitees: list[tuple[int, str]]) -> list[Grant]:
    """Grants of the threshold rules for an inviter whose counted invitees are `invitees`
    ((referral id, invitee id) in join order). Re-running with more invitees repeats the same causes."""
    out: list[Grant] = []
    for rule in program.rules:
        n = rule.invitees
        if n is None or len(invitees) < n:
            continue
        nth_referral, nth_invitee = invitees[n - 1]
        if rule.inviter:
            out.append(Grant(cause(program.key, rule.id, "inviter", inviter_id), rule.id, inviter_id, "inviter",
                             rule.inviter, nth_referral))
        if rule.invitee:
            out.append(Grant(cause(program.key, rule.id, "invitee", nth_invitee), rule.id, nth_invitee, "invitee",
                             rule.invitee, nth_referral))
        if rule.team:
            out.extend(Grant(cause(program.key, rule.id, "team", member), rule.id, member, "team", rule.team,
                             referral) for referral, member in invitees[:n])
    return out


def quality_grants(program: Program, rule: Rule, referral_id: int, inviter_id: str, invitee_id: str) -> list[Grant]:
    """Grants of a quality rule once the invitee did the qualifying action (one cause per invitee)."""
    grants = []
    if rule.inviter:
        grants.append(Grant(cause(program.key, rule.id, "inviter", invitee_id), rule.id, inviter_id, "inviter",
                            rule.inviter, referral_id))
    if rule.invitee:
        grants.append(Grant(cause(program.key, rule.id, "invitee", invitee_id), rule.id, invitee_id, "invitee",
                            rule.invitee, referral_id))
    return grants


# --- pricing -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RuleCost:
    rule: str
    face_value: Decimal  # all coupons of one firing of the rule
    expected_cost: Decimal  # face value times the expected redemption rate
    firings_in_budget: int | None  # how many firings the tightest total cap pays for (None: uncapped)


def rule_costs(program: Program) -> list[RuleCost]:
    """The price of each rule: what one firing hands out and what it is expected to cost."""
    out = []
    for rule in program.rules:
        face = Decimal(0)
        expected = Decimal(0)
        for role, key in rule.coupons().items():
            spec = program.coupons[key]
            count = rule.invitees if role == "team" and rule.invitees else 1
            face += spec.value * count
            expected += spec.value * count * Decimal(str(spec.redemption_rate))
        caps = [c for c in (rule.budget.total, program.budget.total) if c is not None]
        firings = int(min(caps) // face) if caps and face else None
        out.append(RuleCost(rule.id, face, expected.quantize(Decimal("0.01")), firings))
    return out


def budget_scopes(program: Program, rule: Rule, day: str) -> list[tuple[str, str, Decimal]]:
    """(scope, period, cap) of every cap a grant of this rule counts against; `day` is the local date."""
    scopes = []
    for scope, budget in ((f"program:{program.key}", program.budget), (f"rule:{program.key}/{rule.id}", rule.budget)):
        if budget.total is not None:
            scopes.append((scope, "total", budget.total))
        if budget.per_day is not None:
            scopes.append((scope, day, budget.per_day))
    return scopes
