"""Tier rules as data (issue 13): the `kind: tier_rules` YAML documents, and which moves they call for. No I/O.

A rule set sits in the same files as playbooks (`qunflow apply`, documents split by `---`):

    kind: tier_rules
    key: default
    rules:
      - key: to_core
        when:                          # any one of these holds (a small closed vocabulary)
          - {orders: 3, days: 90}      # at least 3 `order` events in the last 90 days
          - {level: core, days: 14}    # engagement level `core`, held for at least 14 days
          - {tag: vip}                 # the member carries this tag
        to_tier: core
        from_tiers: [newbie, interest] # optional: only members now in these tiers (default: any other tier)
        leave_old: true                # leave the old group once in the new one, where the platform can
        expire_days: 7                 # the offer lapses after this many days (default 7)
        dm: {zh: "...{{ link }}...", en: "...{{ link }}..."}   # optional; must carry {{ link }}

A member matching a rule and not in its tier yet gets a move: their own tracked link into a group of the
target tier, by DM. `plan_moves` decides who gets one, over facts the service gathered in SQL: which
members each condition holds for. The first rule (in set order, then rule order) that applies to a
member wins, and a recent offer of it keeps later rules away too; a member with an open move gets no
other, and a rule offers a member a move at most once per REOFFER_DAYS. Problems come back as
`file:line: field: message`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from qunflow.domain.playbooks import (
    Strict,
    Text,
    _key,
    parse_kind,
)
from qunflow.domain.templates import TemplateError, check_template, template_variables

KIND = "tier_rules"
MAX_RULES = 100
REOFFER_DAYS = 30  # a rule offers the same member a move at most once in this many days
DM_VARIABLES = frozenset({"name", "link", "group", "tier", "from_tier"})
Level = Literal["new", "active", "core", "slipping", "dormant"]  # domain/engagement.LEVELS
Tier = Literal["newbie", "interest", "core", "broadcast"]  # domain/entry.TIERS


class Condition(Strict):
    """One fact about a member: orders in a window, a level held for some days, or a tag."""

    orders: int | None = Field(None, ge=1, le=10_000)
    level: Level | None = None
    tag: str | None = Field(None, min_length=1, max_length=64)
    days: int | None = Field(None, ge=1, le=365)

    @model_validator(mode="after")
    def _one(self) -> Condition:
        named = [n for n in ("orders", "level", "tag") if getattr(self, n) is not None]
        if len(named) != 1:
            raise ValueError("a condition is exactly one of orders (with days), level (with days) or tag")
        if named[0] in ("orders", "level") and self.days is None:
            raise ValueError(f"{named[0]} needs days: the window (orders) or how long the level is held (level)")
        if named[0] == "tag" and self.days is not None:
            raise ValueError("a tag condition takes no days")
        return self

    @property
    def name(self) -> str:
        """A short stable name, e.g. `orders>=3/90d`, `level=core/14d`, `tag=vip`."""
        if self.orders is not None:
            return f"orders>={self.orders}/{self.days}d"
        if self.level is not None:
            return f"level={self.level}/{self.days}d"
        return f"tag={self.tag}"


class TierRule(Strict):
    key: str
    when: list[Condition] = Field(min_length=1, max_length=10)
    to_tier: Tier
    from_tiers: list[Tier] = []
    leave_old: bool = False
    expire_days: int = Field(7, ge=1, le=60)
    dm: Text | None = None

    _key = field_validator("key")(_key)


class TierRuleSet(Strict):
    kind: Literal["tier_rules"]
    key: str
    enabled: bool = True
    rules: list[TierRule] = Field(min_length=1, max_length=MAX_RULES)

    _key = field_validator("key")(_key)


@dataclass(frozen=True)
class TierRuleSource:
    """A parsed rule set with the document text it came from (versions keep the text)."""

    rule_set: TierRuleSet
    text: str
    file: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def is_tier_rules(tree: Any) -> bool:
    return isinstance(tree, dict) and tree.get("kind") == KIND


def _problems(rule_set: TierRuleSet) -> list[tuple[tuple[Any, ...], str]]:
    out: list[tuple[tuple[Any, ...], str]] = []
    seen: set[str] = set()
    for i, rule in enumerate(rule_set.rules):
        if rule.key in seen:
            out.append((("rules", i, "key"), f"rule key {rule.key!r} is used more than once in this set"))
        seen.add(rule.key)
        if rule.to_tier in rule.from_tiers:
            out.append((("rules", i, "from_tiers"), f"{rule.to_tier!r} is the target tier: a member in it has "
                        "nowhere to move"))
        if rule.dm is None:
            continue
        for lang in ("zh", "en"):
            text = getattr(rule.dm, lang)
            try:
                check_template(text, DM_VARIABLES)
            except TemplateError as exc:
                out.append((("rules", i, "dm", lang), str(exc)))
                continue
            if "link" not in template_variables(text):
                out.append((("rules", i, "dm", lang), "the DM must carry {{ link }}: the member's invite link"))
    return out


def parse_tier_rules(text: str, file: str = "<text>") -> list[TierRuleSource]:
    """Every `kind: tier_rules` document of one YAML text, or PlaybookErrors naming each problem's line."""
    found = parse_kind(text, file, KIND, TierRuleSet, _problems, 'tier rule set')
    return [TierRuleSource(doc, chunk, file) for doc, chunk in found]


# --- evaluation --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedMove:
    member_id: str
    rule: str  # set/rule
    from_tier: str | None
    to_tier: str
    leave_old: bool
    expire_days: int
    dm: Text | None
    why: str  # the condition that held, e.g. orders>=3/90d


def rule_name(set_key: str, rule: TierRule) -> str:
    return f"{set_key}/{rule.key}"


def plan_moves(rule_sets: Sequence[TierRuleSet], holds: Mapping[str, Iterable[str]], tiers: Mapping[str, str | None],
               open_members: Iterable[str], recent: Iterable[tuple[str, str]]) -> list[PlannedMove]:
    """The moves the rules call for, over facts gathered elsewhere.

    `holds`: per condition name (Condition.name), the members it holds for; `tiers`: each of those members'
    current tier; `open_members`: members with a move in progress; `recent`: (rule, member) pairs offered
    within REOFFER_DAYS. The first rule that applies to a member (they match it and are not in its tier) is
    theirs: offered recently, they get nothing now rather than a later rule's move."""
    taken = set(open_members)
    recently = set(recent)
    sets_of = {name: set(members) for name, members in holds.items()}
    out: list[PlannedMove] = []
    for rule_set in rule_sets:
        if not rule_set.enabled:
            continue
        for rule in rule_set.rules:
            name = rule_name(rule_set.key, rule)
            for condition in rule.when:
                for member_id in sorted(sets_of.get(condition.name, ())):
                    tier = tiers.get(member_id)
                    if member_id in taken or tier == rule.to_tier or (rule.from_tiers and tier not in rule.from_tiers):
                        continue
                    taken.add(member_id)  # this rule is theirs: a recent offer from it keeps later rules away too
                    if (name, member_id) in recently:
                        continue
                    out.append(PlannedMove(member_id, name, tier, rule.to_tier, rule.leave_old, rule.expire_days,
                                           rule.dm, condition.name))
    return out


def conditions_of(rule_sets: Sequence[TierRuleSet]) -> dict[str, Condition]:
    """Every distinct condition of the enabled sets, by name (the service runs one query per condition)."""
    return {c.name: c for s in rule_sets if s.enabled for r in s.rules for c in r.when}


__all__ = ["DM_VARIABLES", "KIND", "REOFFER_DAYS", "Condition", "PlannedMove", "TierRule", "TierRuleSet",
           "TierRuleSource", "conditions_of", "is_tier_rules", "parse_tier_rules", "plan_moves", "rule_name"]
