"""Gates (C2, P2): profile fields and quiz questions whose answers route a person to a tier."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from qunflow.domain.consent import TEXT_VERSION
from qunflow.domain.entry import TIERS
from qunflow.errors import InvalidInput

CONSENT_TEXT_VERSION = TEXT_VERSION  # the notice the gate's two boxes refer to (domain/consent.py)
TICKED = ("on", "true", "1", "yes")


@dataclass(frozen=True)
class ProfileField:
    key: str
    label: dict[str, str]  # language -> text
    required: bool = True
    max_length: int = 100


@dataclass(frozen=True)
class Option:
    key: str
    label: dict[str, str]
    points: dict[str, int] = field(default_factory=dict)  # tier -> points


@dataclass(frozen=True)
class Question:
    key: str
    text: dict[str, str]
    options: tuple[Option, ...]


@dataclass(frozen=True)
class Gate:
    key: str
    fields: tuple[ProfileField, ...] = ()
    questions: tuple[Question, ...] = ()


class GateErrors(InvalidInput):
    """Every problem with a submitted gate form, by field, so the page can show them all."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class GateResult:
    profile: dict[str, str]
    answers: dict[str, str]
    tier: str
    marketing: bool = False  # the separate, unticked-by-default box for marketing messages


def evaluate(gate: Gate | None, form: Mapping[str, str], target_tier: str) -> GateResult:
    """Validate a gate form and route: the tier with most points wins; ties keep the target tier.
    The profile consent is required; the marketing one is the person's free choice."""
    marketing = form.get("marketing") in TICKED
    errors = {} if form.get("consent") in TICKED else {"consent": "please agree to the privacy notice to join"}
    if gate is None:
        if errors:
            raise GateErrors(errors)
        return GateResult({}, {}, target_tier, marketing)
    profile: dict[str, str] = {}
    for spec in gate.fields:
        value = (form.get(spec.key) or "").strip()
        if spec.required and not value:
            errors[spec.key] = "required"
        elif len(value) > spec.max_length:
            errors[spec.key] = f"at most {spec.max_length} characters"
        elif value:
            profile[spec.key] = value
    answers: dict[str, str] = {}
    scores = dict.fromkeys(TIERS, 0)
    for question in gate.questions:
        chosen = form.get(question.key)
        option = next((o for o in question.options if o.key == chosen), None)
        if option is None:
            errors[question.key] = "choose one of the options"
            continue
        answers[question.key] = option.key
        for tier, points in option.points.items():
            scores[tier] += points
    if errors:
        raise GateErrors(errors)
    return GateResult(profile, answers, route(scores, target_tier), marketing)


def route(scores: Mapping[str, int], target_tier: str) -> str:
    best = max(scores.values(), default=0)
    if best <= 0 or scores.get(target_tier, 0) == best:
        return target_tier
    return next(tier for tier in TIERS if scores[tier] == best)


def gate_from_json(key: str, data: Mapping[str, Any]) -> Gate:
    """Build a gate from its stored JSON definition."""
    try:
        fields = tuple(ProfileField(f["key"], dict(f["label"]), bool(f.get("required", True)),
                                    int(f.get("max_length", 100))) for f in data.get("fields", []))
        questions = tuple(
            Question(q["key"], dict(q["text"]),
                     tuple(Option(o["key"], dict(o["label"]), {t: int(p) for t, p in o.get("points", {}).items()})
                           for o in q["options"]))
            for q in data.get("questions", []))
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"gate {key!r}: bad definition ({exc})") from exc
    for question in questions:
        for option in question.options:
            unknown = set(option.points) - set(TIERS)
            if unknown:
                raise InvalidInput(f"gate {key!r}: question {question.key!r} gives points to unknown tier(s) "
                                   f"{', '.join(sorted(unknown))}")
    return Gate(key, fields, questions)


# The seed's gate: three profile fields (name / need / interest) and two routing questions.
SEED_GATE_JSON: dict[str, Any] = {
    "fields": [
        {"key": "name", "label": {"en": "Your name", "zh": "称呼"}, "max_length": 40},
        {"key": "need", "label": {"en": "What do you need?", "zh": "你的需求"}},
        {"key": "interest", "label": {"en": "What do you want to learn?", "zh": "想学什么"}},
    ],
    "questions": [
        {"key": "stage", "text": {"en": "Where are you now?", "zh": "你目前的阶段?"},
         "options": [
             {"key": "buying", "label": {"en": "Ready to buy this month", "zh": "本月准备购买"},
              "points": {"core": 2}},
             {"key": "learning", "label": {"en": "Learning first", "zh": "先学习了解"},
              "points": {"interest": 2, "newbie": 1}},
             {"key": "browsing", "label": {"en": "Just looking around", "zh": "随便看看"},
              "points": {"broadcast": 2}},
         ]},
        {"key": "experience", "text": {"en": "Have you used our product?", "zh": "用过我们的产品吗?"},
         "options": [
             {"key": "yes", "label": {"en": "Yes", "zh": "用过"}, "points": {"core": 1}},
             {"key": "no", "label": {"en": "Not yet", "zh": "还没有"}, "points": {"newbie": 1}},
         ]},
    ],
}
