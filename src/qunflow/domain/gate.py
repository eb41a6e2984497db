"""Gates (C2, P2): profile fields and quiz questions whose answers route a person to a tier."""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
class Route:
    """Send a pass to `tier` when every condition given holds: the answers (question -> allowed options),
    at least these points per tier, and being (or not being) a buyer (a known first order)."""

    tier: str
    answers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    min_points: dict[str, int] = field(default_factory=dict)
    buyer: bool | None = None

    def matches(self, answers: Mapping[str, str], scores: Mapping[str, int], buyer: bool) -> bool:
        return (all(answers.get(q) in allowed for q, allowed in self.answers.items())
                and all(scores.get(t, 0) >= n for t, n in self.min_points.items())
                and (self.buyer is None or self.buyer == buyer))


FIRST_ORDER_MODES = ("ask", "require")
ORDER_FIELD = "order_ref"  # the form field of the first-order option


@dataclass(frozen=True)
class FirstOrder:
    """The gate asks for the number of a first order (`ask`: optional) or passes only buyers (`require`).
    A number counts when an `order` event with that id (or properties.order_id) is on record."""

    mode: str = "ask"
    label: dict[str, str] = field(default_factory=lambda: {"zh": "订单号", "en": "Order number"})


@dataclass(frozen=True)
class Gate:
    key: str
    fields: tuple[ProfileField, ...] = ()
    questions: tuple[Question, ...] = ()
    routes: tuple[Route, ...] = ()
    first_order: FirstOrder | None = None

    def tiers(self) -> frozenset[str]:
        """Every tier a pass can be routed to (for the warnings about tiers with no group); the entry point's
        target tier comes on top of these (no points, ties)."""
        out = {r.tier for r in self.routes}
        out |= {t for q in self.questions for o in q.options for t, p in o.points.items() if p > 0}
        return frozenset(out)


# What a visitor is told about a gate form they must fix: code -> (zh, en); {n} is the code's number.
FORM_ERRORS = {
    "consent": ("请先同意隐私说明才能入群", "please agree to the privacy notice to join"),
    "required": ("必填", "required"),
    "too_long": ("最多 {n} 个字", "at most {n} characters"),
    "choose": ("请选择一个选项", "choose one of the options"),
    "order_required": ("本群面向已购买的用户：请填写订单号",
                       "this group is for customers: enter the number of your order"),
    "order_unknown": ("查不到这个订单号，请核对", "no order with this number is on record: check it"),
    "order_unknown_optional": ("查不到这个订单号，请核对，或留空",
                               "no order with this number is on record: check it, or leave it empty"),
}


@dataclass(frozen=True)
class FormError:
    """One field's problem, said in the visitor's language on the page (English in logs and the API)."""

    code: str
    n: int | None = None

    def text(self, lang: str) -> str:
        zh, en = FORM_ERRORS[self.code]
        return (zh if lang == "zh" else en).format(n=self.n)

    def __str__(self) -> str:
        return self.text("en")


class GateErrors(InvalidInput):
    """Every problem with a submitted gate form, by field, so the page can show them all."""

    def __init__(self, errors: dict[str, FormError]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()),
                         zh="；".join(f"{k}：{v.text('zh')}" for k, v in errors.items()))
        self.errors = errors

    def texts(self, lang: str) -> dict[str, str]:
        return {field: error.text(lang) for field, error in self.errors.items()}


@dataclass(frozen=True)
class GateResult:
    profile: dict[str, str]
    answers: dict[str, str]
    tier: str
    marketing: bool = False  # the separate, unticked-by-default box for marketing messages
    first_order: str | None = None  # the order number given, known to be on record
    route: str = "points"  # what decided the tier: "points", or "routes[i]"


def evaluate(gate: Gate | None, form: Mapping[str, str], target_tier: str,
             known_order: Callable[[str], bool] | None = None) -> GateResult:
    """Validate a gate form and route: the first route whose conditions hold, else the tier with most
    points (ties keep the target tier). The profile consent is required; the marketing one is the person's
    free choice. `known_order` says whether an order number is on record (the first-order option)."""
    marketing = form.get("marketing") in TICKED
    errors = {} if form.get("consent") in TICKED else {"consent": FormError("consent")}
    if gate is None:
        if errors:
            raise GateErrors(errors)
        return GateResult({}, {}, target_tier, marketing)
    profile: dict[str, str] = {}
    for spec in gate.fields:
        value = (form.get(spec.key) or "").strip()
        if spec.required and not value:
            errors[spec.key] = FormError("required")
        elif len(value) > spec.max_length:
            errors[spec.key] = FormError("too_long", spec.max_length)
        elif value:
            profile[spec.key] = value
    answers: dict[str, str] = {}
    scores = dict.fromkeys(TIERS, 0)
    for question in gate.questions:
        chosen = form.get(question.key)
        option = next((o for o in question.options if o.key == chosen), None)
        if option is None:
            errors[question.key] = FormError("choose")
            continue
        answers[question.key] = option.key
        for tier, points in option.points.items():
            scores[tier] += points
    order = _first_order(gate, form, known_order, errors)
    if errors:
        raise GateErrors(errors)
    for i, rule in enumerate(gate.routes):
        if rule.matches(answers, scores, order is not None):
            return GateResult(profile, answers, rule.tier, marketing, order, f"routes[{i}]")
    return GateResult(profile, answers, route(scores, target_tier), marketing, order)


def _first_order(gate: Gate, form: Mapping[str, str], known_order: Callable[[str], bool] | None,
                 errors: dict[str, FormError]) -> str | None:
    if gate.first_order is None:
        return None
    ref = (form.get(ORDER_FIELD) or "").strip()[:64]
    if not ref:
        if gate.first_order.mode == "require":
            errors[ORDER_FIELD] = FormError("order_required")
        return None
    if known_order is None or not known_order(ref):
        errors[ORDER_FIELD] = FormError("order_unknown" if gate.first_order.mode == "require"
                                        else "order_unknown_optional")
        return None
    return ref


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
        routes = tuple(Route(r["tier"], {q: tuple(a) for q, a in r.get("answers", {}).items()},
                             {t: int(n) for t, n in r.get("min_points", {}).items()}, r.get("buyer"))
                       for r in data.get("routes", []))
        first = data.get("first_order")
        first_order = None if not first else FirstOrder(
            first.get("mode", "ask"), dict(first.get("label") or FirstOrder().label))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"gate {key!r}: bad definition ({exc})", zh=f"入群问卷 {key!r}:定义有误({exc})") from exc
    for question in questions:
        for option in question.options:
            unknown = set(option.points) - set(TIERS)
            if unknown:
                raise InvalidInput(f"gate {key!r}: question {question.key!r} gives points to unknown tier(s) "
                                   f"{', '.join(sorted(unknown))}",
                                   zh=f"入群问卷 {key!r}:问题 {question.key!r} 给未知的层级加分:"
                                      f"{', '.join(sorted(unknown))}")
    gate = Gate(key, fields, questions, routes, first_order)
    problems = check_gate(gate)
    if problems:
        raise InvalidInput(f"gate {key!r}: " + "; ".join(problems), zh=f"入群问卷 {key!r}:" + "; ".join(problems))
    return gate


def check_gate(gate: Gate) -> list[str]:
    """What is wrong with a gate beyond its shape: keys used twice, routes naming unknown things."""
    problems: list[str] = []
    names = [f.key for f in gate.fields] + [q.key for q in gate.questions]
    reserved = {"consent", "marketing", "qf_pow", ORDER_FIELD}
    for i, name in enumerate(names):
        if name in names[:i]:
            problems.append(f"{name!r} is used more than once as a field or question key")
        if name in reserved:
            problems.append(f"{name!r} is reserved: choose another key")
    for q in gate.questions:
        if not q.options:
            problems.append(f"question {q.key!r} has no options")
        keys = [o.key for o in q.options]
        problems += [f"question {q.key!r}: option {k!r} is listed twice" for i, k in enumerate(keys) if k in keys[:i]]
    options = {q.key: {o.key for o in q.options} for q in gate.questions}
    for i, r in enumerate(gate.routes):
        where = f"routes[{i}]"
        if r.tier not in TIERS:
            problems.append(f"{where}: tier {r.tier!r} is not one of {', '.join(TIERS)}")
        for name, allowed in r.answers.items():
            if name not in options:
                problems.append(f"{where}: no question {name!r}")
            else:
                problems += [f"{where}: question {name!r} has no option {a!r}" for a in allowed
                             if a not in options[name]]
        problems += [f"{where}: min_points names unknown tier {t!r}" for t in r.min_points if t not in TIERS]
        if r.buyer is not None and gate.first_order is None:
            problems.append(f"{where}: `buyer` needs the first_order option")
    if gate.first_order is not None and gate.first_order.mode not in FIRST_ORDER_MODES:
        problems.append(f"first_order.mode must be one of {', '.join(FIRST_ORDER_MODES)}")
    return problems


def gate_to_json(gate: Gate) -> dict[str, Any]:
    """The stored JSON definition of a gate (gates.definition), the inverse of gate_from_json."""
    out: dict[str, Any] = {
        "fields": [{"key": f.key, "label": f.label, "required": f.required, "max_length": f.max_length}
                   for f in gate.fields],
        "questions": [{"key": q.key, "text": q.text,
                       "options": [{"key": o.key, "label": o.label, "points": o.points} for o in q.options]}
                      for q in gate.questions]}
    if gate.routes:
        out["routes"] = [{"tier": r.tier, **({"answers": {q: list(a) for q, a in r.answers.items()}}
                                              if r.answers else {}),
                          **({"min_points": r.min_points} if r.min_points else {}),
                          **({"buyer": r.buyer} if r.buyer is not None else {})} for r in gate.routes]
    if gate.first_order is not None:
        out["first_order"] = {"mode": gate.first_order.mode, "label": gate.first_order.label}
    return out


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
