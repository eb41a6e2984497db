"""Gate documents (`kind: gate`), routes, the first-order option and the fallback order, as pure rules."""

from __future__ import annotations

from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qunflow.domain.entry import TIERS
from qunflow.domain.gate import SEED_GATE_JSON, GateErrors, evaluate, gate_from_json, gate_to_json
from qunflow.domain.gate_files import gate_yaml, parse_gates
from qunflow.domain.playbooks import PlaybookErrors
from qunflow.domain.routing import GroupSlot, fallback_tiers, place

SEED_TEXT = (resources.files("qunflow") / "gates" / "seed.yaml").read_text(encoding="utf-8")
FORM = {"name": "Li", "need": "leads", "interest": "ads", "consent": "on"}

CUSTOM = """\
kind: gate
key: vip
title: {zh: 会员群, en: Members' group}
fields:
  - {key: name, label: {zh: 称呼, en: Name}, max_length: 20}
questions:
  - key: budget
    text: {zh: 预算?, en: Budget?}
    options:
      - {key: high, label: {zh: 高, en: High}, points: {core: 3}}
      - {key: low, label: {zh: 低, en: Low}, points: {newbie: 1}}
routes:
  - {tier: core, buyer: true}
  - {tier: interest, answers: {budget: [low]}, min_points: {newbie: 1}}
first_order: {mode: ask}
"""


def test_the_shipped_seed_document_is_the_seed_gate() -> None:
    source = parse_gates(SEED_TEXT, "seed.yaml")[0]
    assert source.gate == gate_from_json("seed", SEED_GATE_JSON)
    assert source.title == {"zh": "入群问卷", "en": "Join questions"}


def test_a_gate_written_by_the_form_builder_reads_back_the_same() -> None:
    for text in (SEED_TEXT, CUSTOM):
        source = parse_gates(text)[0]
        again = parse_gates(gate_yaml(source.gate, source.title))[0]
        assert again.gate == source.gate and again.title == source.title
        assert gate_from_json(source.gate.key, gate_to_json(source.gate)) == source.gate


def test_routes_come_before_points_and_buyers_route_by_their_first_order() -> None:
    gate = parse_gates(CUSTOM)[0].gate
    known = {"A-1001"}.__contains__
    low = {"name": "Li", "consent": "on", "budget": "low"}
    assert evaluate(gate, low, "newbie", known).tier == "interest"  # routes[1] beats the points (newbie)
    bought = evaluate(gate, {**low, "order_ref": "A-1001"}, "newbie", known)
    assert (bought.tier, bought.first_order, bought.route) == ("core", "A-1001", "routes[0]")
    assert evaluate(gate, {**low, "budget": "high"}, "newbie", known).route == "points"
    with pytest.raises(GateErrors) as caught:  # a number given must be on record
        evaluate(gate, {**low, "order_ref": "nope"}, "newbie", known)
    assert set(caught.value.errors) == {"order_ref"}


def test_a_first_order_gate_passes_buyers_only() -> None:
    gate = parse_gates(CUSTOM.replace("mode: ask", "mode: require"))[0].gate
    with pytest.raises(GateErrors) as caught:
        evaluate(gate, {"name": "Li", "consent": "on", "budget": "low"}, "newbie", lambda ref: True)
    assert "order" in str(caught.value.errors["order_ref"])


@pytest.mark.parametrize(("text", "where"), [
    (CUSTOM.replace("points: {core: 3}", "points: {vip: 3}"), "questions[0].options[0].points.vip"),
    (CUSTOM.replace("answers: {budget: [low]}", "answers: {budget: [none]}"), "has no option 'none'"),
    (CUSTOM.replace("first_order: {mode: ask}\n", ""), "`buyer` needs the first_order option"),
    (CUSTOM.replace("key: budget", "key: name"), "used more than once"),
    (CUSTOM.replace("key: vip", "key: VIP!"), "vip.yaml:2: key:"),
    ("kind: playbook\nkey: x\n", "kind: a gate file holds"),
    ("kind: gate\nkey: [", "not valid YAML"),
])
def test_bad_documents_are_refused_with_the_line_and_field(text: str, where: str) -> None:
    with pytest.raises(PlaybookErrors) as caught:
        parse_gates(text, "vip.yaml")
    assert where in str(caught.value)


def test_fallback_goes_down_the_order_then_back_up() -> None:
    order = ("core", "interest", "newbie", "broadcast")
    assert fallback_tiers("core", order) == ["core", "interest", "newbie", "broadcast"]
    assert fallback_tiers("broadcast", order) == ["broadcast", "newbie", "interest", "core"]
    assert fallback_tiers("broadcast", ("core", "newbie")) == ["broadcast"]  # not in the order: no fallback


groups = st.lists(st.tuples(st.sampled_from(TIERS), st.integers(1, 4), st.integers(0, 5)), max_size=8)


@given(groups, st.sampled_from(TIERS), st.permutations(TIERS))
def test_a_pass_waits_only_when_no_tier_along_its_order_has_room(spec: list[tuple[str, int, int]], tier: str,
                                                               order: list[str]) -> None:
    slots = [GroupSlot(i, f"g{i}", t, cap, min(used, cap)) for i, (t, cap, used) in enumerate(spec)]
    placement = place(slots, tier, order)
    if placement.group is None:  # no false "full": every group of every tier it may go to is full
        assert all(s.room == 0 for s in slots)
    else:
        assert placement.group.room > 0 and placement.group.tier == placement.tier
        earlier = fallback_tiers(tier, order)[:fallback_tiers(tier, order).index(placement.tier)]
        assert all(s.room == 0 for s in slots if s.tier in earlier)  # the first tier with room wins
