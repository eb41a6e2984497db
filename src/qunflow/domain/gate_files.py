"""Gates as data: the `kind: gate` YAML document and its checks (P2). No I/O.

    kind: gate
    key: seed
    title: {zh: 入群问卷, en: Join questions}
    fields:                                   # profile fields (free text)
      - {key: name, label: {zh: 称呼, en: Your name}, max_length: 40}
    questions:                                # single-choice questions; options give points per tier
      - key: stage
        text: {zh: 你目前的阶段?, en: Where are you now?}
        options:
          - {key: buying, label: {zh: 本月准备购买, en: Ready to buy this month}, points: {core: 2}}
    routes:                                   # optional; the first that holds wins, else the most points
      - {tier: core, answers: {stage: [buying]}}
      - {tier: core, min_points: {core: 3}}
      - {tier: core, buyer: true}             # a known first order
    first_order: {mode: ask}                  # ask (optional order number) or require (buyers only)

Problems come back as `file:line: field: message` (PlaybookErrors), like playbooks'.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, ValidationError, field_validator

from qunflow.domain.entry import KEY_PATTERN, TIERS
from qunflow.domain.gate import FirstOrder, Gate, Option, ProfileField, Question, Route, check_gate
from qunflow.domain.playbooks import (
    PlaybookErrors,
    Problem,
    Strict,
    Text,
    _documents,
    validation_problems,
)

KIND = "gate"
Tier = Literal["newbie", "interest", "core", "broadcast"]
assert set(Tier.__args__) == set(TIERS)  # type: ignore[attr-defined]


def _name(value: str) -> str:
    if not KEY_PATTERN.fullmatch(value):
        raise ValueError("use lower-case letters, digits, '.', '-' or '_' (at most 64)")
    return value


class FieldDoc(Strict):
    key: str
    label: Text
    required: bool = True
    max_length: int = Field(default=100, ge=1, le=500)

    _key = field_validator("key")(_name)


class OptionDoc(Strict):
    key: str
    label: Text
    points: dict[Tier, int] = {}

    _key = field_validator("key")(_name)

    @field_validator("points")
    @classmethod
    def _small(cls, value: dict[str, int]) -> dict[str, int]:
        if any(not -100 <= p <= 100 for p in value.values()):
            raise ValueError("points are between -100 and 100")
        return value


class QuestionDoc(Strict):
    key: str
    text: Text
    options: list[OptionDoc] = Field(min_length=2, max_length=20)

    _key = field_validator("key")(_name)


class RouteDoc(Strict):
    tier: Tier
    answers: dict[str, list[str]] = {}
    min_points: dict[Tier, int] = {}
    buyer: bool | None = None


class FirstOrderDoc(Strict):
    mode: Literal["ask", "require"] = "ask"
    label: Text = Text(zh="订单号", en="Order number")


class GateDoc(Strict):
    kind: Literal["gate"]
    key: str
    title: Text | None = None
    fields: list[FieldDoc] = Field(default=[], max_length=20)
    questions: list[QuestionDoc] = Field(default=[], max_length=20)
    routes: list[RouteDoc] = Field(default=[], max_length=50)
    first_order: FirstOrderDoc | None = None

    _key = field_validator("key")(_name)

    def gate(self) -> Gate:
        return Gate(
            self.key,
            tuple(ProfileField(f.key, _lang(f.label), f.required, f.max_length) for f in self.fields),
            tuple(Question(q.key, _lang(q.text),
                           tuple(Option(o.key, _lang(o.label), {str(t): p for t, p in o.points.items()})
                                 for o in q.options)) for q in self.questions),
            tuple(Route(r.tier, {q: tuple(a) for q, a in r.answers.items()},
                        {str(t): n for t, n in r.min_points.items()}, r.buyer)
                  for r in self.routes),
            None if self.first_order is None else FirstOrder(self.first_order.mode, _lang(self.first_order.label)))


def _lang(text: Text) -> dict[str, str]:
    return {"zh": text.zh, "en": text.en}


@dataclass(frozen=True)
class GateSource:
    """A parsed gate with the document text it came from (versions keep the text) and its digest."""

    gate: Gate
    title: dict[str, str]
    text: str
    file: str

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def parse_gates(text: str, file: str = "<text>") -> list[GateSource]:
    """Every `kind: gate` document of one YAML text, or PlaybookErrors naming each problem's line and field.
    A document of another kind is refused: gate files hold gates only."""
    problems: list[Problem] = []
    sources: list[GateSource] = []
    for tree, chunk, first in _documents(text, file):
        if not isinstance(tree, dict) or tree.get("kind") != KIND:
            problems.append(Problem(file, first + 1, "kind", "a gate file holds `kind: gate` documents only"))
            continue
        try:
            doc = GateDoc.model_validate(tree)
        except ValidationError as exc:
            problems += validation_problems(exc, tree, file)
            continue
        gate = doc.gate()
        found = check_gate(gate)
        problems += [Problem(file, first + 1, f"gate {gate.key}", p) for p in found]
        if not found:
            title = _lang(doc.title) if doc.title else {"zh": gate.key, "en": gate.key}
            sources.append(GateSource(gate, title, chunk, file))
    keys = [s.gate.key for s in sources]
    problems += [Problem(file, 1, "key", f"gate {k!r} is defined twice") for i, k in enumerate(keys) if k in keys[:i]]
    if not sources and not problems:
        problems.append(Problem(file, 1, "", "no `kind: gate` document found"))
    if problems:
        raise PlaybookErrors(problems)
    return sources


def _quote(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    import json

    return json.dumps(text, ensure_ascii=False)


def _text(text: dict[str, str]) -> str:
    return "{zh: " + _quote(text.get("zh", "")) + ", en: " + _quote(text.get("en", "")) + "}"


def gate_yaml(gate: Gate, title: dict[str, str] | None = None) -> str:
    """The document of a gate, as the console's form builder writes it (parse_gates reads it back). Every
    name is written as a quoted string, so nothing typed into the form can change the document's shape."""
    q_ = _quote
    lines = ["kind: gate", f"key: {q_(gate.key)}"]
    if title:
        lines.append(f"title: {_text(title)}")
    if gate.fields:
        lines.append("fields:")
        for f in gate.fields:
            lines.append(f"  - {{key: {q_(f.key)}, label: {_text(f.label)}, required: {str(f.required).lower()}, "
                         f"max_length: {int(f.max_length)}}}")
    if gate.questions:
        lines.append("questions:")
        for q in gate.questions:
            lines += [f"  - key: {q_(q.key)}", f"    text: {_text(q.text)}", "    options:"]
            for o in q.options:
                points = ", ".join(f"{q_(t)}: {int(p)}" for t, p in o.points.items())
                lines.append(f"      - {{key: {q_(o.key)}, label: {_text(o.label)}, points: {{{points}}}}}")
    if gate.routes:
        lines.append("routes:")
        for r in gate.routes:
            parts = [f"tier: {q_(r.tier)}"]
            if r.answers:
                answers = (f"{q_(q)}: [{', '.join(q_(x) for x in a)}]" for q, a in r.answers.items())
                parts.append("answers: {" + ", ".join(answers) + "}")
            if r.min_points:
                parts.append("min_points: {" + ", ".join(f"{q_(t)}: {int(n)}" for t, n in r.min_points.items()) + "}")
            if r.buyer is not None:
                parts.append(f"buyer: {str(bool(r.buyer)).lower()}")
            lines.append("  - {" + ", ".join(parts) + "}")
    if gate.first_order is not None:
        lines.append(f"first_order: {{mode: {q_(gate.first_order.mode)}, label: {_text(gate.first_order.label)}}}")
    return "\n".join(lines) + "\n"
