"""The S1 welcome as an applied, versioned document: joins on the sandbox platform get the welcome in force."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from qunflow.domain.templates import render_template
from qunflow.domain.welcome import DEFAULT, KEY, WELCOME_DM
from qunflow.errors import InvalidInput
from qunflow.services.automation import dispatch_triggers, inactive_scan, run_due, schedule_tick
from qunflow.services.join import submit_gate
from qunflow.services.playbooks import apply_playbooks, playbook_overview, shipped_files
from qunflow.services.privacy import member_link_token
from qunflow.services.welcome import complete_task
from qunflow.services.welcome_docs import active_welcome, preview, welcome_overview
from qunflow.store.tables import enrollments, events, member_tasks, playbook_versions, playbooks
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import FORM, invite_token, setup_community

SHIPPED = next(p for p in shipped_files() if p.name == "s1_welcome.yaml")
NEWBIE_FORM = {**FORM, "stage": "learning", "experience": "no"}

CHANGED = """kind: welcome
title: {zh: 春季欢迎, en: Spring welcome}
dm:
  zh: "{{ name }},春季欢迎!资料:{{ profile_link }}"
  en: "{{ name }}, a spring welcome! Profile: {{ profile_link }} ({{ group }}/{{ tier }})"
menu: {zh: "欢迎 {{ names }}!群规 {{ rules_link }}", en: "Hi {{ names }}! Rules {{ rules_link }}"}
menu_batch_seconds: 600
day1_tasks:
  - {key: checkin, title: {zh: 签到, en: Check in}, due_hours: 12}
  - {key: watch_intro, title: {zh: 看介绍视频, en: Watch the intro}, due_hours: 24}
variants:
  - id: poster
    entry_points: [xhs-note-1]
    tiers: [newbie]
    dm: {zh: "海报来的 {{ name }},欢迎!", en: "Welcome, {{ name }}, from the poster ({{ entry_point }})!"}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def join(ws: Workspace, visitor: str, user: str, form: dict[str, str] = FORM, locale: str = "zh") -> str:
    ticket = submit_gate(ws, "xhs-note-1", visitor, form, locale=locale)
    assert ws.sandbox.join(user, f"User {user}", invite_token(ticket.invite_url)) == "joined"
    return ticket.member_id


def dm_text(ws: Workspace, user: str) -> str:
    [message] = ws.sandbox.messages(dm_user_id=user)
    return str(message["text"])


def without_tokens(text: str) -> str:
    return re.sub(r"/m/[^/]+/", "/m/TOKEN/", text)


def sent_event(ws: Workspace, member_id: str) -> dict[str, object]:
    with ws.engine.connect() as conn:
        return dict(conn.execute(select(events.c.properties).where(
            events.c.type == "welcome_sent", events.c.member_id == member_id)).scalar_one())


def tasks_of(ws: Workspace, member_id: str) -> dict[str, float]:
    """Task key -> hours from assignment to due."""
    with ws.engine.connect() as conn:
        rows = conn.execute(select(member_tasks).where(member_tasks.c.member_id == member_id)).all()
    return {r.task_key: (r.due_at - r.assigned_at) / timedelta(hours=1) for r in rows}


def test_nothing_applied_means_the_built_in_welcome_unchanged(any_workspace: Workspace) -> None:
    ws = any_workspace
    setup_community(ws)
    member = join(ws, "v1", "u1")
    base = f"{ws.settings.public_url.rstrip('/')}/m/{member_link_token(ws, member)}/task"
    values = {"name": "Li Lei", "profile_link": f"{base}/profile", "coupon_link": f"{base}/claim_coupon"}
    assert dm_text(ws, "u1") == render_template(WELCOME_DM, values, "zh")
    english = join(ws, "v2", "u2", locale="en-US")
    base = f"{ws.settings.public_url.rstrip('/')}/m/{member_link_token(ws, english)}/task"
    values = {"name": "Li Lei", "profile_link": f"{base}/profile", "coupon_link": f"{base}/claim_coupon"}
    assert dm_text(ws, "u2") == render_template(WELCOME_DM, values, "en")
    assert dm_text(ws, "u2").startswith("Welcome, Li Lei! I'm the group assistant.")
    assert tasks_of(ws, member) == {"checkin": 48.0, "claim_coupon": 48.0}  # the gate had the name
    assert sent_event(ws, member)["welcome_version"] == 0 and sent_event(ws, member)["variant"] == "default"
    with ws.engine.connect() as conn:
        assert active_welcome(conn) == (None, DEFAULT)


def test_applying_the_shipped_file_keeps_behaviour_and_versions_it(any_workspace: Workspace) -> None:
    ws = any_workspace
    setup_community(ws)
    join(ws, "v0", "u0")
    [change] = apply_playbooks(ws, [SHIPPED])
    assert (change.kind, change.key, change.status, change.version) == ("welcome", KEY, "new", 1)
    join(ws, "v1", "u1")
    assert without_tokens(dm_text(ws, "u1")) == without_tokens(dm_text(ws, "u0"))
    assert [c.status for c in apply_playbooks(ws, [SHIPPED])] == ["unchanged"]
    with ws.engine.connect() as conn:
        assert active_welcome(conn) == (1, DEFAULT)


def test_a_changed_welcome_reaches_the_very_next_join(any_workspace: Workspace, tmp_path: Path) -> None:
    ws = any_workspace
    setup_community(ws)
    apply_playbooks(ws, [SHIPPED])
    first = join(ws, "v1", "u1")
    assert dm_text(ws, "u1").startswith("欢迎你,Li Lei!我是群助手。")

    path = write(tmp_path, "welcome.yaml", CHANGED)
    [dry] = apply_playbooks(ws, [path], dry_run=True)
    assert (dry.status, dry.version) == ("changed", 2) and "+menu_batch_seconds: 600" in dry.diff
    join(ws, "v2", "u2")
    assert dm_text(ws, "u2").startswith("欢迎你,Li Lei!我是群助手。")  # a dry run changes nothing

    [change] = apply_playbooks(ws, [path])
    assert (change.status, change.version) == ("changed", 2)
    third = join(ws, "v3", "u3", locale="en")  # a core join through xhs-note-1: not the newbie poster variant
    text = dm_text(ws, "u3")
    assert text.startswith("Li Lei, a spring welcome! Profile: http")
    assert text.endswith("/profile (core-2/core)")  # core-1 is full
    assert tasks_of(ws, third) == {"checkin": 12.0, "watch_intro": 24.0}
    assert tasks_of(ws, first) == {"checkin": 48.0, "claim_coupon": 48.0}
    assert sent_event(ws, third) | {"latency_ms": 0, "seconds_after_join": 0} == {
        "latency_ms": 0, "seconds_after_join": 0, "welcome_version": 2, "variant": "default"}

    newbie = join(ws, "v4", "u4", NEWBIE_FORM)  # the variant: newbie tier through xhs-note-1
    assert dm_text(ws, "u4") == "海报来的 Li Lei,欢迎!"
    assert sent_event(ws, newbie)["variant"] == "poster"

    # A task only the applied welcome names can be completed; one nobody named cannot.
    assert complete_task(ws, third, "watch_intro") is True
    assert complete_task(ws, third, "watch_intro") is False
    with pytest.raises(InvalidInput, match="unknown task 'nap'"):
        complete_task(ws, third, "nap")
    assert complete_task(ws, first, "claim_coupon") is True  # tasks of an older version stay completable

    # Back to the shipped text: version 3, the same DM as at first.
    assert [c.version for c in apply_playbooks(ws, [SHIPPED])] == [3]
    join(ws, "v5", "u5")
    assert dm_text(ws, "u5").startswith("欢迎你,Li Lei!我是群助手。")


def test_a_bad_file_changes_nothing(any_workspace: Workspace, tmp_path: Path) -> None:
    ws = any_workspace
    setup_community(ws)
    apply_playbooks(ws, [write(tmp_path, "good.yaml", CHANGED)])
    bad = write(tmp_path, "bad.yaml", CHANGED.replace("{{ profile_link }}\"\n  en", "{{ profile_lnk }}\"\n  en"))
    extra = write(tmp_path, "extra.yaml", CHANGED.replace("menu_batch_seconds: 600\n", "menu_batch_seconds: 6\nx: 1\n"))
    playbook = write(tmp_path, "pb.yaml", "kind: playbook\nkey: hi\ntitle: {zh: 你好, en: Hi}\n"
                     "trigger: {on: order_placed}\ntemplates:\n  t: {zh: 你好, en: hi}\nsteps:\n  - send_dm: t\n")
    with pytest.raises(InvalidInput) as caught:
        apply_playbooks(ws, [playbook, bad, extra])
    message = str(caught.value)
    assert f"{bad}:4: dm.zh: template (line 1): unknown variable 'profile_lnk'" in message
    assert f"{extra}:8: x: Extra inputs are not permitted" in message
    with pytest.raises(InvalidInput, match="welcome\\) 's1_welcome' is defined in more than one place"):
        apply_playbooks(ws, [write(tmp_path, "again.yaml", CHANGED.replace("600", "60")), SHIPPED])
    with pytest.raises(InvalidInput, match="'s1_welcome' is the welcome's name"):
        named = playbook.read_text(encoding="utf-8").replace("key: hi", "key: s1_welcome")
        apply_playbooks(ws, [write(tmp_path, "named.yaml", named)])
    with ws.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(playbook_versions)).scalar() == 1
        assert conn.execute(select(playbooks.c.key)).scalars().all() == [KEY]
    join(ws, "v1", "u1")
    assert dm_text(ws, "u1").startswith("Li Lei,春季欢迎!")


def test_the_engine_and_the_playbook_list_leave_the_welcome_out(workspace: Workspace, tmp_path: Path) -> None:
    ws = workspace
    # A Monday morning in Shanghai: no shipped schedule (the Friday 20:00 content calendar) is due, whatever
    # the real time of day the test runs at.
    ws.clock = lambda: datetime(2026, 3, 2, 2, 0)  # type: ignore[method-assign]
    setup_community(ws)
    apply_playbooks(ws, shipped_files())
    apply_playbooks(ws, [write(tmp_path, "w.yaml", CHANGED)])
    listed = [p["key"] for p in playbook_overview(ws)]
    assert KEY not in listed and "s2_warmup" in listed
    join(ws, "v1", "u1")
    # The engine's parts that read the active playbooks do not trip over the welcome's row (work_once also
    # runs the rewards round, which is not what this test is about).
    assert dispatch_triggers(ws) >= 1 and schedule_tick(ws) >= 0 and inactive_scan(ws) >= 0
    assert run_due(ws, worker="t").errors == []
    with ws.engine.connect() as conn:
        assert set(conn.execute(select(enrollments.c.playbook_key)).scalars()) == {"s2_warmup"}
    overview = welcome_overview(ws, "en")
    assert (overview["version"], overview["built_in"], overview["menu_batch_seconds"]) == (2, False, 600)
    assert [v["version"] for v in overview["versions"]] == [2, 1]
    assert [t["key"] for t in overview["tasks"]] == ["checkin", "watch_intro"]
    assert overview["variants"] == [{"id": "poster", "tiers": ["newbie"], "entry_points": ["xhs-note-1"]}]
    previews = {t["name"]: t["preview"] for t in overview["templates"]}
    assert previews["dm:poster"] == "Welcome, Alex, from the poster (ads-1)!"
    assert preview(ws, "menu", "zh").startswith("欢迎 小明, 小红!群规 http")
    with pytest.raises(InvalidInput, match="lang must be zh or en"):
        preview(ws, "dm", "fr")
