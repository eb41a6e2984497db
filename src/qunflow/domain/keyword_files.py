"""Keyword rule sets as data (issue 4, P7): the `kind: keyword_rules` YAML documents. No I/O.

A rule set sits in the same files as playbooks (`qunflow apply`, documents split by `---`):

    kind: keyword_rules
    key: support
    rules:
      - id: price
        keywords: [多少钱, 价格, price]
        regexes: ['\\d+\\s*元']
        scope: any                   # group, private or any
        groups: [core-1]             # group keys; empty: every group
        tiers: [newbie]              # member tiers; empty: every tier
        reply: {zh: "优惠券和群规: {{ coupon_link }}", en: "Coupon and rules: {{ coupon_link }}"}
        tag: price_interest          # member_tags + a tag_added event (playbook trigger)
        alert: true                  # or {zh: ..., en: ...}: console inbox + staff webhook

Problems come back as `file:line: field: message`, the line being the offending keyword, regex or
template; one problem anywhere refuses every file of the apply.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from qunflow.domain.keywords import KeywordRule, Matcher, RuleError, compile_rules
from qunflow.domain.playbooks import (
    Strict,
    Text,
    _key,
    parse_kind,
)
from qunflow.domain.privacy import profile_variables_in
from qunflow.domain.templates import Template, TemplateError, check_template, template_variables

KIND = "keyword_rules"
MAX_RULES = 10_000
# What a reply or alert text may use; services.keyword_rules fills them in.
REPLY_VARIABLES = frozenset({"name", "group", "tier", "link", "rules_link", "coupon_link", "member_link"})
ALERT_VARIABLES = REPLY_VARIABLES | {"rule", "member_id", "console_link"}
PERSONAL_VARIABLES = frozenset({"coupon_link", "member_link"})  # links that act as the member: never in a group


class Rule(Strict):
    """One rule of a set: what it matches, where, and what it does (at least one action)."""

    id: str
    keywords: list[str] = []
    regexes: list[str] = []
    scope: Literal["group", "private", "any"] = "any"
    groups: list[str] = []
    tiers: list[str] = []
    whole_words: bool = False
    case_sensitive: bool = False
    priority: int = Field(0, ge=-1000, le=1000)
    stop: bool = False
    reply: str | Text | None = None
    tag: str | None = Field(None, min_length=1, max_length=64)
    alert: bool | Text = False

    _id = field_validator("id")(_key)

    @model_validator(mode="after")
    def _acts(self) -> Rule:
        if self.reply is None and self.tag is None and self.alert is False:
            raise ValueError("a rule needs at least one action: reply, tag or alert")
        return self

    @property
    def reply_template(self) -> Template | None:
        if self.reply is None or isinstance(self.reply, str):
            return self.reply
        return {"zh": self.reply.zh, "en": self.reply.en}


class RuleSet(Strict):
    kind: Literal["keyword_rules"]
    key: str
    enabled: bool = True
    rules: list[Rule] = Field(min_length=1, max_length=MAX_RULES)

    _key = field_validator("key")(_key)


@dataclass(frozen=True)
class RuleSetSource:
    """A parsed rule set with the document text it came from (versions keep the text)."""

    rule_set: RuleSet
    text: str
    file: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def keyword_rule(set_key: str, rule: Rule, *, qualified: bool = False) -> KeywordRule:
    """The matcher's rule; `actions` carries (set key, Rule). Qualified ids (`set/rule`) are unique across sets."""
    return KeywordRule(f"{set_key}/{rule.id}" if qualified else rule.id, rule.keywords, rule.regexes, rule.scope,
                       frozenset(rule.groups), frozenset(rule.tiers), rule.whole_words, rule.case_sensitive,
                       rule.priority, rule.stop, ((set_key, rule),))


def compile_sets(sets: Sequence[RuleSet]) -> Matcher:
    """One matcher over every rule of these (already validated) sets."""
    return compile_rules([keyword_rule(s.key, rule, qualified=True) for s in sets for rule in s.rules])


def _rule_problems(rule_set: RuleSet) -> list[tuple[tuple[Any, ...], str]]:
    """(where, what) for duplicate ids, patterns the matcher refuses, and bad templates."""
    out: list[tuple[tuple[Any, ...], str]] = []
    seen: set[str] = set()
    for i, rule in enumerate(rule_set.rules):
        if rule.id in seen:
            out.append((("rules", i, "id"), f"rule id {rule.id!r} is used more than once in this set"))
        seen.add(rule.id)
        try:
            compile_rules([keyword_rule(rule_set.key, rule)])
        except RuleError as exc:
            loc: tuple[Any, ...] = ("rules", i, exc.field) + (() if exc.index is None else (exc.index,))
            shown = f"{exc.pattern!r} " if exc.pattern is not None else ""
            out.append((loc, f"{shown}{exc.reason}"))
        for name, template, variables in (("reply", rule.reply_template, REPLY_VARIABLES),
                                          ("alert", None if isinstance(rule.alert, bool) else
                                           {"zh": rule.alert.zh, "en": rule.alert.en}, ALERT_VARIABLES)):
            if template is None:
                continue
            try:
                check_template(template, variables)
            except TemplateError as exc:
                where = ("rules", i, name) + ((exc.lang,) if exc.lang else ())
                out.append((where, str(exc)))
                continue
            personal = sorted(template_variables(template) & PERSONAL_VARIABLES)
            if name == "reply" and personal and rule.scope != "private":
                out.append((("rules", i, name), f"{', '.join(personal)} is a personal link that anyone in a group "
                            "could use; reply with it only in private messages (scope: private)"))
            profile = profile_variables_in(template)
            if profile and (name == "alert" or rule.scope != "private"):
                place = ("a staff alert; name the member by {{ member_id }} and {{ console_link }}" if name == "alert"
                         else "a group reply; use it only in private replies (scope: private)")
                out.append((("rules", i, name), f"{', '.join(profile)} is private profile data and may not appear "
                            f"in {place}"))
    return out


def is_rule_set(tree: Any) -> bool:
    """Whether a YAML document is a rule set (the playbook parser leaves those to this module)."""
    return isinstance(tree, dict) and tree.get("kind") == KIND


def parse_rule_sets(text: str, file: str = "<text>") -> list[RuleSetSource]:
    """Every `kind: keyword_rules` document of one YAML text, or PlaybookErrors naming each problem's line."""
    found = parse_kind(text, file, KIND, RuleSet, _rule_problems, 'keyword rule set', loc_of=_model_loc)
    return [RuleSetSource(doc, chunk, file) for doc, chunk in found]


def _model_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Pydantic's location without the union member names it adds (`str`, `Text`, `bool`)."""
    return tuple(p for p in loc if p not in ("str", "Text", "bool", "function-after[_acts(), Rule]"))
