"""Day-1 tasks (C3, S1/S2): what each task page shows, and the one action that completes each task.

A task is completed (the `task_completed` event M9 counts) only by doing it, never by a click:
- `profile`: saving its fields (the gate's fields, else name / need / interest), prefilled with what the
  gate collected; encrypted at rest with the rest of the profile; the profile consent is asked for first
  when no gate recorded it.
- `claim_coupon`: claiming a coupon the ledger holds for the member (the newest open one); the page shows
  its code, value and expiry. A task with `coupon:` issues one on claim when none is open.
- a task with a `poll` (the operator writes it in the welcome document): casting a vote, stored once.
- `checkin`: the check-in word in the group (services.activity); its page only says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, update

from qunflow.domain.consent import PROFILE
from qunflow.domain.events import Event
from qunflow.domain.gate import SEED_GATE_JSON, ProfileField, gate_from_json
from qunflow.domain.welcome import Day1Task, Poll
from qunflow.errors import InvalidInput, NotFound
from qunflow.services import coupons as ledger
from qunflow.services.gate_guard import member_coupon_eligible
from qunflow.services.privacy import store_profile, unseal
from qunflow.services.welcome_docs import active_welcome
from qunflow.store.consents import has_consent, record_consent
from qunflow.store.eventlog import append_events
from qunflow.store.plain import insert_if_new
from qunflow.store.tables import coupons, entry_points, events, gates, groups, member_tasks, members, poll_votes
from qunflow.workspace import Workspace

KINDS = ("profile", "coupon", "vote", "checkin", "other")


@dataclass(frozen=True)
class TaskPage:
    """Everything a member's task page shows."""

    key: str
    kind: str  # one of KINDS
    title: dict[str, str]
    assigned: bool
    done: bool
    fields: tuple[ProfileField, ...] = ()
    values: dict[str, str] = field(default_factory=dict)  # the saved (or gate's) answers, to prefill
    needs_consent: bool = False
    coupon: ledger.Coupon | None = None
    poll: Poll | None = None
    vote: str | None = None  # the option the member chose


def _kind(key: str, task: Day1Task | None) -> str:
    if key == "profile":
        return "profile"
    if key == "claim_coupon":
        return "coupon"
    if key == "checkin":
        return "checkin"
    return "vote" if task is not None and task.poll is not None else "other"


def _member(conn: Connection, member_id: str) -> Any:
    row = conn.execute(select(members.c.profile, members.c.entry_point_id).where(members.c.id == member_id)).first()
    if row is None:
        raise NotFound("this member is no longer here", zh="该成员已不存在")
    return row


def profile_fields(conn: Connection, entry_point_id: int | None) -> tuple[ProfileField, ...]:
    """The fields the member's gate asks; without a gate (or with one that asks none), the seed's three."""
    if entry_point_id is not None:
        found = conn.execute(select(gates.c.key, gates.c.definition).join(
            entry_points, entry_points.c.gate_id == gates.c.id).where(entry_points.c.id == entry_point_id)).first()
        if found is not None:
            definition = found.definition if isinstance(found.definition, dict) else json.loads(found.definition)
            fields = gate_from_json(found.key, definition).fields
            if fields:
                return fields
    return gate_from_json("seed", SEED_GATE_JSON).fields


def _task_row(conn: Connection, member_id: str, key: str) -> Any:
    return conn.execute(select(member_tasks.c.completed_at).where(
        member_tasks.c.member_id == member_id, member_tasks.c.task_key == key)).first()


def open_coupon(conn: Connection, member_id: str, now: datetime) -> ledger.Coupon | None:
    """The member's newest coupon that can still be used."""
    row = conn.execute(select(coupons.c.code).where(
        coupons.c.member_id == member_id, coupons.c.status.in_(ledger.OPEN), coupons.c.expires_at > now)
        .order_by(coupons.c.issued_at.desc(), coupons.c.id.desc()).limit(1)).scalar()
    return ledger.get(conn, row) if row else None


def _claimed_coupon(conn: Connection, member_id: str) -> ledger.Coupon | None:
    """The coupon a completed claim showed (the `task_completed` event names it), as it is now."""
    props = conn.execute(select(events.c.properties).where(
        events.c.event_id == f"tc-{member_id}-claim_coupon")).scalar()
    if isinstance(props, str):
        props = json.loads(props)
    code = (props or {}).get("coupon_code")
    return ledger.get(conn, code) if code else None


def task_page(ws: Workspace, member_id: str, key: str) -> TaskPage:
    """What the member's page for task `key` shows. NotFound for a task neither assigned nor in the welcome."""
    now = ws.clock()
    with ws.engine.connect() as conn:
        task = active_welcome(conn)[1].task(key)
        row = _task_row(conn, member_id, key)
        if task is None and row is None and key not in ("profile", "claim_coupon", "checkin"):
            raise NotFound(f"there is no task {key!r}", zh=f"没有任务 {key!r}")
        member = _member(conn, member_id)
        kind = _kind(key, task)
        title = task.title.model_dump() if task is not None else {"zh": key, "en": key}
        base = TaskPage(key, kind, title, row is not None, row is not None and row.completed_at is not None)
        if kind == "profile":
            values = {k: str(v) for k, v in unseal(ws, member.profile).items()}
            return TaskPage(**{**base.__dict__, "fields": profile_fields(conn, member.entry_point_id),
                               "values": values, "needs_consent": not has_consent(conn, member_id, PROFILE)})
        if kind == "coupon":
            shown = _claimed_coupon(conn, member_id) if base.done else None
            return TaskPage(**{**base.__dict__, "coupon": shown or open_coupon(conn, member_id, now)})
        if kind == "vote":
            assert task is not None
            vote = conn.execute(select(poll_votes.c.option).where(
                poll_votes.c.member_id == member_id, poll_votes.c.poll == key)).scalar()
            return TaskPage(**{**base.__dict__, "poll": task.poll, "vote": vote})
        return base


def complete_in(conn: Connection, member_id: str, key: str, now: datetime,
                properties: dict[str, Any] | None = None) -> bool:
    """Mark an assigned task done (once) and record `task_completed` in the caller's transaction.
    False when the member was not given the task or has done it already."""
    done = conn.execute(update(member_tasks).where(
        member_tasks.c.member_id == member_id, member_tasks.c.task_key == key,
        member_tasks.c.completed_at.is_(None)).values(completed_at=now)).rowcount
    if not done:
        return False
    group_key = conn.execute(select(groups.c.key).join(members, members.c.group_id == groups.c.id)
                             .where(members.c.id == member_id)).scalar()
    append_events(conn, [Event(event_id=f"tc-{member_id}-{key}", type="task_completed", ts=now.replace(tzinfo=UTC),
                               member_id=member_id, group=group_key,
                               properties={"task": key, **(properties or {})})])
    return True


def save_profile(ws: Workspace, member_id: str, form: dict[str, str]) -> bool:
    """Validate and save the profile fields (encrypted), with the profile consent when none was recorded.
    Completes the profile task if the member has it; returns whether it did. InvalidInput names the
    fields to fix, and nothing is saved."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        member = _member(conn, member_id)
        fields = profile_fields(conn, member.entry_point_id)
        consent_needed = not has_consent(conn, member_id, PROFILE)
        errors: dict[str, str] = {}
        values: dict[str, str] = {}
        for spec in fields:
            value = (form.get(spec.key) or "").strip()
            if spec.required and not value:
                errors[spec.key] = "required"
            elif len(value) > spec.max_length:
                errors[spec.key] = "too_long"
            elif value:
                values[spec.key] = value
        if consent_needed and form.get("consent") not in ("on", "true", "1", "yes"):
            errors["consent"] = "consent"
        if errors:
            raise ProfileErrors(errors)
        if consent_needed:
            record_consent(conn, member_id, PROFILE, True, "link", now)
        profile = {**unseal(ws, member.profile), **values}
        store_profile(ws, conn, member_id, profile)
        return complete_in(conn, member_id, "profile", now, {"fields": sorted(values)})


class ProfileErrors(InvalidInput):
    """Every problem with a submitted profile form: field -> "required", "too_long" or "consent" (the page
    words them in the member's language)."""

    WORDS = {"required": "required", "too_long": "too long", "consent": "agree to the privacy notice first"}
    WORDS_ZH = {"required": "必填", "too_long": "太长", "consent": "请先同意隐私说明"}

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {self.WORDS[v]}" for k, v in errors.items()),
                         zh="；".join(f"{k}：{self.WORDS_ZH[v]}" for k, v in errors.items()))
        self.errors = errors


def claim_coupon(ws: Workspace, member_id: str) -> ledger.Coupon:
    """Claim the member's coupon: the newest open one in the ledger (an `issued` one moves to `sent`), or, when
    the task defines `coupon:` and none is open, one issued now. Completes the claim task.
    NotFound when there is no coupon to show (it has not been issued yet, or the member is over the cap)."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        _member(conn, member_id)
        coupon = open_coupon(conn, member_id, now)
        task = active_welcome(conn)[1].task("claim_coupon")
        if coupon is None and task is not None and task.coupon is not None and member_coupon_eligible(conn, member_id):
            spec = task.coupon
            coupon, _ = ledger.issue(conn, member_id=member_id, name=spec.name, value=Decimal(str(spec.value)),
                                     valid_days=spec.valid_days, cause=f"task:{member_id}:claim_coupon", now=now,
                                     actor="member")
        if coupon is None:
            already = _claimed_coupon(conn, member_id)
            if already is not None:
                return already
            raise NotFound("no coupon has been issued to you yet", zh="还没有给你发放优惠券")
        if coupon.status == "issued":
            coupon = ledger.change(conn, coupon.code, "send", now=now, actor="member",
                                   reason="claimed on the task page")
        complete_in(conn, member_id, "claim_coupon", now, {"coupon_code": coupon.code, "coupon": coupon.name})
        return coupon


def cast_vote(ws: Workspace, member_id: str, key: str, option: str) -> bool:
    """Store the member's vote on the poll of task `key` (once; a second vote changes nothing) and record
    `poll_vote`; completes the task. False when the member had voted already."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        _member(conn, member_id)
        task = active_welcome(conn)[1].task(key)
        if task is None or task.poll is None:
            raise NotFound(f"there is no poll {key!r}", zh=f"没有投票 {key!r}")
        if task.poll.option(option) is None:
            raise InvalidInput(f"choose one of the options: {', '.join(o.key for o in task.poll.options)}",
                               zh=f"请选择一个选项:{', '.join(o.key for o in task.poll.options)}")
        if not insert_if_new(conn, poll_votes, {"member_id": member_id, "poll": key, "option": option,
                                                "voted_at": now}):
            return False
        group_key = conn.execute(select(groups.c.key).join(members, members.c.group_id == groups.c.id)
                                 .where(members.c.id == member_id)).scalar()
        append_events(conn, [Event(event_id=f"pv-{member_id}-{key}", type="poll_vote", ts=now.replace(tzinfo=UTC),
                                   member_id=member_id, group=group_key, properties={"poll": key, "option": option})])
        complete_in(conn, member_id, key, now, {"option": option})
        return True


def poll_results(ws: Workspace, key: str) -> dict[str, int]:
    """Votes per option of the poll of task `key` (options nobody chose count 0)."""
    from sqlalchemy import func

    with ws.engine.connect() as conn:
        task = active_welcome(conn)[1].task(key)
        if task is None or task.poll is None:
            raise NotFound(f"there is no poll {key!r}", zh=f"没有投票 {key!r}")
        counts: dict[str, int] = dict(conn.execute(
            select(poll_votes.c.option, func.count()).where(poll_votes.c.poll == key)
            .group_by(poll_votes.c.option)).all())
    return {o.key: int(counts.get(o.key, 0)) for o in task.poll.options}


__all__ = ["KINDS", "ProfileErrors", "TaskPage", "cast_vote", "claim_coupon", "complete_in",
           "open_coupon", "poll_results", "profile_fields", "save_profile", "task_page"]
