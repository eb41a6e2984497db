"""The console's gate form builder as pure functions (no I/O): flat form fields <-> a draft gate, the
builder's add/remove operations, and the `kind: gate` document a draft saves as.

The page works without JavaScript: every "add" or "remove" button submits the form with `op` set, the
server applies the operation to the draft and shows the form again; "save" writes the document, which
`parse_gates` then checks like any file (the same errors as `qunflow gate apply`).

Field names: key, title_zh/en; f{i}_key/label_zh/label_en/required/max; q{i}_key/text_zh/text_en;
q{i}_o{j}_key/label_zh/label_en/pts_{tier}; r{i}_tier/answers/min_{tier}/buyer; fo_mode/label_zh/label_en;
the counts nf, nq, q{i}_no, nr.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qunflow.domain.entry import TIERS
from qunflow.domain.gate import FirstOrder, Gate, Option, ProfileField, Question, Route

MAX_ITEMS = 20


def _count(form: Mapping[str, str], name: str) -> int:
    raw = form.get(name, "0")
    return min(int(raw), MAX_ITEMS) if raw.isdigit() else 0


def _int(raw: str | None, default: int = 0) -> int:
    raw = (raw or "").strip()
    try:
        return int(raw) if raw else default
    except ValueError:
        return default


def _text(form: Mapping[str, str], prefix: str) -> dict[str, str]:
    return {"zh": form.get(f"{prefix}_zh", "").strip(), "en": form.get(f"{prefix}_en", "").strip()}


def parse_answers(raw: str) -> dict[str, list[str]]:
    """'stage=buying,learning; experience=yes' -> {'stage': ['buying', 'learning'], 'experience': ['yes']}."""
    out: dict[str, list[str]] = {}
    for part in raw.split(";"):
        if "=" in part:
            question, options = part.split("=", 1)
            chosen = [o.strip() for o in options.split(",") if o.strip()]
            if question.strip() and chosen:
                out[question.strip()] = chosen
    return out


def format_answers(answers: Mapping[str, Any]) -> str:
    return "; ".join(f"{q}={','.join(a)}" for q, a in answers.items())


def draft_from_form(form: Mapping[str, str]) -> dict[str, Any]:
    """The draft the form describes (nothing checked yet: the document's parser does that on save)."""
    draft: dict[str, Any] = {"key": form.get("key", "").strip(), "title": _text(form, "title"),
                             "fields": [], "questions": [], "routes": [], "first_order": None}
    for i in range(_count(form, "nf")):
        draft["fields"].append({"key": form.get(f"f{i}_key", "").strip(), "label": _text(form, f"f{i}_label"),
                                "required": form.get(f"f{i}_required") in ("on", "1", "true"),
                                "max_length": _int(form.get(f"f{i}_max"), 100)})
    for i in range(_count(form, "nq")):
        options = []
        for j in range(_count(form, f"q{i}_no")):
            p = f"q{i}_o{j}"
            points = {t: _int(form.get(f"{p}_pts_{t}")) for t in TIERS if _int(form.get(f"{p}_pts_{t}"))}
            options.append({"key": form.get(f"{p}_key", "").strip(), "label": _text(form, f"{p}_label"),
                            "points": points})
        draft["questions"].append({"key": form.get(f"q{i}_key", "").strip(), "text": _text(form, f"q{i}_text"),
                                   "options": options})
    for i in range(_count(form, "nr")):
        buyer = form.get(f"r{i}_buyer", "")
        draft["routes"].append({"tier": form.get(f"r{i}_tier", "newbie"),
                                "answers": parse_answers(form.get(f"r{i}_answers", "")),
                                "min_points": {t: _int(form.get(f"r{i}_min_{t}")) for t in TIERS
                                               if _int(form.get(f"r{i}_min_{t}"))},
                                "buyer": {"yes": True, "no": False}.get(buyer)})
    if form.get("fo_mode") in ("ask", "require"):
        draft["first_order"] = {"mode": form["fo_mode"], "label": _text(form, "fo_label")}
    return draft


def draft_from_gate(gate: Gate, title: Mapping[str, str]) -> dict[str, Any]:
    from qunflow.domain.gate import gate_to_json

    tree = gate_to_json(gate)
    for route in tree.get("routes", []):
        route.setdefault("answers", {})
        route.setdefault("min_points", {})
        route.setdefault("buyer", None)
    return {"key": gate.key, "title": dict(title), "routes": [], "first_order": None, **tree}


def empty_draft() -> dict[str, Any]:
    return {"key": "", "title": {"zh": "", "en": ""}, "fields": [], "routes": [], "first_order": None,
            "questions": [{"key": "", "text": {"zh": "", "en": ""}, "options": [_option(), _option()]}]}


def _option() -> dict[str, Any]:
    return {"key": "", "label": {"zh": "", "en": ""}, "points": {}}


def apply_op(draft: dict[str, Any], op: str) -> dict[str, Any]:
    """One builder button: add_field, del_field:I, add_question, del_question:I, add_option:I, del_option:I:J,
    add_route, del_route:I. An unknown or out-of-range operation changes nothing."""
    name, _, rest = op.partition(":")
    at = [int(x) for x in rest.split(":") if x.isdigit()]
    fields, questions, routes = draft["fields"], draft["questions"], draft["routes"]
    if name == "add_field" and len(fields) < MAX_ITEMS:
        fields.append({"key": "", "label": {"zh": "", "en": ""}, "required": True, "max_length": 100})
    elif name == "add_question" and len(questions) < MAX_ITEMS:
        questions.append({"key": "", "text": {"zh": "", "en": ""}, "options": [_option(), _option()]})
    elif name == "add_route" and len(routes) < MAX_ITEMS:
        routes.append({"tier": "core", "answers": {}, "min_points": {}, "buyer": None})
    elif name == "add_option" and len(at) == 1 and at[0] < len(questions):
        if len(questions[at[0]]["options"]) < MAX_ITEMS:
            questions[at[0]]["options"].append(_option())
    elif name in ("del_field", "del_question", "del_route") and len(at) == 1:
        items = {"del_field": fields, "del_question": questions, "del_route": routes}[name]
        if at[0] < len(items):
            del items[at[0]]
    elif name == "del_option" and len(at) == 2 and at[0] < len(questions):
        options = questions[at[0]]["options"]
        if at[1] < len(options):
            del options[at[1]]
    return draft


def gate_of_draft(draft: Mapping[str, Any]) -> Gate:
    """The draft as a gate value, unchecked (gate_yaml writes it; parse_gates checks it)."""
    first = draft.get("first_order")
    return Gate(
        draft["key"],
        tuple(ProfileField(f["key"], f["label"], f["required"], f["max_length"]) for f in draft["fields"]),
        tuple(Question(q["key"], q["text"], tuple(Option(o["key"], o["label"], o["points"]) for o in q["options"]))
              for q in draft["questions"]),
        tuple(Route(r["tier"], {q: tuple(a) for q, a in r["answers"].items()}, r["min_points"], r["buyer"])
              for r in draft["routes"]),
        FirstOrder(first["mode"], first["label"]) if first else None)
