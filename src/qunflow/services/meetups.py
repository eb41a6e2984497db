"""S4 small events ("meetups", so they are never confused with the event log): the event with its date,
sign-ups, attendance, the day-of coupon, and the numbers per event.

- The date is set when the event is created (CLI `qunflow meetup add`, console), never in a playbook: the
  playbooks run relative to it (`wait: {before_event: ...}` / `{after_event: ...}`).
- Creating an event enrolls the groups of `event_scheduled` playbooks (the announcement); a sign-up records
  `signup` (properties.event), which starts `event_signup` playbooks (reminders, the day-of message, the
  follow-up: unconverted attendees get it, buyers join the repurchase pool).
- Attendance: the member's check-in link, or the event's keyword said in a group while the event runs.
  Checking in records `checkin` (properties.event) and issues the day-of coupon through the ledger
  (one per member and event, cause `meetup:<key>:<member>`), valid until `coupon_hours` after the end.
- Orders of an event: conversion events of its attendees from its start to ORDER_WINDOW after its end.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from qunflow.domain.entry import check_key
from qunflow.domain.events import Event
from qunflow.errors import Conflict, InvalidInput, NotFound
from qunflow.services import coupons as ledger
from qunflow.services.playbooks import active_playbooks
from qunflow.store.eventlog import append_events
from qunflow.store.plain import insert_if_new, insert_ignore
from qunflow.store.tables import coupons, enrollments, events, groups, meetup_signups, meetups, members
from qunflow.workspace import Workspace

CHECKIN_OPENS = timedelta(minutes=30)  # attendance counts from this long before the start ...
CHECKIN_CLOSES = timedelta(hours=1)  # ... to this long after the end
ORDER_WINDOW = timedelta(days=7)  # an attendee's orders this long after the end count for the event
SIGNUP_WORDS = ("报名", "sign up", "signup")
KEYWORD = re.compile(r"^[^\s]{1,32}$")


@dataclass(frozen=True)
class Meetup:
    key: str
    title: dict[str, str]
    starts_at: datetime  # naive UTC
    duration_minutes: int
    checkin_keyword: str | None
    coupon_name: str
    coupon_value: Decimal
    coupon_hours: int
    capacity: int | None
    archived: bool

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    def checkin_open(self, now: datetime) -> bool:
        return self.starts_at - CHECKIN_OPENS <= now <= self.ends_at + CHECKIN_CLOSES

    def as_json(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "starts_at": self.starts_at.isoformat() + "Z",
                "ends_at": self.ends_at.isoformat() + "Z", "duration_minutes": self.duration_minutes,
                "checkin_keyword": self.checkin_keyword, "coupon_name": self.coupon_name,
                "coupon_value": float(self.coupon_value), "coupon_hours": self.coupon_hours,
                "capacity": self.capacity, "archived": self.archived}


def _meetup(row: Any) -> Meetup:
    return Meetup(row.key, dict(row.title), row.starts_at, row.duration_minutes, row.checkin_keyword,
                  row.coupon_name, Decimal(row.coupon_value), row.coupon_hours, row.capacity, bool(row.archived))


def _row(conn: Connection, key: str) -> Any:
    row = conn.execute(select(meetups).where(meetups.c.key == key)).first()
    if row is None:
        raise NotFound(f"no event {key!r} (see `qunflow meetup list`)",
                       zh=f"找不到活动 {key!r}(可用 `qunflow meetup list` 查看)")
    return row


def get(conn: Connection, key: str) -> Meetup:
    return _meetup(_row(conn, key))


def find(ws: Workspace, key: str) -> Meetup:
    with ws.engine.connect() as conn:
        return get(conn, key)


def add_meetup(ws: Workspace, key: str, *, title_zh: str, title_en: str | None, starts_at: datetime,
               duration_minutes: int = 60, checkin_keyword: str | None = None, coupon_value: Decimal = Decimal(20),
               coupon_hours: int = 24, coupon_name: str | None = None, capacity: int | None = None) -> Meetup:
    """Create an event starting at `starts_at` (naive UTC, in the future) and enroll the groups of the
    `event_scheduled` playbooks (the announcement). Conflict when the key is taken."""
    check_key("event", key)
    now = ws.clock()
    if starts_at <= now:
        raise InvalidInput("the event's date must be in the future", zh="活动时间必须晚于现在")
    if not 1 <= len(title_zh.strip()) <= 200 or (title_en is not None and not 1 <= len(title_en.strip()) <= 200):
        raise InvalidInput("the title must be 1 to 200 characters", zh="标题须为 1 到 200 个字符")
    if not 5 <= duration_minutes <= 24 * 60:
        raise InvalidInput(f"the duration must be 5 to 1440 minutes, got {duration_minutes}",
                           zh=f"时长须为 5 到 1440 分钟,当前为 {duration_minutes}")
    if checkin_keyword is not None and not KEYWORD.match(checkin_keyword):
        raise InvalidInput("the check-in keyword is one word of at most 32 characters, without spaces",
                           zh="签到口令须为一个词,最多 32 个字符,不含空格")
    if not (Decimal(0) < coupon_value <= Decimal(100000)):
        raise InvalidInput("the day-of coupon's value must be above 0 and at most 100000",
                           zh="当天优惠券面额须大于 0 且不超过 100000")
    if not 1 <= coupon_hours <= 24 * 30:
        raise InvalidInput(f"the day-of coupon is valid 1 to 720 hours after the end, got {coupon_hours}",
                           zh=f"当天优惠券在活动结束后的有效时长须为 1 到 720 小时,当前为 {coupon_hours}")
    if capacity is not None and not 1 <= capacity <= 100000:
        raise InvalidInput(f"the capacity must be 1 to 100000, got {capacity}",
                           zh=f"名额须为 1 到 100000,当前为 {capacity}")
    name = coupon_name or f"{key}_day_of"
    if not 1 <= len(name) <= 64:
        raise InvalidInput("the coupon name must be 1 to 64 characters", zh="优惠券名称须为 1 到 64 个字符")
    title = {"zh": title_zh.strip(), "en": (title_en or title_zh).strip()}
    try:
        with ws.engine.begin() as conn:
            conn.execute(insert(meetups).values(
                key=key, title=title, starts_at=starts_at, duration_minutes=duration_minutes,
                checkin_keyword=checkin_keyword, coupon_name=name, coupon_value=coupon_value,
                coupon_hours=coupon_hours, capacity=capacity, archived=False, created_at=now))
            _enroll_groups(conn, key, now)
            return get(conn, key)
    except IntegrityError as exc:
        raise Conflict(f"event {key!r} exists already", zh=f"活动 {key!r} 已存在") from exc


def _enroll_groups(conn: Connection, key: str, now: datetime) -> int:
    """Enroll the active groups of every `event_scheduled` playbook (its tiers) for the new event."""
    from qunflow.services.automation import _enrollment

    made: list[dict[str, Any]] = []
    for pb_key, version, playbook in active_playbooks(conn):
        trigger = playbook.trigger
        if trigger.on != "event_scheduled" or trigger.event not in (None, key):
            continue
        query = select(groups.c.key).where(groups.c.active)
        if trigger.tiers:
            query = query.where(groups.c.tier.in_(trigger.tiers))
        for group_key in conn.execute(query).scalars():
            made.append(_enrollment(pb_key, version, f"group:{group_key}", f"event:{key}", now, {"event": key}))
    insert_ignore(conn, enrollments, made)
    return len(made)


def missing_playbooks(ws: Workspace) -> list[str]:
    """The S4 triggers no applied playbook uses (an event without them is never announced or followed up)."""
    with ws.engine.connect() as conn:
        used = {playbook.trigger.on for _key, _version, playbook in active_playbooks(conn)}
    return [on for on in ("event_scheduled", "event_signup") if on not in used]


def archive_meetup(ws: Workspace, key: str) -> Meetup:
    """Close an event: no more sign-ups or check-ins; its numbers stay."""
    with ws.engine.begin() as conn:
        _row(conn, key)
        conn.execute(update(meetups).where(meetups.c.key == key).values(archived=True))
        return get(conn, key)


def _group_of(conn: Connection, member_id: str) -> str | None:
    return conn.execute(select(groups.c.key).join(members, members.c.group_id == groups.c.id)
                        .where(members.c.id == member_id)).scalar()


def sign_up(ws: Workspace, key: str, member_id: str, *, via: str = "page") -> bool:
    """Sign the member up (once); records `signup` with properties.event. False when already signed up.
    Conflict when the event is over, archived or full."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        if conn.execute(select(members.c.id).where(members.c.id == member_id)).first() is None:
            raise NotFound("no such member", zh="找不到该成员")
        row = _row(conn, key)
        meetup = _meetup(row)
        if meetup.archived or now > meetup.ends_at:
            raise Conflict(f"event {key!r} is over: sign-ups are closed", zh=f"活动 {key!r} 已结束,报名已关闭")
        if meetup.capacity is not None:
            taken = conn.execute(select(func.count()).select_from(meetup_signups)
                                 .where(meetup_signups.c.meetup_id == row.id)).scalar_one()
            if taken >= meetup.capacity:
                raise Conflict(f"event {key!r} is full ({meetup.capacity} places)",
                               zh=f"活动 {key!r} 名额已满(共 {meetup.capacity} 个名额)")
        if not insert_if_new(conn, meetup_signups, {"meetup_id": row.id, "member_id": member_id,
                                                     "signed_up_at": now}):
            return False
        append_events(conn, [Event(event_id=f"su-{key}-{member_id}", type="signup", ts=now.replace(tzinfo=UTC),
                                   member_id=member_id, group=_group_of(conn, member_id),
                                   properties={"event": key, "via": via})])
        return True


def check_in(ws: Workspace, key: str, member_id: str, *, via: str = "link") -> ledger.Coupon:
    """Record the member's attendance (once; a walk-in is signed up too) and issue the day-of coupon through
    the ledger; returns it. Conflict outside the check-in window (30 min before the start to 1 h after the end)."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        if conn.execute(select(members.c.id).where(members.c.id == member_id)).first() is None:
            raise NotFound("no such member", zh="找不到该成员")
        row = _row(conn, key)
        meetup = _meetup(row)
        if meetup.archived or not meetup.checkin_open(now):
            raise Conflict(f"check-in for {key!r} is open from 30 minutes before the start to 1 hour after the end",
                           zh=f"活动 {key!r} 的签到在开始前 30 分钟开放,结束后 1 小时关闭")
        group_key = _group_of(conn, member_id)
        new_signup = insert_if_new(conn, meetup_signups, {"meetup_id": row.id, "member_id": member_id,
                                                          "signed_up_at": now})
        fresh = conn.execute(update(meetup_signups).where(
            meetup_signups.c.meetup_id == row.id, meetup_signups.c.member_id == member_id,
            meetup_signups.c.attended_at.is_(None)).values(attended_at=now, attended_via=via)).rowcount
        stamp = now.replace(tzinfo=UTC)
        new_events = []
        if new_signup:
            new_events.append(Event(event_id=f"su-{key}-{member_id}", type="signup", ts=stamp, member_id=member_id,
                                    group=group_key, properties={"event": key, "via": "walk_in"}))
        if fresh:
            new_events.append(Event(event_id=f"ea-{key}-{member_id}", type="checkin", ts=stamp, member_id=member_id,
                                    group=group_key, properties={"event": key, "via": via}))
        append_events(conn, new_events)
        valid = meetup.ends_at + timedelta(hours=meetup.coupon_hours) - now
        coupon, _ = ledger.issue(conn, member_id=member_id, name=meetup.coupon_name, value=meetup.coupon_value,
                                 valid_days=1, cause=f"meetup:{key}:{member_id}", now=now, actor=f"meetup:{key}",
                                 expires_at=now + valid)
        return coupon


def on_message(ws: Workspace, item: Any) -> None:
    """Inbound handler: in a group, the sign-up word (报名 / "sign up", optionally with the event's key) signs
    the member up for the next open event; an event's keyword while it runs checks them in."""
    from qunflow.connectors.base import MessagePosted
    from qunflow.services.join import member_of_user

    assert isinstance(item, MessagePosted)
    if item.group_id is None:
        return
    text = item.text.strip().lower()
    now = ws.clock()
    with ws.engine.connect() as conn:
        member_id = member_of_user(conn, item.platform, item.user_id)
        if member_id is None:
            return
        rows = [_meetup(r) for r in conn.execute(select(meetups).where(
            meetups.c.archived.is_(False), meetups.c.starts_at > now - timedelta(days=2))
            .order_by(meetups.c.starts_at))]
    for meetup in rows:
        if meetup.checkin_keyword and meetup.checkin_keyword.lower() in text and meetup.checkin_open(now):
            check_in(ws, meetup.key, member_id, via="keyword")
            return
    if any(text.startswith(word) for word in SIGNUP_WORDS):
        upcoming = [m for m in rows if m.ends_at >= now]
        named = [m for m in upcoming if m.key.lower() in text]
        chosen = named[0] if named else (upcoming[0] if len(upcoming) == 1 else None)
        if chosen is not None:
            try:
                sign_up(ws, chosen.key, member_id, via="keyword")
            except Conflict:
                return  # full or over: the sign-up page says so to whoever opens it


# --- numbers per event ---------------------------------------------------------------------------

def meetup_stats(ws: Workspace, key: str) -> dict[str, Any]:
    """Sign-ups, attendance, orders and the day-of coupon of one event (see the module's docstring)."""
    with ws.engine.connect() as conn:
        row = _row(conn, key)
        return _stats(ws, conn, row)


def _stats(ws: Workspace, conn: Connection, row: Any) -> dict[str, Any]:
    meetup = _meetup(row)
    signups = conn.execute(select(meetup_signups.c.member_id, meetup_signups.c.attended_at)
                           .where(meetup_signups.c.meetup_id == row.id)).all()
    attendees = [s.member_id for s in signups if s.attended_at is not None]
    orders = conn.execute(select(events.c.member_id, events.c.amount).where(
        events.c.member_id.in_(attendees), events.c.type.in_(ws.settings.conversion_types),
        events.c.ts >= meetup.starts_at, events.c.ts < meetup.ends_at + ORDER_WINDOW)).all() if attendees else []
    cause = f"meetup:{meetup.key}:%"
    issued = conn.execute(select(func.count()).select_from(coupons).where(coupons.c.cause.like(cause))).scalar_one()
    redeemed = conn.execute(select(func.count()).select_from(coupons).where(
        coupons.c.cause.like(cause), coupons.c.status.in_(("redeemed", "clawed_back")))).scalar_one()
    buyers = {o.member_id for o in orders}
    return {**meetup.as_json(), "signups": len(signups), "attended": len(attendees),
            "orders": len(orders), "buyers": len(buyers), "revenue": float(sum((o.amount or 0) for o in orders)),
            "unconverted_attendees": len(set(attendees) - buyers),
            "coupons_issued": int(issued), "coupons_redeemed": int(redeemed)}


def list_meetups(ws: Workspace, *, archived: bool = False) -> list[dict[str, Any]]:
    """Every event with its numbers, soonest first (archived ones only when asked)."""
    with ws.engine.connect() as conn:
        query = select(meetups).order_by(meetups.c.starts_at)
        if not archived:
            query = query.where(meetups.c.archived.is_(False))
        return [_stats(ws, conn, row) for row in conn.execute(query).all()]


def signup_list(ws: Workspace, key: str) -> list[dict[str, Any]]:
    """Who signed up and when they checked in (member ids: names are private)."""
    with ws.engine.connect() as conn:
        row = _row(conn, key)
        rows = conn.execute(select(meetup_signups).where(meetup_signups.c.meetup_id == row.id)
                            .order_by(meetup_signups.c.signed_up_at)).all()
    return [{"member_id": r.member_id, "signed_up_at": r.signed_up_at.isoformat() + "Z",
             "attended_at": r.attended_at.isoformat() + "Z" if r.attended_at else None,
             "attended_via": r.attended_via} for r in rows]


def attended(conn: Connection, key: str, member_id: str) -> bool:
    return conn.execute(select(meetup_signups.c.id).join(meetups, meetups.c.id == meetup_signups.c.meetup_id).where(
        meetups.c.key == key, meetup_signups.c.member_id == member_id,
        meetup_signups.c.attended_at.is_not(None))).first() is not None


def signed_up(conn: Connection, key: str, member_id: str) -> bool:
    return conn.execute(select(meetup_signups.c.id).join(meetups, meetups.c.id == meetup_signups.c.meetup_id).where(
        meetups.c.key == key, meetup_signups.c.member_id == member_id)).first() is not None


def event_variables(ws: Workspace, conn: Connection, key: str | None, member_id: str | None,
                    language: str) -> dict[str, str]:
    """The S4 template variables of an enrollment's event: title, local start time, the sign-up page (the
    member's own for a DM, the public one for a group post), the check-in link and keyword."""
    empty = dict.fromkeys(("event_title", "event_time", "event_link", "checkin_link", "checkin_keyword"), "")
    if not key:
        return empty
    row = conn.execute(select(meetups).where(meetups.c.key == key)).first()
    if row is None:
        return empty
    from qunflow.services.privacy import member_link_token

    meetup = _meetup(row)
    base = ws.settings.public_url.rstrip("/")
    personal = f"{base}/m/{member_link_token(ws, member_id)}/event/{key}" if member_id else ""
    return {"event_title": meetup.title.get(language) or meetup.title["zh"],
            "event_time": local_time(meetup.starts_at, ws, language),
            "event_link": personal or f"{base}/e/{key}",
            "checkin_link": f"{personal}/checkin" if personal else f"{base}/e/{key}",
            "checkin_keyword": meetup.checkin_keyword or ""}


def local_time(moment: datetime, ws: Workspace, language: str) -> str:
    """A naive UTC moment in the workspace's zone, the way people write a date and time."""
    local = moment.replace(tzinfo=UTC).astimezone(ws.settings.zone)
    if language == "zh":
        return f"{local.month}月{local.day}日 {local:%H:%M}"
    return f"{local.day} {local:%b} {local:%H:%M}"


def day_of_coupon(ws: Workspace, key: str, member_id: str) -> ledger.Coupon | None:
    """The day-of coupon the member got by checking in, as it is now (None: not checked in)."""
    with ws.engine.connect() as conn:
        code = conn.execute(select(coupons.c.code).where(coupons.c.cause == f"meetup:{key}:{member_id}")).scalar()
        return ledger.get(conn, code) if code else None


def member_status(ws: Workspace, key: str, member_id: str) -> tuple[bool, bool]:
    """(signed up, attended) of a member for an event."""
    with ws.engine.connect() as conn:
        return signed_up(conn, key, member_id), attended(conn, key, member_id)


def member_of_visitor(ws: Workspace, visitor_id: str) -> str | None:
    """The member a visitor cookie belongs to (the browser that passed the gate), if any."""
    with ws.engine.connect() as conn:
        return conn.execute(select(members.c.id).where(members.c.visitor_id == visitor_id)
                            .order_by(members.c.created_at.desc()).limit(1)).scalar()
