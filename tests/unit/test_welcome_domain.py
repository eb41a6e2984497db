"""The `kind: welcome` document: validation at the offending file/line/field, variants, the shipped default."""

from __future__ import annotations

from pathlib import Path

import pytest

from qunflow.domain.playbooks import PlaybookErrors, parse_playbooks
from qunflow.domain.templates import render_template
from qunflow.domain.welcome import DEFAULT, WELCOME_DM, Welcome, parse_welcomes

SHIPPED = Path(__file__).resolve().parents[2] / "src" / "qunflow" / "playbooks" / "s1_welcome.yaml"

GOOD = """kind: welcome
dm: {zh: "欢迎 {{ name }}", en: "Welcome {{ name }}"}
menu: {zh: "欢迎 {{ names }}", en: "Welcome {{ names }}"}
menu_batch_seconds: 30
day1_tasks:
  - {key: checkin, title: {zh: 签到, en: Check in}}
  - {key: watch_intro, title: {zh: 看介绍, en: Watch the intro}, due_hours: 24}
variants:
  - id: core_poster
    tiers: [core]
    entry_points: [poster-1]
    dm: {zh: "核心海报 {{ name }}", en: "Core poster {{ name }}"}
  - id: core
    tiers: [core]
    dm: {zh: "核心 {{ name }} {{ tier }}", en: "Core {{ name }} {{ tier }}"}
  - id: poster
    entry_points: [poster-1, poster-2]
    dm: {zh: "海报 {{ entry_point }}", en: "Poster {{ entry_point }}"}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PlaybookErrors) as caught:
        parse_welcomes(text, "w.yaml")
    return [str(p) for p in caught.value.problems]


def test_the_shipped_file_is_exactly_the_built_in_default() -> None:
    [source] = parse_welcomes(SHIPPED.read_text(encoding="utf-8"), str(SHIPPED))
    assert source.welcome == DEFAULT
    assert [t.key for t in DEFAULT.day1_tasks] == ["checkin", "profile", "claim_coupon"]
    values = {"name": "Ann", "profile_link": "P", "coupon_link": "C"}
    assert render_template(WELCOME_DM, values, "en").startswith("Welcome, Ann! I'm the group assistant.")


def test_playbook_parser_leaves_welcome_documents_alone() -> None:
    playbook = ("kind: playbook\nkey: hi\ntitle: {zh: 你好, en: Hi}\ntrigger: {on: order_placed}\n"
                "templates:\n  t: {zh: 你好, en: hi}\nsteps:\n  - send_dm: t\n")
    mixed = playbook + "---\n" + GOOD
    assert [s.playbook.key for s in parse_playbooks(mixed, "m.yaml")] == ["hi"]
    [welcome] = parse_welcomes(mixed, "m.yaml")
    assert welcome.welcome.menu_batch_seconds == 30 and welcome.text.startswith("kind: welcome")


@pytest.mark.parametrize(("tier", "entry_point", "variant", "text"), [
    ("core", "poster-1", "core_poster", "Core poster"),  # both conditions: the most specific listed first wins
    ("core", "ads-1", "core", "Core"),
    ("core", None, "core", "Core"),
    ("newbie", "poster-2", "poster", "Poster"),
    ("newbie", "ads-1", "default", "Welcome"),
    (None, None, "default", "Welcome"),
])
def test_variants_are_chosen_first_match_by_tier_and_entry_point(tier: str | None, entry_point: str | None,
                                                                  variant: str, text: str) -> None:
    welcome = parse_welcomes(GOOD)[0].welcome
    chosen, dm = welcome.dm_for(tier, entry_point)
    assert chosen == variant
    assert render_template({"zh": dm.zh, "en": dm.en}, {"name": "Ann", "tier": tier, "entry_point": entry_point},
                           "en").startswith(text)


def test_variant_order_matters() -> None:
    swapped = GOOD.replace("  - id: core_poster\n    tiers: [core]\n    entry_points: [poster-1]\n",
                           "  - id: core_poster\n    tiers: [nobody]\n    entry_points: [poster-1]\n")
    assert parse_welcomes(swapped)[0].welcome.dm_for("core", "poster-1")[0] == "core"


def test_unknown_template_variable_names_file_line_field_and_language() -> None:
    bad = GOOD.replace('en: "Core {{ name }} {{ tier }}"', 'en: "Core {{ nmae }}"')
    [problem] = problems(bad)
    assert problem.startswith("w.yaml:15: variants[1].dm.en: template (line 1): unknown variable 'nmae'")
    assert "did you mean 'name'?" in problem


def test_menu_cannot_use_dm_only_variables() -> None:
    [problem] = problems(GOOD.replace('en: "Welcome {{ names }}"', 'en: "Welcome {{ coupon_link }}"'))
    assert problem.startswith("w.yaml:3: menu.en: ") and "unknown variable 'coupon_link'" in problem


def test_every_problem_of_a_file_is_reported_with_its_line() -> None:
    bad = (GOOD.replace("menu_batch_seconds: 30", "menu_batch_seconds: 0")
           .replace("{key: watch_intro,", "{key: Watch-Intro,")
           .replace("dm: {zh: \"欢迎 {{ name }}\", en: \"Welcome {{ name }}\"}\n", "")
           .replace("    entry_points: [poster-1, poster-2]\n", ""))
    found = problems(bad)
    assert any(p.startswith("w.yaml:1: dm: Field required") for p in found), found
    assert any(p.startswith("w.yaml:3: menu_batch_seconds: Input should be greater than or equal to 1") for p in found)
    assert any(p.startswith("w.yaml:6: day1_tasks[1].key: use lower-case letters") for p in found), found
    assert any(p.startswith("w.yaml:15: variants[2]: a variant names tiers, entry_points or both")
               for p in found), found
    assert len(found) == 4


def test_duplicates_unknown_fields_and_template_syntax_are_refused() -> None:
    bad = (GOOD.replace("{key: watch_intro,", "{key: checkin,").replace("id: core\n", "id: poster\n")
           .replace("menu_batch_seconds: 30", "menu_batch_seconds: 30\ncolour: blue"))
    found = problems(bad)
    assert any(p.startswith("w.yaml:5: colour: Extra inputs are not permitted") for p in found), found
    assert problems(GOOD.replace("{{ names }}\"}", "{{ names }\"}"))[0].startswith("w.yaml:3: menu.en: template")
    dup = problems(GOOD.replace("{key: watch_intro,", "{key: checkin,").replace("id: core\n", "id: poster\n"))
    assert dup == ["w.yaml:7: day1_tasks[1].key: 'checkin' is used more than once in day1_tasks",
                   "w.yaml:16: variants[2].id: 'poster' is used more than once in variants"]


def test_one_welcome_per_file_and_valid_yaml() -> None:
    assert problems(GOOD + "---\n" + GOOD)[-1] == "w.yaml:1: kind: a workspace has one welcome; this file defines 2"
    assert problems("kind: welcome\ndm: [\n")[0].startswith("w.yaml:")


def test_default_is_a_valid_document() -> None:
    assert Welcome.model_validate(DEFAULT.model_dump()) == DEFAULT


def test_the_documented_example_is_a_valid_welcome() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "automation.md").read_text(encoding="utf-8")
    example = doc.split("## S1 welcome", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    welcome = parse_welcomes(example, "docs")[0].welcome
    assert [v.id for v in welcome.variants] == ["core", "poster"]
    assert welcome.dm_for("core", "xhs-note-1")[0] == "core" and welcome.dm_for("newbie", "xhs-note-1")[0] == "poster"
    assert [t.due_hours for t in welcome.day1_tasks] == [48, 48, 24]
