"""Welcome and first activation (C3, S1): welcome DM, group menu, Day-1 tasks and their completion.

Inbound handlers (registered in services.inbound): the welcome goes out straight from the platform's
update, because some platforms only allow it in a window (Telegram: a join request's 5 minutes, until
it is approved; WeCom: a welcome code that lives ~20 s). Every send goes through the outbox, keyed per
member, so a join seen twice (a request, then the join) is welcomed once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, select

from qunflow.connectors.base import ContactAdded, JoinRequested, MemberJoined
from qunflow.domain.events import Event
from qunflow.domain.templates import render_template
from qunflow.domain.welcome import TASK_KEYS, Welcome, dm_key, pick_language
from qunflow.engine import outbox
from qunflow.errors import InvalidInput
from qunflow.services.consent import asked_before, welcome_consent_ask
from qunflow.services.experiments import exposure_event, welcome_variant
from qunflow.services.join import group_row, known_request_in, member_of_user
from qunflow.services.privacy import member_link_token, unseal
from qunflow.services.tasks import complete_in
from qunflow.services.welcome_docs import active_welcome
from qunflow.store.db import connection, transaction
from qunflow.store.eventlog import append_events
from qunflow.store.memo import remembered
from qunflow.store.plain import insert_ignore, read_scalar
from qunflow.store.tables import entry_points, groups, member_tasks, members
from qunflow.workspace import Workspace

GATE_LINK = {"zh": "你好！入群前请先填写这份简短问卷：{{ link }}",
             "en": "Hi! Please fill in this short form before joining: {{ link }}"}
REQUEST_WAIT = 10.0  # seconds a join request's welcome may wait inline for the platform's retry_after


@dataclass(frozen=True)
class Arrival:
    """Someone to welcome: who, where, since when, and the window token their platform gave."""

    platform: str
    user_id: str
    display_name: str
    at: datetime
    context: str | None
    group: Any  # the group row, or None (a contact, not yet in a group)
    expires_at: datetime | None


def _window(ws: Workspace, platform: str, at: datetime) -> datetime | None:
    seconds = ws.connector(platform).capabilities.dm_window_seconds
    return at + timedelta(seconds=seconds) if seconds else None


# Built once (see services/join.py): the welcome runs on every join.
_TO_WELCOME = (select(members.c.locale, members.c.profile, members.c.tier, entry_points.c.code.label("entry_point"))
               .outerjoin(entry_points, entry_points.c.id == members.c.entry_point_id)
               .where(members.c.id == bindparam("member_id")))
_LOCALE = select(members.c.locale).where(members.c.id == bindparam("member_id"))


def _group_and_member(ws: Workspace, platform: str, group_id: str, user_id: str) -> tuple[Any, str | None]:
    """The managed group (None: not ours) and the member the join handler recorded for the person."""
    with connection(ws.engine) as conn:
        return group_row(conn, platform, group_id), member_of_user(conn, platform, user_id)


def on_join_request(ws: Workspace, item: Any) -> None:
    """Welcome a request on our own link before it is approved; on anyone else's, send the gate link."""
    assert isinstance(item, JoinRequested)
    with connection(ws.engine) as conn:  # one connection for the three lookups (the first two: remembered)
        group, member_id = group_row(conn, item.platform, item.group_id), member_of_user(conn, item.platform,
                                                                                         item.user_id)
        known = group is not None and member_id is not None and known_request_in(conn, item)
    if group is None or member_id is None:
        return
    arrival = Arrival(item.platform, item.user_id, item.display_name, item.at, item.dm_context, group,
                      _window(ws, item.platform, item.at))
    if known:
        welcome(ws, member_id, arrival, wait_up_to=REQUEST_WAIT)
    else:
        _send_gate_link(ws, member_id, arrival)


def on_member_joined(ws: Workspace, item: Any) -> None:
    assert isinstance(item, MemberJoined)
    group, member_id = _group_and_member(ws, item.platform, item.group_id, item.user_id)
    if group is None or member_id is None:
        return
    arrival = Arrival(item.platform, item.user_id, item.display_name, item.at, item.dm_context, group, None)
    if _welcomed(ws, member_id):  # e.g. the join that follows an approved request: only the group menu
        with connection(ws.engine) as conn:
            config = active_welcome(conn)[1]
            locale = read_scalar(conn, _LOCALE, {"member_id": member_id})
        language = pick_language(locale or "zh")
    else:
        config, language = welcome(ws, member_id, arrival)
    if ws.connector(item.platform).capabilities.posts_to_groups:
        post_menu(ws, arrival, config, language)


def _welcomed(ws: Workspace, member_id: str) -> bool:
    with connection(ws.engine) as conn:
        return outbox.recorded(conn, dm_key(member_id))


def on_contact_added(ws: Workspace, item: Any) -> None:
    assert isinstance(item, ContactAdded)
    with connection(ws.engine) as conn:
        member_id = member_of_user(conn, item.platform, item.user_id)
    if member_id is not None:
        welcome(ws, member_id, Arrival(item.platform, item.user_id, item.display_name, item.at, item.dm_context,
                                       None, _window(ws, item.platform, item.at)))


def welcome(ws: Workspace, member_id: str, arrival: Arrival, *,
            wait_up_to: float = 0.0) -> tuple[Welcome, str]:
    """S1: the private welcome (once per member) with the texts and Day-1 tasks of the welcome in force
    (services.welcome_docs: the applied `kind: welcome`, or the default). A member who never decided on
    marketing messages (no gate) is asked in it. Returns the welcome and the member's language."""
    with connection(ws.engine) as conn:
        # A member the join handler just made is remembered with these fields (services/join.py resolve).
        member = remembered(("to_welcome", member_id),
                            lambda: conn.execute(_TO_WELCOME, {"member_id": member_id}).one())
        version, config = active_welcome(conn)
        experiment = welcome_variant(ws, conn, member_id)
        asked = asked_before(conn, member_id)
    language = pick_language(member.locale)
    profile = unseal(ws, member.profile)
    token = member_link_token(ws, member_id)
    base = ws.settings.public_url.rstrip("/")
    group = arrival.group
    tier = member.tier or (group.tier if group is not None else "newbie")
    group_key = group.key if group is not None else None
    variant, dm = config.dm_for(tier, member.entry_point)
    tested: dict[str, str] = {}
    if experiment is not None and variant == "default":  # a tier's or entry point's own DM is not tested
        doc, arm = experiment
        chosen = doc.variant(arm)
        if chosen is not None and chosen.dm is not None:  # the control keeps the welcome's own DM
            dm = chosen.dm
        tested = {"experiment": doc.key, "experiment_variant": arm}
        if doc.shipped is None:  # the member meets the varied text now: their exposure (once, by event id)
            with transaction(ws.engine) as conn:
                append_events(conn, [exposure_event(doc, arm, member_id, ws.clock())])
    text = render_template({"zh": dm.zh, "en": dm.en}, {
        "name": profile.get("name") or arrival.display_name,
        "profile_link": f"{base}/m/{token}/task/profile",
        "coupon_link": f"{base}/m/{token}/task/claim_coupon",
        "rules_link": f"{base}/rules", "group": group_key or "", "tier": tier, "entry_point": member.entry_point or ""},
        language)
    if not asked:  # no gate decided it (added by a friend, a link the gate did not make)
        text += "\n\n" + welcome_consent_ask(ws, member_id, language)
    tasks = _day1_tasks(member_id, group_key, config, bool(profile.get("name")), ws.clock())
    outbox.send(ws, outbox.Message(
        key=dm_key(member_id), kind="welcome_dm", platform=arrival.platform, target=arrival.user_id,
        text=text, private=True, member_id=member_id, context=arrival.context, expires_at=arrival.expires_at,
        on_sent={"event_id": f"ws-{member_id}", "type": "welcome_sent", "member_id": member_id, "group": group_key,
                 "since": arrival.at.isoformat(),
                 "properties": {"welcome_version": version or 0, "variant": variant, **tested}}),
        wait_up_to=wait_up_to,
        with_record=tasks.write)  # one commit before the call: the send and the tasks it names
    return config, language


def ensure_day1_tasks(ws: Workspace, member_id: str) -> int:
    """The Day-1 tasks of the welcome in force, for a member welcomed without them (a crash came between).
    Returns how many the member is given (0: none apply)."""
    with ws.engine.connect() as conn:
        config = active_welcome(conn)[1]
        profile, group_key = conn.execute(select(members.c.profile, groups.c.key)
                                          .outerjoin(groups, groups.c.id == members.c.group_id)
                                          .where(members.c.id == member_id)).one()
    return _assign_tasks(ws, member_id, group_key, config, bool(unseal(ws, profile).get("name")))


def _assign_tasks(ws: Workspace, member_id: str, group_key: str | None, config: Welcome, has_name: bool) -> int:
    """The Day-1 tasks, once (a profile the gate already collected is not asked for again)."""
    tasks = _day1_tasks(member_id, group_key, config, has_name, ws.clock())
    with ws.engine.begin() as conn:
        tasks.write(conn)
    return len(tasks.rows)


@dataclass(frozen=True)
class _Day1Tasks:
    """A member's Day-1 task rows and their task_assigned events, written together and at most once."""

    rows: list[dict[str, Any]]
    events: list[Event]

    def write(self, conn: Connection) -> None:
        insert_ignore(conn, member_tasks, self.rows)
        append_events(conn, self.events)


def _day1_tasks(member_id: str, group_key: str | None, config: Welcome, has_name: bool, now: datetime) -> _Day1Tasks:
    tasks = [task for task in config.day1_tasks if not (task.key == "profile" and has_name)]
    return _Day1Tasks(
        [{"member_id": member_id, "task_key": task.key, "assigned_at": now,
          "due_at": now + timedelta(hours=task.due_hours)} for task in tasks],
        [Event(event_id=f"ta-{member_id}-{task.key}", type="task_assigned", ts=now.replace(tzinfo=UTC),
               member_id=member_id, group=group_key, properties={"task": task.key}) for task in tasks])


def _send_gate_link(ws: Workspace, member_id: str, arrival: Arrival) -> None:
    """A request on a link that is not theirs (forwarded, or not ours): point them to a gate instead."""
    with connection(ws.engine) as conn:
        code = conn.execute(select(entry_points.c.code).where(
            entry_points.c.platform == arrival.platform, entry_points.c.gate_id.is_not(None))
            .order_by(entry_points.c.id).limit(1)).scalar()
        locale = conn.execute(select(members.c.locale).where(members.c.id == member_id)).scalar()
    if code is None:
        return
    link = f"{ws.settings.public_url.rstrip('/')}/j/{code}"
    text = render_template(GATE_LINK, {"link": link}, pick_language(locale or "zh"))
    outbox.send(ws, outbox.Message(key=f"gate_link:{arrival.platform}:{arrival.user_id}", kind="gate_link",
                                   platform=arrival.platform, target=arrival.user_id, text=text, private=True,
                                   member_id=member_id, context=arrival.context, expires_at=arrival.expires_at))


def post_menu(ws: Workspace, arrival: Arrival, config: Welcome, language: str) -> None:
    """The welcome menu; joins within `menu_batch_seconds` share one post (group rate limits)."""
    group = arrival.group
    seconds = config.menu_batch_seconds
    text = render_template({"zh": config.menu.zh, "en": config.menu.en}, {
        "names": arrival.display_name, "rules_link": f"{ws.settings.public_url.rstrip('/')}/rules",
        "group": group.key, "tier": group.tier}, language)
    outbox.send(ws, outbox.Message(
        key=f"welcome_menu:{group.key}:{menu_batch(config, ws.clock())}", kind="welcome_menu",
        platform=arrival.platform, target=group.external_id, text=text, private=False,
        expires_at=ws.clock() + timedelta(seconds=seconds)))


def menu_batch(config: Welcome, now: datetime) -> str:
    """The menu post's batch at `now`: its idempotency key is welcome_menu:<group key>:<batch>."""
    seconds = config.menu_batch_seconds
    window = int(now.timestamp()) // seconds
    return f"{window}" if seconds == 60 else f"{seconds}s:{window}"  # the default keeps the keys it always had


def complete_task(ws: Workspace, member_id: str, task_key: str) -> bool:
    """Mark a task done (once) and record `task_completed`. False if already done, or not assigned to the member.
    InvalidInput for a key neither the welcome in force (nor the default) names nor the member was given."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        if task_key not in TASK_KEYS and task_key not in active_welcome(conn)[1].task_keys and conn.execute(
                select(member_tasks.c.id).where(member_tasks.c.member_id == member_id,
                                                member_tasks.c.task_key == task_key)).first() is None:
            raise InvalidInput(f"unknown task {task_key!r}", zh=f"没有任务 {task_key!r}")
        return complete_in(conn, member_id, task_key, now)
