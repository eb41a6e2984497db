"""The advisor inbox, template previews and dead letters as the console, API and CLI read them (both DBs)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from qunflow.errors import InvalidInput, NotFound
from qunflow.services.automation import work_once
from qunflow.services.inbox import assign, list_inbox, set_done
from qunflow.services.playbook_views import dead_letter_details, playbook_details, preview, retry_dead_letter
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.store.tables import enrollments
from qunflow.workspace import Workspace
from tests.integration.test_automation import Clock, join, local
from tests.integration.test_join_flow import setup_community

FOLLOW_UPS = """
kind: playbook
key: followups
title: {zh: 新人跟进, en: New member follow-ups}
trigger: {on: member_joined}
marketing: false
templates:
  alert: {zh: "新成员 {{ member_id }} 入群", en: "New member {{ member_id }} joined"}
steps:
  - advisor_task: {title: {zh: 第一次沟通, en: First call}, due_hours: 48}
  - notify_staff: alert
  - wait: {hours: 1}
  - advisor_task: {title: {zh: 回访, en: Call back}, due_hours: 2}
"""

# The DM renders longer than a chat message may be: the engine parks it as a dead letter.
TOO_LONG = """
kind: playbook
key: too_long
title: {zh: 超长消息, en: Too long}
trigger: {on: member_joined}
marketing: false
templates:
  long: {zh: "{{ name * 1000 }}", en: "{{ name * 1000 }}"}
  after: {zh: "后续 {{ name }}", en: "Next {{ name }}"}
steps:
  - id: shout
    send_dm: long
  - send_dm: after
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def make_community(ws: Workspace, tmp_path: Path) -> tuple[Clock, list[str]]:
    """Two members joined half an hour apart and the worker ran: four follow-ups and two alerts."""
    clock = Clock(local("2026-03-02T10:00:00"))
    ws.clock = clock
    setup_community(ws)
    apply_playbooks(ws, [write(tmp_path, "followups.yaml", FOLLOW_UPS)])
    first = join(ws, "v1", "u1")
    work_once(ws, worker="t")
    clock.now += timedelta(minutes=30)
    second = join(ws, "v2", "u2")
    work_once(ws, worker="t")
    for _ in range(2):  # 11:00 and 11:30: each member's hour of waiting ends
        clock.now += timedelta(minutes=30)
        work_once(ws, worker="t")
    return clock, [first, second]


@pytest.fixture
def community(any_workspace: Workspace, tmp_path: Path) -> tuple[Workspace, Clock, list[str]]:
    return (any_workspace, *make_community(any_workspace, tmp_path))


def test_the_inbox_lists_open_items_soonest_due_first_and_filters(community) -> None:  # type: ignore[no-untyped-def]
    ws, clock, (first, second) = community
    items = list_inbox(ws)
    follow_ups = [(i["member_id"], i["title"], i["due_at"]) for i in items if i["kind"] == "follow_up"]
    start = local("2026-03-02T10:00:00")
    assert follow_ups == [  # call-backs (2 h after the hour's wait) come before the first calls (48 h)
        (first, "回访 / Call back", start + timedelta(hours=3)),
        (second, "回访 / Call back", start + timedelta(hours=3, minutes=30)),
        (first, "第一次沟通 / First call", start + timedelta(hours=48)),
        (second, "第一次沟通 / First call", start + timedelta(hours=48, minutes=30))]
    alerts = [i for i in items if i["kind"] == "alert"]
    assert [a["title"] for a in alerts] == [f"新成员 {m} 入群 / New member {m} joined" for m in (first, second)]
    assert items[-2:] == alerts  # alerts have no due time: after everything that has one
    assert [i["kind"] for i in list_inbox(ws, kind="alert")] == ["alert", "alert"]
    soon = list_inbox(ws, due_before=start + timedelta(hours=3, minutes=10))
    assert [(i["member_id"], i["title"]) for i in soon] == [(first, "回访 / Call back")]


def test_done_undone_and_assign_change_one_item(community) -> None:  # type: ignore[no-untyped-def]
    ws, clock, _members = community
    target = list_inbox(ws)[0]
    done = set_done(ws, target["id"])
    assert done["done_at"] == clock.now
    assert target["id"] not in [i["id"] for i in list_inbox(ws)]
    assert [i["id"] for i in list_inbox(ws, status="done")] == [target["id"]]
    clock.now += timedelta(minutes=5)
    assert set_done(ws, target["id"])["done_at"] == done["done_at"]  # done twice keeps the first time
    assert set_done(ws, target["id"], False)["done_at"] is None
    assert len(list_inbox(ws)) == 6 and list_inbox(ws, status="done") == []

    assert assign(ws, target["id"], "  王芳 ")["assignee"] == "王芳"
    assert [i["id"] for i in list_inbox(ws, assignee="王芳")] == [target["id"]]
    assert len(list_inbox(ws, assignee="")) == 5  # empty: the unassigned ones
    assert assign(ws, target["id"], "")["assignee"] is None
    assert len(list_inbox(ws, status="all")) == 6


@pytest.mark.parametrize("call, message", [
    (lambda ws: list_inbox(ws, status="later"), "status must be one of open, done, all"),
    (lambda ws: list_inbox(ws, kind="todo"), "kind must be one of follow_up, alert"),
    (lambda ws: assign(ws, 1, "x" * 65), "at most 64 characters"),
    (lambda ws: assign(ws, 1, "a\nb"), "one line"),
])
def test_bad_inbox_input_is_refused_and_changes_nothing(community, call, message) -> None:  # type: ignore[no-untyped-def]
    ws, _clock, _members = community
    before = list_inbox(ws, status="all")
    with pytest.raises(InvalidInput, match=message):
        call(ws)
    assert list_inbox(ws, status="all") == before


def test_unknown_inbox_items_are_not_found(community) -> None:  # type: ignore[no-untyped-def]
    ws, _clock, _members = community
    for call in (lambda: set_done(ws, 999), lambda: set_done(ws, 999, False), lambda: assign(ws, 999, "A")):
        with pytest.raises(NotFound, match="no inbox item 999"):
            call()


def test_template_previews_fill_sample_values_in_both_languages(any_workspace: Workspace) -> None:
    ws = any_workspace
    apply_playbooks(ws, shipped_files())
    assert preview(ws, "s2_warmup", "day0_coupon", "zh") == "小明,欢迎加入!送你一张新人券 WELCOME8K2P(¥20),7 天内有效。"
    assert preview(ws, "s2_warmup", "day6_advisor", "en") == (
        "Hi Alex, I'm Q, your advisor here. Could we talk for a minute about what you need?")
    assert f"{ws.settings.public_url.rstrip('/')}/m/sample/task/profile" in preview(ws, "s2_warmup", "day1_task", "en")
    with pytest.raises(NotFound, match="has no template 'day9'.*day0_coupon"):
        preview(ws, "s2_warmup", "day9", "zh")
    with pytest.raises(NotFound, match="no playbook 'nope'"):
        preview(ws, "nope", "x", "zh")
    with pytest.raises(InvalidInput, match="lang must be zh or en"):
        preview(ws, "s2_warmup", "day0_coupon", "fr")
    details = {p["key"]: p for p in playbook_details(ws, "en")}
    s2 = details["s2_warmup"]
    assert s2["title_text"] == "7-day warm-up for new members" and s2["version"] == 1 and s2["enabled"]
    assert [t["name"] for t in s2["templates"]] == ["day0_coupon", "day1_task", "day2_content", "day4_invite",
                                                   "day6_advisor"]
    assert s2["templates"][0]["preview"].startswith("Welcome, Alex!")
    assert s2["steps"][0] == {"index": 0, "id": "day0", "action": "issue_coupon", "active": 0, "detail": "welcome 20"}


def test_a_message_too_long_is_a_dead_letter_that_retry_and_skip_put_back(
        any_workspace: Workspace, tmp_path: Path) -> None:
    ws = any_workspace
    clock = Clock(local("2026-03-02T10:00:00"))
    ws.clock = clock
    setup_community(ws)
    apply_playbooks(ws, [write(tmp_path, "long.yaml", TOO_LONG)])
    member = join(ws, "v1", "u1")
    work_once(ws, worker="t")
    [dead] = dead_letter_details(ws)
    assert (dead["playbook_key"], dead["version"], dead["subject"], dead["step"]) == ("too_long", 1, member, 0)
    assert (dead["action"], dead["detail"]) == ("send_dm", "long")
    assert "longer than 4096 characters" in dead["last_error"]

    assert retry_dead_letter(ws, dead["id"])["status"] == "active"
    assert dead_letter_details(ws) == []
    with pytest.raises(NotFound, match=f"no dead letter {dead['id']}"):
        retry_dead_letter(ws, dead["id"])  # already back in line
    clock.now += timedelta(minutes=1)
    work_once(ws, worker="t")  # the same text is still too long: dead again, later
    [again] = dead_letter_details(ws)
    assert again["id"] == dead["id"] and again["updated_at"] > dead["updated_at"]

    assert retry_dead_letter(ws, dead["id"], skip_step=True)["step"] == 1
    work_once(ws, worker="t")  # sends the next step's DM
    work_once(ws, worker="t")  # and finds the end of the playbook
    with ws.engine.connect() as conn:
        status = conn.execute(select(enrollments.c.status).where(enrollments.c.id == dead["id"])).scalar()
    assert status == "done" and dead_letter_details(ws) == []
    texts = [m["text"] for m in ws.sandbox.messages(dm_user_id="u1")]
    assert "后续 Li Lei" in texts and not any(len(t) > 4096 for t in texts)
    with pytest.raises(NotFound, match="no dead letter 424242"):
        retry_dead_letter(ws, 424242)
