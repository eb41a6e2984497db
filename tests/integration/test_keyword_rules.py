"""Keyword rules end to end: members join through the real flow, write on the sandbox platform, rules act."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from qunflow.cli.main import app
from qunflow.engine.notifier import post_staff_alerts
from qunflow.errors import InvalidInput
from qunflow.services.automation import work_once
from qunflow.services.inbound import receive
from qunflow.services.join import submit_gate
from qunflow.services.keyword_rules import rule_set_overview
from qunflow.services.playbooks import apply_playbooks, playbook_overview, shipped_files
from qunflow.store.tables import deliveries, events, inbox, member_tags, staff_alerts
from qunflow.workspace import Workspace
from tests.integration.test_automation import Clock, local
from tests.integration.test_join_flow import FORM, invite_token, setup_community
from tests.webhook import Webhook

SHIPPED = next(p for p in shipped_files() if p.name == "keyword_rules.yaml")
GROUP_CHAT = "chat-newbie-1"  # where members joining through xhs-note-1 (tier newbie) land

SIGN_UP_FLOW = """
kind: keyword_rules
key: events
rules:
  - id: sign_up
    keywords: [报名, sign up]
    tag: event_interest
---
kind: playbook
key: event_interest_follow_up
title: {zh: 活动意向跟进, en: Event interest follow-up}
trigger: {on: tag_added, tag: event_interest}
marketing: false
templates:
  hello: {zh: "{{ name }},活动详情稍后发你", en: "{{ name }}, event details are on their way"}
steps:
  - send_dm: hello
"""

ONE_RULE = """
kind: keyword_rules
key: probe
enabled: {enabled}
rules:
  - id: alpha
    keywords: [alpha]
    reply: "{reply}"
"""

BAD_RULES = """kind: keyword_rules
key: broken
rules:
  - id: fine
    keywords: [价格]
    reply: "see {{ rules_link }}"
  - id: lookahead
    regexes:
      - '退款'
      - 'refund(?!able)'
    alert: true
  - id: typo
    keywords: [hello]
    reply: {zh: "你好 {{ nmae }}", en: "hi"}
  - id: leaky
    scope: group
    keywords: [coupon]
    reply: "{{ coupon_link }}"
"""


def _community(ws: Workspace) -> tuple[Workspace, Clock]:
    clock = Clock(local("2026-03-02T10:00:00"))
    ws.clock = clock
    setup_community(ws)
    return ws, clock


@pytest.fixture
def community(workspace: Workspace) -> tuple[Workspace, Clock]:
    return _community(workspace)


@pytest.fixture
def any_community(any_workspace: Workspace) -> tuple[Workspace, Clock]:
    """The same on SQLite and PostgreSQL."""
    return _community(any_workspace)


def join(ws: Workspace, visitor: str, user: str, locale: str = "zh") -> str:
    ticket = submit_gate(ws, "xhs-note-1", visitor, FORM, locale=locale)
    assert ws.sandbox.join(user, f"User {user}", invite_token(ticket.invite_url)) == "joined"
    return ticket.member_id


def bot_texts(ws: Workspace, *, chat_id: str | None = None, dm_user_id: str | None = None) -> list[str]:
    """What the bot sent because of keyword rules (delivery keys start with kw:), oldest first."""
    found = ws.sandbox.messages(chat_id=chat_id, dm_user_id=dm_user_id, limit=1000)
    return [m["text"] for m in sorted(found, key=lambda m: m["id"]) if (m.get("client_key") or "").startswith("kw:")]


def rows(ws: Workspace, query: object) -> list[tuple[object, ...]]:
    with ws.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query).all()]  # type: ignore[call-overload]


def matched(ws: Workspace, member_id: str) -> list[str]:
    found = rows(ws, select(events.c.properties).where(events.c.type == "keyword_matched",
                                                       events.c.member_id == member_id).order_by(events.c.seq))
    props = [json.loads(raw) if isinstance(raw, str) else raw for (raw,) in found]
    return [f"{p['rule_set']}/{p['rule']}" for p in props]


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_chinese_and_english_messages_in_group_and_private_get_the_right_reply(
        community: tuple[Workspace, Clock]) -> None:
    ws, _clock = community
    apply_playbooks(ws, [SHIPPED])
    zh = join(ws, "v1", "u1")
    en = join(ws, "v2", "u2", locale="en")
    world = ws.sandbox
    world.say("u1", "请问这个课程多少钱?", chat_id=GROUP_CHAT)
    world.say("u2", "How much is the course?")  # private, in English
    world.say("u2", "nice weather today", chat_id=GROUP_CHAT)  # matches nothing
    world.say("u1", "报名!", chat_id=GROUP_CHAT)

    group = bot_texts(ws, chat_id=GROUP_CHAT)
    assert group == ["价格与群规说明:http://127.0.0.1:8000/rules。新人优惠券请私信我「优惠券」领取。"]
    private = bot_texts(ws, dm_user_id="u2")
    assert len(private) == 1 and private[0].startswith("Claim your newcomer coupon here: http://127.0.0.1:8000/m/")
    assert f"/m/{en}." in private[0] and private[0].endswith("Prices and group rules: http://127.0.0.1:8000/rules")
    assert matched(ws, zh) == ["community_basics/price_question_group", "community_basics/event_sign_up"]
    assert matched(ws, en) == ["community_basics/price_question_private"]
    assert rows(ws, select(member_tags.c.member_id, member_tags.c.tag)) == [(zh, "event_interest")]
    # Privacy: the events say which rule matched, never what was written.
    stored = " ".join(str(p) for (p,) in rows(ws, select(events.c.properties)))
    assert "多少钱" not in stored and "How much" not in stored and "报名" not in stored


def test_the_same_update_delivered_twice_acts_once(any_community: tuple[Workspace, Clock]) -> None:
    ws, _clock = any_community
    apply_playbooks(ws, [SHIPPED])
    member = join(ws, "v1", "u1")
    world = ws.sandbox
    captured: list[tuple[dict[str, str], bytes]] = []
    world.subscribe(lambda headers, body: captured.append((headers, body)))
    with Webhook() as hook:
        ws.settings = ws.settings.model_copy(update={"staff_webhook": hook.url})
        world.say("u1", "我要投诉,还要退款", chat_id=GROUP_CHAT)
        world.say("u1", "多少钱", chat_id=GROUP_CHAT)
        for headers, body in captured:  # the platform retries both updates
            receive(ws, "sandbox", "POST", {}, headers, body)
        wait_for(lambda: len(hook.received) >= 1)
        time.sleep(0.3)  # a second post, if there were one, would have come by now
        assert len(hook.received) == 1
    assert bot_texts(ws, chat_id=GROUP_CHAT) == [
        "收到。顾问会尽快私信你处理。",
        "价格与群规说明:http://127.0.0.1:8000/rules。新人优惠券请私信我「优惠券」领取。"]
    assert matched(ws, member) == ["community_basics/refund_or_complaint", "community_basics/price_question_group"]
    assert rows(ws, select(func.count()).select_from(inbox).where(inbox.c.kind == "alert")) == [(1,)]
    assert rows(ws, select(deliveries.c.kind, deliveries.c.status).where(deliveries.c.kind == "keyword_reply")) \
        == [("keyword_reply", "sent"), ("keyword_reply", "sent")]


def test_a_tag_from_a_message_starts_a_tag_added_playbook_once(any_community: tuple[Workspace, Clock],
                                                                tmp_path: Path) -> None:
    ws, clock = any_community
    mixed = tmp_path / "events.yaml"  # a rule set and a playbook in one file
    mixed.write_text(SIGN_UP_FLOW)
    changes = apply_playbooks(ws, [mixed])
    assert sorted((c.kind, c.key, c.status) for c in changes) == [
        ("keyword_rules", "events", "new"), ("playbook", "event_interest_follow_up", "new")]
    member = join(ws, "v1", "u1")
    world = ws.sandbox
    world.say("u1", "我想报名周六的活动", chat_id=GROUP_CHAT)
    clock.now += timedelta(minutes=1)
    work_once(ws, worker="test")
    world.say("u1", "sign up me too")  # already tagged: no second enrollment
    clock.now += timedelta(minutes=1)
    work_once(ws, worker="test")
    dms = [m["text"] for m in world.messages(dm_user_id="u1") if (m.get("client_key") or "").startswith("pb:")]
    assert dms == ["Li Lei,活动详情稍后发你"]
    assert rows(ws, select(member_tags.c.tag).where(member_tags.c.member_id == member)) == [("event_interest",)]
    tag_events = rows(ws, select(events.c.properties).where(events.c.type == "tag_added"))
    assert len(tag_events) == 1
    assert matched(ws, member) == ["events/sign_up", "events/sign_up"]


def test_an_alert_reaches_the_inbox_and_the_staff_webhook_after_a_failed_try(
        community: tuple[Workspace, Clock]) -> None:
    ws, clock = community
    apply_playbooks(ws, [SHIPPED])
    member = join(ws, "v1", "u1")
    with Webhook(answers=[503]) as hook:
        ws.settings = ws.settings.model_copy(update={"staff_webhook": hook.url})
        ws.sandbox.say("u1", "服务太差,我要投诉")  # private
        wait_for(lambda: rows(ws, select(staff_alerts.c.attempts)) == [(1,)])
        status, error = rows(ws, select(staff_alerts.c.status, staff_alerts.c.last_error))[0]
        assert status == "pending" and f"127.0.0.1:{hook.server.server_port} answered 503" in str(error)
        assert post_staff_alerts(ws) == 0  # not due yet: backoff
        clock.now += timedelta(seconds=31)
        assert post_staff_alerts(ws) == 1
        assert post_staff_alerts(ws) == 0
    assert len(hook.delivered) == 1
    payload = hook.delivered[0]
    assert payload["rule"] == "community_basics/refund_or_complaint" and payload["member_id"] == member
    assert payload["group"] is None
    link = f"http://127.0.0.1:8000/console/members/{member}"
    assert payload["text"] == (f"会员 {member} 提到退款或投诉(私聊,规则 community_basics/refund_or_complaint),"
                               f"请 2 小时内私信跟进:{link}\n"
                               f"Member {member} mentioned a refund or complaint (private message, rule "
                               f"community_basics/refund_or_complaint); please follow up privately within 2 hours: "
                               f"{link}")
    assert "服务太差" not in json.dumps(payload, ensure_ascii=False)
    assert rows(ws, select(inbox.c.kind, inbox.c.member_id)) == [("alert", member)]
    assert rows(ws, select(staff_alerts.c.status, staff_alerts.c.attempts)) == [("sent", 2)]


def test_a_webhook_that_keeps_failing_is_given_up_and_recorded(community: tuple[Workspace, Clock]) -> None:
    ws, clock = community
    apply_playbooks(ws, [SHIPPED])
    join(ws, "v1", "u1")
    with Webhook(answers=[500] * 10) as hook:
        ws.settings = ws.settings.model_copy(update={"staff_webhook": hook.url})
        ws.sandbox.say("u1", "I want a refund", chat_id=GROUP_CHAT)
        wait_for(lambda: rows(ws, select(staff_alerts.c.attempts)) == [(1,)])
        for _ in range(6):
            clock.now += timedelta(minutes=10)
            post_staff_alerts(ws)
    assert len(hook.received) == 5
    status, attempts, error = rows(ws, select(staff_alerts.c.status, staff_alerts.c.attempts,
                                              staff_alerts.c.last_error))[0]
    assert (status, attempts) == ("failed", 5) and "answered 500" in str(error)


def test_a_slow_staff_webhook_does_not_hold_up_the_message(community: tuple[Workspace, Clock]) -> None:
    ws, _clock = community
    apply_playbooks(ws, [SHIPPED])
    join(ws, "v1", "u1")
    with Webhook(delay=2.0) as hook:
        ws.settings = ws.settings.model_copy(update={"staff_webhook": hook.url})
        started = time.perf_counter()
        ws.sandbox.say("u1", "投诉", chat_id=GROUP_CHAT)
        assert time.perf_counter() - started < 1.5  # the handler returned while the webhook still sleeps
        assert bot_texts(ws, chat_id=GROUP_CHAT) == ["收到。顾问会尽快私信你处理。"]
        wait_for(lambda: len(hook.received) == 1)
        wait_for(lambda: rows(ws, select(staff_alerts.c.status)) == [("sent",)])


def test_without_a_staff_webhook_alerts_go_to_the_inbox_only(community: tuple[Workspace, Clock]) -> None:
    ws, _clock = community
    apply_playbooks(ws, [SHIPPED])
    member = join(ws, "v1", "u1")
    ws.sandbox.say("u1", "退款怎么办", chat_id=GROUP_CHAT)
    titles = rows(ws, select(inbox.c.kind, inbox.c.member_id, inbox.c.title))
    link = f"http://127.0.0.1:8000/console/members/{member}"
    assert titles == [("alert", member, f"会员 {member} 提到退款或投诉(newbie-1,规则 "
                                        f"community_basics/refund_or_complaint),请 2 小时内私信跟进:{link} / "
                                        f"Member {member} mentioned a refund or complaint (newbie-1, rule "
                                        "community_basics/refund_or_complaint); please follow up privately within "
                                        f"2 hours: {link}")]
    assert rows(ws, select(staff_alerts.c.id)) == []


def test_a_new_version_is_used_by_the_next_message_and_a_disabled_set_matches_nothing(
        community: tuple[Workspace, Clock], tmp_path: Path) -> None:
    ws, _clock = community
    path = tmp_path / "probe.yaml"
    join(ws, "v1", "u1")
    world = ws.sandbox
    path.write_text(ONE_RULE.format(enabled="true", reply="first"))
    apply_playbooks(ws, [path])
    world.say("u1", "alpha", chat_id=GROUP_CHAT)
    path.write_text(ONE_RULE.format(enabled="true", reply="second"))
    [change] = apply_playbooks(ws, [path])
    assert (change.kind, change.status, change.version) == ("keyword_rules", "changed", 2)
    assert '-    reply: "first"' in change.diff and '+    reply: "second"' in change.diff
    world.say("u1", "ALPHA again", chat_id=GROUP_CHAT)
    path.write_text(ONE_RULE.format(enabled="false", reply="second"))
    apply_playbooks(ws, [path])
    world.say("u1", "alpha once more", chat_id=GROUP_CHAT)
    assert bot_texts(ws, chat_id=GROUP_CHAT) == ["first", "second"]
    assert rule_set_overview(ws) == [{"key": "probe", "version": 3, "enabled": False, "rules": 1}]


def test_a_bad_rule_file_is_refused_with_lines_and_nothing_of_it_is_applied(
        community: tuple[Workspace, Clock], tmp_path: Path) -> None:
    ws, _clock = community
    bad = tmp_path / "bad.yaml"
    bad.write_text(SIGN_UP_FLOW + "---\n" + BAD_RULES)
    first = SIGN_UP_FLOW.count("\n") + 2  # the line where the bad document starts (after "---")
    with pytest.raises(InvalidInput) as error:
        apply_playbooks(ws, [SHIPPED, bad])
    assert str(error.value).splitlines()[1:] == [
        f"{bad}:{first + 9}: rules[1].regexes[1]: 'refund(?!able)' uses lookaround ((?=, (?!, (?<=, (?<!), "
        "which RE2 does not support (it keeps matching linear-time); rewrite it without lookaround",
        f"{bad}:{first + 13}: rules[2].reply.zh: template (zh text, line 1): unknown variable 'nmae'; "
        "did you mean 'name'?; available: coupon_link, group, link, member_link, name, rules_link, tier",
        f"{bad}:{first + 17}: rules[3].reply: coupon_link is a personal link that anyone in a group could use; "
        "reply with it only in private messages (scope: private)"]
    assert rule_set_overview(ws) == [] and playbook_overview(ws) == []
    result = CliRunner().invoke(app, ["apply", str(bad), "--workspace", str(ws.home)])
    assert result.exit_code == 2 and f"{bad}:{first + 9}: rules[1].regexes[1]" in result.output
    assert rule_set_overview(ws) == []


def test_replies_share_the_send_limits_and_a_reply_that_would_wait_is_skipped_and_recorded(
        community: tuple[Workspace, Clock]) -> None:
    ws, clock = community
    ws.settings = ws.settings.model_copy(update={"rate_limits": {"sandbox": {"group": (2, 60)}}})
    apply_playbooks(ws, [SHIPPED])
    join(ws, "v1", "u1")
    world = ws.sandbox
    for text in ("多少钱", "价格呢", "优惠券?"):
        world.say("u1", text, chat_id=GROUP_CHAT)
        clock.now += timedelta(seconds=1)
    clock.now += timedelta(seconds=60)
    world.say("u1", "price?", chat_id=GROUP_CHAT)
    assert len(bot_texts(ws, chat_id=GROUP_CHAT)) == 3  # 2 within the minute, then one more after it
    recorded = rows(ws, select(deliveries.c.status, deliveries.c.error, deliveries.c.idempotency_key)
                    .where(deliveries.c.kind == "keyword_reply").order_by(deliveries.c.id))
    assert [status for status, _, _ in recorded] == ["sent", "sent", "skipped", "sent"]
    assert "send limit reached" in str(recorded[2][1])
    matched = rows(ws, select(events.c.event_id, events.c.properties).where(events.c.type == "keyword_matched")
                   .order_by(events.c.seq))
    # The skipped reply is the one to the third message's match of the price rule.
    assert "price_question_group" in str(matched[2][1]) and recorded[2][2] == "kw:" + matched[2][0].removeprefix("kw-")
