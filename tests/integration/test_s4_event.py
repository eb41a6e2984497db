"""S4 small event end to end on the sandbox platform (issue 12): the date set when the event is created,
the announcement and reminders timed from it, sign-ups by page and group keyword, attendance by link and
keyword, a day-of coupon through the ledger, the follow-up for unconverted attendees, buyers to the
repurchase pool, and the numbers per event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from qunflow.errors import Conflict, InvalidInput
from qunflow.services.automation import work_once
from qunflow.services.coupons import ledger_problems, redeem_for
from qunflow.services.ingest import ingest_batch
from qunflow.services.join import submit_gate
from qunflow.services.meetups import add_meetup, check_in, meetup_stats, sign_up
from qunflow.services.playbooks import apply_playbooks, shipped_files
from qunflow.store.tables import coupons, events, inbox, member_tags
from qunflow.workspace import Workspace
from tests.integration.test_join_flow import FORM, invite_token, setup_community

S4 = next(p for p in shipped_files() if p.name == "s4_small_event.yaml")
START = datetime(2026, 12, 8, 2, 0)  # naive UTC: 10:00 in Shanghai
EVENT = datetime(2026, 12, 11, 12, 0)  # 20:00 in Shanghai, three and a half days later


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def member(ws: Workspace, user: str) -> tuple[str, str]:
    ticket = submit_gate(ws, "xhs-note-1", f"v-{user}", FORM)
    ws.sandbox.join(user, f"User {user}", invite_token(ticket.invite_url))
    return ticket.member_id, f"chat-{ticket.group}"


def dms(ws: Workspace, user: str) -> list[str]:
    return [str(m["text"]) for m in reversed(ws.sandbox.messages(dm_user_id=user))]


def at(ws: Workspace, clock: Clock, moment: datetime) -> None:
    clock.now = moment
    work_once(ws)


def test_small_event_from_creation_to_follow_up(any_workspace: Workspace) -> None:
    ws = any_workspace
    clock = Clock(START)
    ws.clock = clock
    setup_community(ws)
    apply_playbooks(ws, [S4])
    add_meetup(ws, "dec_live", title_zh="线上分享会", title_en="Live session", starts_at=EVENT,
               duration_minutes=90, checkin_keyword="到场", coupon_value=Decimal(30), coupon_hours=4)
    m1, chat1 = member(ws, "u1")
    m2, u2_chat = member(ws, "u2")
    m3, chat3 = member(ws, "u3")
    at(ws, clock, START + timedelta(minutes=5))
    assert not any("活动预告" in m["text"] for m in ws.sandbox.messages(chat_id=chat1))  # not 48 h ahead yet

    assert sign_up(ws, "dec_live", m1)  # the sign-up page
    assert not sign_up(ws, "dec_live", m1)  # once
    ws.sandbox.say("u2", "报名", chat_id=u2_chat)  # the sign-up word in the group
    at(ws, clock, START + timedelta(minutes=10))
    assert any("报名成功" in text for text in dms(ws, "u1")) and any("报名成功" in text for text in dms(ws, "u2"))
    assert not any("报名成功" in text for text in dms(ws, "u3"))

    at(ws, clock, EVENT - timedelta(hours=47))  # the announcement, 48 h ahead, in every group of the tiers
    ann = [m["text"] for m in ws.sandbox.messages(chat_id=chat1) if "活动预告" in m["text"]]
    assert len(ann) == 1 and "12月11日 20:00" in ann[0] and "/e/dec_live" in ann[0]
    at(ws, clock, EVENT - timedelta(hours=23))
    assert any("明天" in text for text in dms(ws, "u1"))
    at(ws, clock, EVENT - timedelta(minutes=25))
    day_of = [text for text in dms(ws, "u1") if "30 分钟后开始" in text]
    assert len(day_of) == 1 and "/event/dec_live/checkin" in day_of[0]

    with pytest.raises(Conflict):  # check-in opens 30 minutes before the start
        clock.now = EVENT - timedelta(hours=2)
        check_in(ws, "dec_live", m1)
    clock.now = EVENT + timedelta(minutes=5)
    coupon = check_in(ws, "dec_live", m1)  # the check-in link
    assert check_in(ws, "dec_live", m1).code == coupon.code  # one day-of coupon per member
    assert coupon.expires_at == EVENT + timedelta(minutes=90 + 4 * 60)  # time-limited
    ws.sandbox.say("u2", "我到场了", chat_id=u2_chat)  # the keyword in the group
    ws.sandbox.say("u3", "到场", chat_id=chat3)  # a walk-in: signed up by attending
    ingest_batch(ws.engine, [{"event_id": "order-1", "type": "order", "member_id": m1, "amount": "399",
                              "ts": (EVENT + timedelta(minutes=80)).replace(tzinfo=UTC).isoformat()}])
    redeem_for(ws, coupon.code, order_ref="order-1", member_id=m1, actor="shop")
    at(ws, clock, EVENT + timedelta(minutes=10))
    assert not any("报名成功" in text for text in dms(ws, "u3"))  # a walk-in gets no sign-up confirmation
    starting = [m["text"] for m in ws.sandbox.messages(chat_id=chat1) if "马上开始" in m["text"]]
    assert len(starting) == 1 and "发「到场」签到" in starting[0]  # the group hears the check-in keyword

    at(ws, clock, EVENT + timedelta(hours=14))  # the morning after
    with ws.engine.connect() as conn:
        tags = conn.execute(select(member_tags.c.member_id).where(member_tags.c.tag == "repurchase_pool")).scalars()
        assert set(tags) == {m1}  # the buyer joins the repurchase pool
        follow_ups = set(conn.execute(select(inbox.c.member_id).where(inbox.c.kind == "follow_up")).scalars())
        day_of_coupons = conn.execute(select(coupons.c.member_id).where(coupons.c.name == "dec_live_day_of")).all()
        attendance = conn.execute(select(events.c.member_id).where(
            events.c.type == "checkin", events.c.properties["event"].as_string() == "dec_live")).scalars().all()
        assert ledger_problems(conn) == []
    assert follow_ups == {m2, m3}  # unconverted attendees: an advisor task each
    assert any("昨晚的分享" in text for text in dms(ws, "u2"))  # the follow-up DM
    assert not any("昨晚的分享" in text for text in dms(ws, "u1"))
    assert len(day_of_coupons) == 3 and sorted(attendance) == sorted([m1, m2, m3])

    stats = meetup_stats(ws, "dec_live")
    assert {k: stats[k] for k in ("signups", "attended", "orders", "buyers", "revenue", "unconverted_attendees",
                                  "coupons_issued", "coupons_redeemed")} == {
        "signups": 3, "attended": 3, "orders": 1, "buyers": 1, "revenue": 399.0, "unconverted_attendees": 2,
        "coupons_issued": 3, "coupons_redeemed": 1}
    with pytest.raises(Conflict):
        sign_up(ws, "dec_live", m2)  # over


def test_an_event_needs_a_future_date_and_a_free_key(workspace: Workspace) -> None:
    workspace.clock = Clock(START)
    with pytest.raises(InvalidInput):
        add_meetup(workspace, "old", title_zh="x", title_en=None, starts_at=START - timedelta(days=1))
    add_meetup(workspace, "dec_live", title_zh="x", title_en=None, starts_at=EVENT)
    with pytest.raises(Conflict):
        add_meetup(workspace, "dec_live", title_zh="y", title_en=None, starts_at=EVENT)


def test_a_full_event_refuses_more_sign_ups(workspace: Workspace) -> None:
    workspace.clock = Clock(START)
    setup_community(workspace)
    add_meetup(workspace, "tiny", title_zh="小", title_en=None, starts_at=EVENT, capacity=1)
    first, _ = member(workspace, "a1")
    second, _ = member(workspace, "a2")
    assert sign_up(workspace, "tiny", first)
    with pytest.raises(Conflict, match="full"):
        sign_up(workspace, "tiny", second)
    assert meetup_stats(workspace, "tiny")["signups"] == 1
