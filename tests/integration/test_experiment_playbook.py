"""`kind: experiment` on a playbook step (issue 14, "what varies: any playbook step"): on a simulated clock the
S2 warm-up's Day-2 DM goes out in each member's sticky variant, one exposure per member, the control keeps
the step's own text, a shipped winner goes to everyone without exposures, and bad documents are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from qunflow.domain.experiments import assign
from qunflow.errors import InvalidInput
from qunflow.services.automation import work_once
from qunflow.services.experiments import experiment_results
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.store.tables import events
from qunflow.workspace import Workspace
from tests.integration.test_automation import Clock, clocked, join, local, playbook_dms, run_until  # noqa: F401
from tests.integration.test_welcome_playbook import write

KEY = "warmup-day2"
DOC = """kind: experiment
key: warmup-day2
title: {zh: 第 2 天干货 A/B, en: Day-2 guide A/B}
varies: {playbook: s2_warmup, step: day2}
variants:
  - {key: control, weight: 1}
  - key: story
    weight: 1
    text: {zh: "{{ name }},看看老成员的故事:{{ link }}", en: "{{ name }}, read how others started: {{ link }}"}
guardrails: [retention_d1, task_completion_d1]
"""
PLAN = [("control", 1.0), ("story", 1.0)]


def exposures(ws: Workspace) -> list[tuple[str, str, str, str]]:
    with ws.engine.connect() as conn:
        return sorted((r.event_id, r.member_id, r.experiment, r.variant) for r in conn.execute(
            select(events.c.event_id, events.c.member_id, events.c.experiment, events.c.variant)
            .where(events.c.type == "experiment_exposure")))


def day2_texts(ws: Workspace) -> dict[str, list[str]]:
    """Per sandbox user, the playbook DMs sent on 03-04 (the S2 Day-2 step)."""
    return {user: [text for at, text in sent if at.startswith("03-04")] for user, sent in playbook_dms(ws).items()}


def test_a_playbook_step_sends_each_members_sticky_variant_with_one_exposure(
        clocked: tuple[Workspace, Clock], tmp_path: Path) -> None:  # noqa: F811
    ws, clock = clocked
    apply_playbooks(ws, [*shipped_files(), write(tmp_path, "xp.yaml", DOC)])
    clock.now = local("2026-03-02T10:00:00")
    arms: dict[str, str] = {}
    users: dict[str, str] = {}
    for i in range(30):  # member ids are random: join until both arms are seen (at least 4 members)
        if len(arms) >= 4 and set(arms.values()) == {"control", "story"}:
            break
        member = join(ws, f"v{i}", f"u{i}")
        arms[member], users[member] = assign(KEY, member, PLAN), f"u{i}"
    work_once(ws, worker="test")
    run_until(ws, clock, local("2026-03-03T23:00:00"))
    assert exposures(ws) == []  # nobody has met the varied step yet
    run_until(ws, clock, local("2026-03-05T12:00:00"))

    texts = day2_texts(ws)
    for member, arm in arms.items():
        [text] = texts[users[member]]
        if arm == "story":
            assert "老成员的故事" in text and "干货" not in text
        else:  # the control: the step as written
            assert "干货" in text and "老成员的故事" not in text
        assert "/u/" in text or "unsubscribe" in text.lower() or "退订" in text  # still a marketing DM
    assert exposures(ws) == sorted((f"xp-{KEY}-{m}", m, KEY, a) for m, a in arms.items())
    before = {users[m]: playbook_dms(ws)[users[m]] for m in arms}
    run_until(ws, clock, local("2026-03-10T12:00:00"))  # the rest of the warm-up: no second exposure
    assert exposures(ws) == sorted((f"xp-{KEY}-{m}", m, KEY, a) for m, a in arms.items())
    for member in arms:  # Day 4 and Day 6 are not varied
        later = playbook_dms(ws)[users[member]][len(before[users[member]]):]
        assert "邀请" in later[0][1] and "顾问" in later[1][1]

    report = experiment_results(ws, KEY, as_of=local("2026-03-10T12:00:00").date())
    assert report["varies"] == {"playbook": "s2_warmup", "step": "day2"}
    assert [v["members"] for v in report["variants"]] == [list(arms.values()).count(a) for a in ("control", "story")]
    assert [(g["metric"], g["variant"]) for g in report["guardrails"]] == [
        ("retention_d1", "story"), ("task_completion_d1", "story")]
    assert all(g["worse"] is False for g in report["guardrails"])


def test_a_step_named_by_its_template_and_a_shipped_winner(clocked: tuple[Workspace, Clock],  # noqa: F811
                                                           tmp_path: Path) -> None:
    ws, clock = clocked
    shipped = DOC.replace("step: day2}", "step: day2_content}") + "shipped: story\n"
    apply_playbooks(ws, [*shipped_files(), write(tmp_path, "xp.yaml", shipped)])
    clock.now = local("2026-03-02T10:00:00")
    join(ws, "v1", "u1")
    join(ws, "v2", "u2")
    work_once(ws, worker="test")
    run_until(ws, clock, local("2026-03-05T12:00:00"))
    texts = day2_texts(ws)
    assert all("老成员的故事" in texts[u][0] for u in ("u1", "u2"))  # everyone gets the winner
    assert exposures(ws) == []  # and nothing is being compared any more


@pytest.mark.parametrize(("text", "message"), [
    (DOC.replace("guardrails: [retention_d1, task_completion_d1]", "guardrails: [retention_d1, happiness]"),
     "bad.yaml:10: guardrails: not a METRICS.md metric key: 'happiness'"),
    (DOC.replace("guardrails: [retention_d1, task_completion_d1]", "guardrails: [spend]"),
     "bad.yaml:10: guardrails: 'spend' cannot be a guardrail"),
    (DOC.replace("    text: {zh", "    dm: {zh"), "give `text`, not `dm`"),
    (DOC.replace("{{ link }}\", en", "{{ profile_link }}\", en"), "bad.yaml:9: variants.1.text.zh: .*profile_link"),
    (DOC.replace("  - {key: control, weight: 1}", "  - {key: control, weight: 1, text: {zh: 甲, en: A}}"),
     "keeps the step's own text"),
    (DOC.replace("{playbook: s2_warmup, step: day2}", "{playbook: s2_warmup}"), "varies"),
])
def test_a_bad_step_experiment_is_refused_with_its_line(clocked: tuple[Workspace, Clock],  # noqa: F811
                                                        tmp_path: Path, text: str, message: str) -> None:
    ws, _clock = clocked
    with pytest.raises(InvalidInput, match=message):
        apply_playbooks(ws, [write(tmp_path, "bad.yaml", text)])


COUPON_KEY = "welcome-coupon"
COUPON_DOC = """kind: experiment
key: welcome-coupon
title: {zh: 欢迎券面额 A/B, en: Welcome coupon value A/B}
varies: {playbook: s2_warmup, step: day0}
variants:
  - {key: control, weight: 1}
  - {key: bigger, weight: 1, coupon_value: 35}
"""
COUPON_PLAN = [("control", 1.0), ("bigger", 1.0)]


def coupon_values(ws: Workspace) -> dict[str, float]:
    from qunflow.store.tables import coupons

    with ws.engine.connect() as conn:
        return {r.member_id: float(r.value) for r in conn.execute(
            select(coupons.c.member_id, coupons.c.value).where(coupons.c.name == "welcome"))}


def test_an_issue_coupon_step_gives_each_member_their_variants_value(
        clocked: tuple[Workspace, Clock], tmp_path: Path) -> None:  # noqa: F811
    """The seed's week 4 tests incentives as well as scripts: the Day-0 coupon's value varies per member,
    the DM that announces it names the member's own value, and the exposure is the coupon issued."""
    ws, clock = clocked
    apply_playbooks(ws, [*shipped_files(), write(tmp_path, "xp.yaml", COUPON_DOC)])
    clock.now = local("2026-03-02T10:00:00")
    arms: dict[str, str] = {}
    users: dict[str, str] = {}
    for i in range(30):
        if len(arms) >= 4 and set(arms.values()) == {"control", "bigger"}:
            break
        member = join(ws, f"v{i}", f"u{i}")
        arms[member], users[member] = assign(COUPON_KEY, member, COUPON_PLAN), f"u{i}"
    work_once(ws, worker="test")
    run_until(ws, clock, local("2026-03-02T12:00:00"))
    values = coupon_values(ws)
    assert values == {m: (35.0 if a == "bigger" else 20.0) for m, a in arms.items()}
    dms = playbook_dms(ws)
    for member, arm in arms.items():
        coupon_dm = next(text for _at, text in dms[users[member]] if "新人券" in text)
        assert ("¥35" if arm == "bigger" else "¥20") in coupon_dm
    assert exposures(ws) == sorted((f"xp-{COUPON_KEY}-{m}", m, COUPON_KEY, a) for m, a in arms.items())


@pytest.mark.parametrize(("text", "message"), [
    (COUPON_DOC.replace("step: day0}", "step: day2}"), "has no issue_coupon step with id or coupon 'day2'"),
    (COUPON_DOC.replace("coupon_value: 35}", "coupon_value: 35, text: {zh: 甲, en: A}}"), "not `text`"),
    (COUPON_DOC.replace("coupon_value: 35", "coupon_value: -5"), "coupon_value"),
])
def test_a_bad_coupon_experiment_is_refused(clocked: tuple[Workspace, Clock],  # noqa: F811
                                            tmp_path: Path, text: str, message: str) -> None:
    ws, _clock = clocked
    with pytest.raises(InvalidInput, match=message):
        apply_playbooks(ws, [*shipped_files(), write(tmp_path, "bad.yaml", text)])


SWAP_KEY = "day1-task"
SWAP_DOC = """kind: experiment
key: day1-task
title: {zh: 第 1 天任务 A/B, en: Day-1 task A/B}
varies: {playbook: s2_warmup, step: day1}
variants:
  - {key: control, weight: 1}
  - {key: tagged, weight: 1, step: {add_tag: day1_skipped}}
"""
SWAP_PLAN = [("control", 1.0), ("tagged", 1.0)]


def playbook_events(ws: Workspace, kind: str) -> dict[str, list[dict[str, object]]]:
    """Per member, the properties of the `kind` events playbook steps recorded (not the welcome's own)."""
    with ws.engine.connect() as conn:
        out: dict[str, list[dict[str, object]]] = {}
        for row in conn.execute(select(events.c.member_id, events.c.properties)
                                .where(events.c.type == kind, events.c.event_id.like("%pb:%"))):
            out.setdefault(row.member_id, []).append(row.properties or {})
        return out


def test_a_variant_puts_another_step_in_the_playbooks_place(
        clocked: tuple[Workspace, Clock], tmp_path: Path) -> None:  # noqa: F811
    """"Any playbook step": the Day-1 check-in task for the control, a tag instead for the other arm; every
    member who reaches the step is exposed, whatever their arm, and the steps after it run for both."""
    ws, clock = clocked
    apply_playbooks(ws, [*shipped_files(), write(tmp_path, "xp.yaml", SWAP_DOC)])
    clock.now = local("2026-03-02T10:00:00")
    arms: dict[str, str] = {}
    for i in range(30):
        if len(arms) >= 4 and set(arms.values()) == {"control", "tagged"}:
            break
        member = join(ws, f"v{i}", f"u{i}")
        arms[member] = assign(SWAP_KEY, member, SWAP_PLAN)
    work_once(ws, worker="test")
    run_until(ws, clock, local("2026-03-02T23:00:00"))
    assert exposures(ws) == []  # the Day-1 step is tomorrow
    run_until(ws, clock, local("2026-03-05T12:00:00"))
    tasks, tags = playbook_events(ws, "task_assigned"), playbook_events(ws, "tag_added")
    for member, arm in arms.items():
        checkin = [p for p in tasks.get(member, []) if p.get("task") == "checkin"]
        tagged = [p for p in tags.get(member, []) if p.get("tag") == "day1_skipped"]
        assert (len(checkin), len(tagged)) == ((0, 1) if arm == "tagged" else (1, 0)), (member, arm)
    assert exposures(ws) == sorted((f"xp-{SWAP_KEY}-{m}", m, SWAP_KEY, a) for m, a in arms.items())
    assert all(len(texts) == 1 for texts in day2_texts(ws).values())  # the Day-2 DM went to both arms


@pytest.mark.parametrize(("text", "message"), [
    (SWAP_DOC.replace("step: {add_tag: day1_skipped}", "step: {wait: {day: 2, at: '10:00'}}"),
     "cannot be a wait"),
    (SWAP_DOC.replace("step: {add_tag: day1_skipped}", "step: {send_dm: no_such_template}"),
     "sends template 'no_such_template'"),
    (SWAP_DOC.replace("step: day1}", "step: day9}"), "has no step with id 'day9'"),
    (SWAP_DOC.replace("step: {add_tag: day1_skipped}", "step: {add_tag: x, remove_tag: y}"), "exactly one of"),
])
def test_a_bad_step_swap_is_refused(clocked: tuple[Workspace, Clock],  # noqa: F811
                                   tmp_path: Path, text: str, message: str) -> None:
    ws, _clock = clocked
    with pytest.raises(InvalidInput, match=message):
        apply_playbooks(ws, [*shipped_files(), write(tmp_path, "bad.yaml", text)])
