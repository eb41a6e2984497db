"""The automation engine on a simulated clock: the shipped S2 warm-up, quiet hours, the goal exit, branches."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from qunflow.engine.notifier import post_staff_alerts
from qunflow.errors import InvalidInput
from qunflow.services.automation import dead_letters, work_once
from qunflow.services.ingest import ingest_batch
from qunflow.services.join import submit_gate
from qunflow.services.playbooks import apply_playbooks, playbook_overview, shipped_files
from qunflow.services.privacy import member_link_token
from qunflow.store.tables import coupons, enrollments, inbox, member_tags, members
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import FORM, invite_token, setup_community
from tests.webhook import Webhook

ZONE = ZoneInfo("Asia/Shanghai")
UTC = ZoneInfo("UTC")


def local(text: str) -> datetime:
    """A local wall-clock time as the naive UTC the workspace clock gives."""
    return datetime.fromisoformat(text).replace(tzinfo=ZONE).astimezone(UTC).replace(tzinfo=None)


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clocked(workspace: Workspace) -> tuple[Workspace, Clock]:
    clock = Clock(local("2026-03-02T09:00:00"))
    workspace.clock = clock
    setup_community(workspace)
    return workspace, clock


def join(ws: Workspace, visitor: str, user: str) -> str:
    """A member who ticked the marketing box at the gate (marketing DMs need it)."""
    ticket = submit_gate(ws, "xhs-note-1", visitor, {**FORM, "marketing": "on"})
    assert ws.sandbox.join(user, f"User {user}", invite_token(ticket.invite_url)) == "joined"
    return ticket.member_id


def run_until(ws: Workspace, clock: Clock, end: datetime, step: timedelta = timedelta(minutes=30)) -> None:
    while clock.now < end:
        clock.now += step
        work_once(ws, worker="test")


def playbook_dms(ws: Workspace) -> dict[str, list[tuple[str, str]]]:
    """Per sandbox user: (local time, text) of the messages playbooks sent them."""
    world = ws.sandbox
    out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for m in sorted(world.messages(limit=10_000), key=lambda m: m["id"]):
        if (m.get("client_key") or "").startswith("pb:"):
            at = m["sent_at"].replace(tzinfo=UTC).astimezone(ZONE)
            out[m["dm_user_id"]].append((f"{at:%m-%d %H:%M}", m["text"]))
    return out


def test_s2_sends_day_0_1_2_4_6_at_local_times_skips_quiet_hours_and_stops_at_an_order(
        clocked: tuple[Workspace, Clock]) -> None:
    ws, clock = clocked
    apply_playbooks(ws, shipped_files())
    clock.now = local("2026-03-02T10:00:00")
    plain = join(ws, "v1", "u1")  # Monday 10:00
    buyer = join(ws, "v3", "u3")
    work_once(ws, worker="test")
    run_until(ws, clock, local("2026-03-02T23:30:00"))
    late = join(ws, "v2", "u2")  # 23:30: inside the quiet hours (22:00-08:00)
    run_until(ws, clock, local("2026-03-05T12:00:00"))
    ingest_batch(ws.engine, [{"event_id": "o1", "type": "order", "ts": "2026-03-05T12:00:00+08:00",
                              "member_id": buyer, "amount": 99}])
    run_until(ws, clock, local("2026-03-10T12:00:00"))

    dms = playbook_dms(ws)
    times = {user: [t for t, _ in sent] for user, sent in dms.items()}
    assert times["u1"] == ["03-02 10:00", "03-03 10:00", "03-04 10:00", "03-06 10:00", "03-08 10:00"]
    # The Day-0 coupon waits for the end of the quiet hours; the rest keeps to the join day's plan.
    assert times["u2"] == ["03-03 08:00", "03-03 10:00", "03-04 10:00", "03-06 10:00", "03-08 10:00"]
    assert times["u3"] == ["03-02 10:00", "03-03 10:00", "03-04 10:00"]  # ordered on Day 3: no more
    texts = [text for _, text in dms["u1"]]
    assert "新人券" in texts[0] and "小任务" in texts[1] and "干货" in texts[2] and "邀请" in texts[3]
    assert "顾问" in texts[4]
    assert f"/m/{member_link_token(ws, plain)}/poster.png" in texts[3]  # Day 4: the member's S3 poster
    with ws.engine.connect() as conn:
        status = dict(conn.execute(select(enrollments.c.subject, enrollments.c.status)
                                   .where(enrollments.c.playbook_key == "s2_warmup")).all())
        issued = conn.execute(select(coupons.c.member_id, coupons.c.name, coupons.c.value)).all()
        follow_ups = conn.execute(select(inbox.c.member_id).where(inbox.c.kind == "follow_up")).scalars().all()
    assert status == {plain: "done", late: "done", buyer: "exited"}
    assert sorted((m, n) for m, n, _ in issued) == sorted(
        [(plain, "welcome"), (plain, "invite_friend"), (late, "welcome"), (late, "invite_friend"), (buyer, "welcome")])
    assert {v for *_, v in issued} == {Decimal("20"), Decimal("10")}
    coupon_code = [text for _, text in dms["u1"]][0].split("新人券 ")[1][:10]
    assert coupon_code.isalnum() and coupon_code.isupper()
    assert sorted(follow_ups) == sorted([plain, late])  # Day-6 advisor one-to-one
    overview = {p["key"]: p for p in playbook_overview(ws)}
    assert overview["s2_warmup"]["statuses"] == {"done": 2, "exited": 1}


def test_the_content_calendar_posts_to_each_tier_group_once_per_scheduled_moment(
        clocked: tuple[Workspace, Clock]) -> None:
    ws, clock = clocked
    apply_playbooks(ws, shipped_files())
    clock.now = local("2026-03-02T19:00:00")  # Monday
    run_until(ws, clock, local("2026-03-07T00:00:00"), step=timedelta(minutes=20))
    world = ws.sandbox
    posts = [(m["chat_id"], m["sent_at"].replace(tzinfo=UTC).astimezone(ZONE))
             for chat in ("chat-core-1", "chat-core-2", "chat-newbie-1")
             for m in world.messages(chat_id=chat, limit=1000) if (m.get("client_key") or "").startswith("pb:")]
    # Three groups (newbie-1, core-1, core-2), Monday, Wednesday and Friday at 20:00 local.
    assert sorted({(chat, f"{at:%a %H:%M}") for chat, at in posts}) == sorted(
        (f"chat-{g}", f"{d} 20:00") for g in ("core-1", "core-2", "newbie-1") for d in ("Mon", "Wed", "Fri"))
    assert len(posts) == 9
    core_monday = next(m["text"] for m in world.messages(chat_id="chat-core-1", limit=100) if "本周" in m["text"])
    assert "核心成员" in core_monday


BRANCHY = """
kind: playbook
key: vip_router
title: {zh: 分流, en: Routing}
trigger: {on: tag_added, tag: engaged}
marketing: false
templates:
  vip: {zh: "VIP 你好 {{ name }}", en: "Hello VIP {{ name }}"}
  normal: {zh: "你好", en: "Hello"}
  alert: {zh: "有人被标记 {{ member_id }}", en: "Tagged {{ member_id }}"}
steps:
  - branch: {if: {tag: vip}, goto: vip_path}
  - send_dm: normal
  - exit: true
  - id: vip_path
    send_dm: vip
  - notify_staff: alert
  - move_tier: interest
---
kind: playbook
key: tagger
title: {zh: 打标签, en: Tagger}
trigger: {on: member_joined}
marketing: false
steps:
  - wait: {minutes: 5}
  - add_tag: engaged
"""


def test_a_tag_step_triggers_another_playbook_whose_branch_picks_the_path(
        clocked: tuple[Workspace, Clock], tmp_path: Path) -> None:
    ws, clock = clocked
    path = tmp_path / "branchy.yaml"
    path.write_text(BRANCHY)
    apply_playbooks(ws, [path])
    clock.now = local("2026-03-02T10:00:00")
    vip = join(ws, "v1", "u1")
    other = join(ws, "v2", "u2")
    with ws.engine.begin() as conn:
        conn.execute(member_tags.insert().values(member_id=vip, tag="vip", added_at=clock.now))
    with Webhook() as hook:
        ws.settings = ws.settings.model_copy(update={"staff_webhook": hook.url})
        run_until(ws, clock, local("2026-03-02T11:00:00"), step=timedelta(minutes=1))
        assert post_staff_alerts(ws) == 1
    assert [(p["kind"], p["playbook"], p["member_id"], p["text"]) for p in hook.delivered] == [
        ("playbook_alert", "vip_router", vip, f"有人被标记 {vip} / Tagged {vip}")]
    dms = playbook_dms(ws)
    assert [text for _, text in dms["u1"]] == ["VIP 你好 Li Lei"]  # members here read Chinese (locale zh)
    assert [text for _, text in dms["u2"]] == ["你好"]
    with ws.engine.connect() as conn:
        alerts = conn.execute(select(inbox.c.member_id, inbox.c.title).where(inbox.c.kind == "alert")).all()
        statuses = dict(conn.execute(select(enrollments.c.subject, enrollments.c.status)
                                     .where(enrollments.c.playbook_key == "vip_router")).all())
        tiers = dict(conn.execute(select(members.c.id, members.c.tier)).all())
    assert [tuple(a) for a in alerts] == [(vip, f"有人被标记 {vip} / Tagged {vip}")]
    assert statuses == {vip: "done", other: "exited"}
    assert (tiers[vip], tiers[other]) == ("interest", "core")
    assert dead_letters(ws) == []


def test_a_bad_playbook_file_is_refused_whole_with_file_line_and_field(
        clocked: tuple[Workspace, Clock], tmp_path: Path) -> None:
    ws, _clock = clocked
    good = tmp_path / "good.yaml"
    good.write_text(BRANCHY)
    bad = tmp_path / "bad.yaml"
    bad.write_text(BRANCHY.replace("goto: vip_path", "goto: nowhere").replace("minutes: 5", "minutes: -5"))
    with pytest.raises(InvalidInput) as error:
        apply_playbooks(ws, [good, bad])
    message = str(error.value)
    assert message.splitlines()[1:] == [
        f"{bad}:12: steps[0].branch.goto: 'nowhere' is no step id in this playbook",
        f"{bad}:26: steps[0].wait.minutes: Input should be greater than or equal to 0"]
    assert playbook_overview(ws) == []  # nothing of either file was applied


TAGGER = """
kind: playbook
key: mark
title: {zh: 标记, en: Mark}
trigger: {on: member_joined}
marketing: false
steps:
  - add_tag: seen
  - wait: {days: 1}
"""


def test_concurrent_workers_never_run_the_same_step_twice(any_workspace: Workspace, tmp_path: Path) -> None:
    import threading

    from qunflow.services.automation import dispatch_triggers, run_due
    from qunflow.store.tables import events

    ws = any_workspace
    path = tmp_path / "mark.yaml"
    path.write_text(TAGGER)
    apply_playbooks(ws, [path])
    members_n = 600
    ingest_batch(ws.engine, [{"event_id": f"j{i}", "type": "joined", "ts": "2026-03-02T10:00:00+08:00",
                              "member_id": f"m{i}"} for i in range(members_n)])
    assert dispatch_triggers(ws) == members_n
    steps: list[int] = []
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            while (outcome := run_due(ws, worker=name, limit=50)).claimed:
                steps.append(outcome.steps)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert sum(steps) == 2 * members_n  # add_tag and wait, once each per member
    with ws.engine.connect() as conn:
        tagged = conn.execute(select(func.count()).select_from(events).where(events.c.type == "tag_added")).scalar()
        waiting = conn.execute(select(func.count()).select_from(enrollments).where(
            enrollments.c.step == 2, enrollments.c.lease_owner.is_(None))).scalar()
    assert (tagged, waiting) == (members_n, members_n)


NUDGE = """
kind: playbook
key: nudge
title: {zh: 唤醒, en: Nudge}
trigger: {on: inactive, days: 3}
marketing: false
templates:
  miss: {zh: "好久不见 {{ name }}", en: "We miss you, {{ name }}"}
steps:
  - send_dm: miss
"""


def test_an_inactive_member_is_nudged_once_per_silence(clocked: tuple[Workspace, Clock], tmp_path: Path) -> None:
    ws, clock = clocked
    path = tmp_path / "nudge.yaml"
    path.write_text(NUDGE)
    apply_playbooks(ws, [path])
    clock.now = local("2026-03-02T10:00:00")
    quiet = join(ws, "v1", "u1")
    chatty = join(ws, "v2", "u2")
    for day in range(2, 9):  # u2 writes every day; u1 says nothing until 03-06
        ingest_batch(ws.engine, [{"event_id": f"m{day}", "type": "message", "member_id": chatty,
                                  "ts": f"2026-03-{day:02d}T12:00:00+08:00"}])
    ingest_batch(ws.engine, [{"event_id": "q1", "type": "message", "member_id": quiet,
                              "ts": "2026-03-06T12:00:00+08:00"}])
    run_until(ws, clock, local("2026-03-06T11:00:00"), step=timedelta(hours=1))
    assert [t for t, _ in playbook_dms(ws)["u1"]] == ["03-05 11:00"]  # 3 days after the join, at the hourly scan
    run_until(ws, clock, local("2026-03-12T00:00:00"), step=timedelta(hours=1))
    assert [t for t, _ in playbook_dms(ws)["u1"]] == ["03-05 11:00", "03-09 13:00"]  # silent again from 03-06
    assert [t for t, _ in playbook_dms(ws)["u2"]] == ["03-11 13:00"]  # its last message was 03-08 12:00


def test_retrying_dead_letters_is_all_or_nothing(clocked: tuple[Workspace, Clock], tmp_path: Path) -> None:
    from qunflow.errors import NotFound
    from qunflow.services.automation import retry_dead
    from tests.integration.test_inbox_views import TOO_LONG

    ws, clock = clocked
    path = tmp_path / "long.yaml"
    path.write_text(TOO_LONG)
    apply_playbooks(ws, [path])
    clock.now = local("2026-03-02T10:00:00")
    join(ws, "v1", "u1")
    work_once(ws, worker="test")
    [dead] = dead_letters(ws)
    with pytest.raises(NotFound, match="not dead letters .*: 424242"):
        retry_dead(ws, [dead["id"], 424242])
    assert [d["id"] for d in dead_letters(ws)] == [dead["id"]]  # the good id was not put back either
    assert retry_dead(ws, [dead["id"]]) == 1 and dead_letters(ws) == []


RETAG = """
kind: playbook
key: retag
title: {zh: 再标记, en: Tag again}
trigger: {on: member_joined}
marketing: false
steps:
  - add_tag: engaged
---
kind: playbook
key: on_engaged
title: {zh: 标记后, en: After the tag}
trigger: {on: tag_added, tag: engaged}
marketing: false
steps:
  - add_tag: counted
"""


def test_a_tag_the_member_already_has_starts_no_playbook_again(
        clocked: tuple[Workspace, Clock], tmp_path: Path) -> None:
    from qunflow.store.tables import events

    ws, clock = clocked
    path = tmp_path / "retag.yaml"
    path.write_text(RETAG)
    apply_playbooks(ws, [path])
    clock.now = local("2026-03-02T10:00:00")
    tagged = join(ws, "v1", "u1")
    fresh = join(ws, "v2", "u2")
    with ws.engine.begin() as conn:  # tagged by hand (or by a keyword rule) before the playbook runs
        conn.execute(member_tags.insert().values(member_id=tagged, tag="engaged", added_at=clock.now))
    run_until(ws, clock, local("2026-03-02T10:10:00"), step=timedelta(minutes=1))
    with ws.engine.connect() as conn:
        added = conn.execute(select(events.c.member_id, events.c.properties).where(
            events.c.type == "tag_added")).all()
        runs = conn.execute(select(enrollments.c.subject).where(enrollments.c.playbook_key == "on_engaged")).all()
    assert sorted((m, p["tag"]) for m, p in added) == [(fresh, "counted"), (fresh, "engaged")]
    assert [r.subject for r in runs] == [fresh]


TAG_TWICE = """
kind: playbook
key: tag_then_branch
title: {zh: 标记后分支, en: Tag then branch}
trigger: {on: member_joined}
marketing: false
steps:
  - add_tag: warm
  - branch: {if: {tag: warm}, goto: tagged}
  - add_tag: missed
  - exit: true
  - id: tagged
    add_tag: seen_own_tag
---
kind: playbook
key: tag_too
title: {zh: 也标记, en: Tag too}
trigger: {on: member_joined}
marketing: false
steps:
  - add_tag: warm
  - add_tag: other
"""


def test_tags_added_in_one_batch_are_seen_by_its_branches_and_recorded_once(
        any_workspace: Workspace, tmp_path: Path) -> None:
    """run_due writes a batch's tags together: a branch after add_tag still sees the tag, and two playbooks
    tagging a member alike in one batch record one tag_added, in the order the steps ran."""
    from qunflow.services.automation import dispatch_triggers, run_due
    from qunflow.store.tables import events

    ws = any_workspace
    path = tmp_path / "twice.yaml"
    path.write_text(TAG_TWICE)
    apply_playbooks(ws, [path])
    ingest_batch(ws.engine, [{"event_id": f"j{i}", "type": "joined", "ts": "2026-03-02T10:00:00+08:00",
                              "member_id": f"m{i}"} for i in range(3)])
    assert dispatch_triggers(ws) == 6
    outcome = run_due(ws, worker="w", limit=500)
    assert outcome.claimed == 6
    with ws.engine.connect() as conn:
        tags = set(conn.execute(select(member_tags.c.member_id, member_tags.c.tag)).all())
        added = [(m, p["tag"]) for m, p in conn.execute(select(events.c.member_id, events.c.properties)
                                                         .where(events.c.type == "tag_added")
                                                         .order_by(events.c.seq)).all()]
        left = conn.execute(select(func.count()).select_from(enrollments).where(
            enrollments.c.status == "active")).scalar()
    assert tags == {(f"m{i}", tag) for i in range(3) for tag in ("warm", "seen_own_tag", "other")}
    for i in range(3):
        mine = [tag for member, tag in added if member == f"m{i}"]
        assert sorted(mine) == ["other", "seen_own_tag", "warm"]  # warm once, though two playbooks added it
        assert mine.index("warm") < mine.index("seen_own_tag")
    assert left == 0
