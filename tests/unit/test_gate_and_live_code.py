"""Gates route people to tiers; the live code fills groups in order and never overfills one."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qunflow.domain.entry import TIERS, merge_utm
from qunflow.domain.gate import SEED_GATE_JSON, GateErrors, evaluate, gate_from_json, route
from qunflow.domain.routing import GroupSlot, choose_group, room_by_tier
from qunflow.errors import InvalidInput

SEED = gate_from_json("seed", SEED_GATE_JSON)
FORM = {"name": "Li", "need": "leads", "interest": "ads", "consent": "on"}


def test_buyer_with_experience_goes_to_core_and_browser_to_broadcast() -> None:
    assert evaluate(SEED, {**FORM, "stage": "buying", "experience": "yes"}, "newbie").tier == "core"
    assert evaluate(SEED, {**FORM, "stage": "browsing", "experience": "yes"}, "newbie").tier == "broadcast"


def test_tie_keeps_the_entry_points_target_tier() -> None:
    # learning: interest 2, newbie 1; no experience: newbie +1 -> a tie at 2, so the target tier wins
    assert evaluate(SEED, {**FORM, "stage": "learning", "experience": "no"}, "interest").tier == "interest"
    assert evaluate(SEED, {**FORM, "stage": "learning", "experience": "no"}, "newbie").tier == "newbie"
    assert evaluate(SEED, {**FORM, "stage": "learning", "experience": "yes"}, "newbie").tier == "interest"
    assert route({"core": 1, "newbie": 1, "interest": 0, "broadcast": 0}, "newbie") == "newbie"


def test_every_missing_field_is_reported_at_once() -> None:
    with pytest.raises(GateErrors) as caught:
        evaluate(SEED, {"name": "x" * 41, "stage": "nonsense"}, "newbie")
    assert set(caught.value.errors) == {"consent", "name", "need", "interest", "stage", "experience"}


def test_no_gate_still_needs_consent() -> None:
    assert evaluate(None, {"consent": "on"}, "core").tier == "core"
    with pytest.raises(GateErrors):
        evaluate(None, {}, "core")


def test_gate_definition_with_unknown_tier_is_refused() -> None:
    bad = {"questions": [{"key": "q", "text": {"en": "?"},
                          "options": [{"key": "a", "label": {"en": "A"}, "points": {"vip": 1}}]}]}
    with pytest.raises(InvalidInput, match="unknown tier"):
        gate_from_json("bad", bad)


@given(st.dictionaries(st.sampled_from(TIERS), st.integers(0, 5)), st.sampled_from(TIERS))
def test_route_picks_a_tier_with_the_highest_score(scores: dict[str, int], target: str) -> None:
    full = {tier: scores.get(tier, 0) for tier in TIERS}
    chosen = route(full, target)
    assert full[chosen] == max(full.values()) or (max(full.values()) == 0 and chosen == target)


slots = st.lists(st.tuples(st.sampled_from(TIERS), st.integers(1, 5), st.integers(0, 6), st.booleans()),
                 max_size=12)


@given(slots, st.sampled_from(TIERS))
def test_live_code_picks_the_oldest_active_group_of_the_tier_with_room(raw: list, tier: str) -> None:  # type: ignore[type-arg]
    groups = [GroupSlot(i, f"g{i}", t, cap, occ, active) for i, (t, cap, occ, active) in enumerate(raw)]
    chosen = choose_group(groups, tier)
    candidates = [g for g in groups if g.tier == tier and g.active and g.occupied < g.capacity]
    assert chosen == (candidates[0] if candidates else None)


@given(st.integers(1, 30), st.integers(1, 5), st.integers(0, 80))
def test_filling_groups_one_by_one_never_exceeds_capacity(capacity: int, count: int, arrivals: int) -> None:
    groups = [GroupSlot(i, f"g{i}", "core", capacity, 0) for i in range(count)]
    placed = 0
    for _ in range(arrivals):
        chosen = choose_group(groups, "core")
        if chosen is None:
            break
        groups = [GroupSlot(g.id, g.key, g.tier, g.capacity, g.occupied + (g.id == chosen.id)) for g in groups]
        placed += 1
    assert placed == min(arrivals, capacity * count)
    assert all(g.occupied <= g.capacity for g in groups)
    assert (room_by_tier(groups)[0].status == "full") == (placed == capacity * count)


def test_room_by_tier_flags_full_and_low_tiers() -> None:
    groups = [GroupSlot(1, "a", "core", 100, 100), GroupSlot(2, "b", "newbie", 100, 95),
              GroupSlot(3, "c", "interest", 100, 10)]
    assert {r.tier: r.status for r in room_by_tier(groups)} == {"core": "full", "newbie": "low", "interest": "ok"}


def test_url_utm_parameters_override_entry_defaults_and_others_are_dropped() -> None:
    merged = merge_utm({"utm_source": "xhs", "utm_medium": "note"}, {"utm_medium": "story", "gclid": "x"})
    assert merged == {"utm_source": "xhs", "utm_medium": "story"}
