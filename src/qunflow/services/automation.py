"""The automation engine (issue 4): triggers enroll members (or groups) in playbooks; workers run due steps.

Durability: enrollments are rows in the state DB whose `due_at` is the timer; a restart resumes them.
Triggers read the event log from a stored cursor (every path that records an event can trigger).
Exactly once: a step's effects commit together with the enrollment's move to the next step. A send
step queues its message in the outbox (engine/outbox.py) in that same transaction, under a key
derived from the enrollment and step, and the outbox sends it, retries it and dead-letters it.
Several workers: due rows are claimed with a lease (PostgreSQL: FOR UPDATE SKIP LOCKED).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, func, literal_column, or_, select, update
from sqlalchemy.engine import Connection

from qunflow.domain.consent import MARKETING
from qunflow.domain.events import Event
from qunflow.domain.playbooks import Condition, Playbook, Step, in_quiet_hours, next_occurrence, wait_until
from qunflow.domain.privacy import render_public
from qunflow.domain.templates import TemplateError, render_template
from qunflow.domain.welcome import pick_language
from qunflow.engine import outbox
from qunflow.engine.notifier import queue_staff_alert
from qunflow.errors import NotFound
from qunflow.i18n import t
from qunflow.services.consent import marketing_footer
from qunflow.services.coupons import issue as issue_coupon
from qunflow.services.experiments import exposure_event, step_experiments, step_variant
from qunflow.services.gate_guard import member_coupon_eligible
from qunflow.services.playbooks import active_playbooks, load_version
from qunflow.services.privacy import member_link_token, unseal
from qunflow.store.consents import has_consent
from qunflow.store.eventlog import append_events
from qunflow.store.plain import insert_if_new, insert_ignore, insert_new_keys
from qunflow.store.tables import (
    automation_state,
    deliveries,
    enrollments,
    events,
    groups,
    identities,
    inbox,
    member_tags,
    member_tasks,
    members,
)
from qunflow.workspace import Workspace

LEASE = timedelta(seconds=60)
MAX_ATTEMPTS = 5
SCHEDULE_GRACE = timedelta(hours=6)  # a scheduled post missed by more than this is skipped, not sent late
CURSOR = "trigger_cursor"
EVENT_BUFFER = "qunflow_automation_events"  # on Connection.info while run_due's first transaction lasts
BATCH = "qunflow_automation_batch"  # the _Batch on Connection.info while run_due's transaction lasts


def _state(conn: Connection, name: str, default: str) -> str:
    value = conn.execute(select(automation_state.c.value).where(automation_state.c.name == name)).scalar()
    return default if value is None else str(value)


def _set_state(conn: Connection, name: str, value: str) -> None:
    insert_ignore(conn, automation_state, [{"name": name, "value": value}])
    conn.execute(update(automation_state).where(automation_state.c.name == name).values(value=value))


# --- triggers ---------------------------------------------------------------------------------

def _matches(playbook: Playbook, event: Any, props: dict[str, Any], tier: str | None) -> str | None:
    """The occurrence key when this event triggers the playbook for its member, else None."""
    trigger = playbook.trigger
    if trigger.tiers and tier not in trigger.tiers:
        return None
    kind = event.type
    if trigger.on == "member_joined" and kind == "joined":
        if trigger.entry_points and event.entry_point not in trigger.entry_points:
            return None
        return "joined"  # once per member, rejoins included
    if trigger.on == "tag_added" and kind == "tag_added" and props.get("tag") == trigger.tag:
        return f"tag:{event.event_id}"
    if trigger.on == "task_completed" and kind == "task_completed" and props.get("task") == trigger.task:
        return f"task:{trigger.task}"
    if trigger.on == "order_placed" and kind == "order":
        return f"order:{event.event_id}"
    if trigger.on == "level_changed" and kind == "level_changed" \
            and (not trigger.to or props.get("to") in trigger.to) \
            and (not trigger.from_ or props.get("from") in trigger.from_):
        return f"level:{event.event_id}"
    if trigger.on == "event_signup" and kind == "signup" and props.get("event") \
            and trigger.event in (None, props.get("event")):
        return f"event:{props['event']}"
    return None


def dispatch_triggers(ws: Workspace, *, limit: int = 5000) -> int:
    """Enroll members for the events recorded since the cursor; returns how many enrollments were made."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        cursor = int(_state(conn, CURSOR, "0"))
        # The end first, then the rows up to it: an event committed in between (PostgreSQL reads each
        # statement afresh) waits for the next round instead of being stepped over.
        last = conn.execute(select(func.max(events.c.seq))).scalar() or 0
        if last <= cursor:
            return 0
        rows = conn.execute(select(events.c.seq, events.c.event_id, events.c.type, events.c.member_id,
                                   events.c.entry_point, events.c.properties, events.c.ts)
                            .where(events.c.seq > cursor, events.c.seq <= last, events.c.member_id.is_not(None),
                                   events.c.type.in_(("joined", "tag_added", "task_completed", "order", "signup",
                                                      "level_changed")))
                            .order_by(events.c.seq).limit(limit)).all()
        new_cursor = rows[-1].seq if len(rows) == limit else last
        made: list[dict[str, Any]] = []
        candidates = [(k, v, p) for k, v, p in active_playbooks(conn) if p.trigger.on not in ("schedule", "inactive")]
        if candidates and rows:
            tiers = dict(conn.execute(select(members.c.id, members.c.tier)
                                      .where(members.c.id.in_({r.member_id for r in rows}))).all())
            for row in rows:
                props = _props(row.properties)
                tier = props.get("tier") or tiers.get(row.member_id)
                for key, version, playbook in candidates:
                    occurrence = _matches(playbook, row, props, tier)
                    if occurrence is not None:
                        context = {"event_id": row.event_id}
                        if playbook.trigger.on == "event_signup":  # its waits and texts follow that event
                            context["event"] = props["event"]
                        made.append(_enrollment(key, version, row.member_id, occurrence, now, context,
                                                started=min(row.ts, now)))
        insert_ignore(conn, enrollments, made)
        _set_state(conn, CURSOR, str(new_cursor))
    return len(made)


def _props(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        value = json.loads(value) if value else {}
    return value if isinstance(value, dict) else {}


def _enrollment(key: str, version: int, subject: str, occurrence: str, due: datetime,
                context: dict[str, Any], started: datetime | None = None) -> dict[str, Any]:
    """A new enrollment; `started` (the trigger's time) anchors waits for "day N" of the playbook."""
    return {"playbook_key": key, "version": version, "subject": subject, "occurrence": occurrence, "step": 0,
            "status": "active", "due_at": due, "attempts": 0, "context": context, "created_at": started or due,
            "updated_at": due}


def schedule_tick(ws: Workspace) -> int:
    """Enroll the groups of scheduled playbooks whose moment has come (each moment once)."""
    now, zone = ws.clock(), ws.settings.zone
    made: list[dict[str, Any]] = []
    with ws.engine.begin() as conn:
        for key, version, playbook in active_playbooks(conn):
            schedule = playbook.trigger.schedule
            if playbook.trigger.on != "schedule" or schedule is None:
                continue
            name = f"schedule:{key}"
            after = datetime.fromisoformat(_state(conn, name, (now - SCHEDULE_GRACE).isoformat()))
            moment = next_occurrence(schedule, after, zone)
            latest = None
            while moment <= now:
                latest = moment
                moment = next_occurrence(schedule, moment, zone)
            if latest is None:
                continue
            query = select(groups.c.key).where(groups.c.active)
            if playbook.trigger.tiers:
                query = query.where(groups.c.tier.in_(playbook.trigger.tiers))
            if latest >= now - SCHEDULE_GRACE:
                for group_key in conn.execute(query).scalars():
                    made.append(_enrollment(key, version, f"group:{group_key}", latest.isoformat(), now, {}))
            _set_state(conn, name, latest.isoformat())
        insert_ignore(conn, enrollments, made)
    return len(made)


def inactive_scan(ws: Workspace) -> int:
    """Enroll members with no engagement for a playbook's N days (again only after new activity)."""
    now = ws.clock()
    made: list[dict[str, Any]] = []
    engagement = ws.settings.engagement_types
    with ws.engine.begin() as conn:
        for key, version, playbook in active_playbooks(conn):
            days = playbook.trigger.days
            if playbook.trigger.on != "inactive" or days is None:
                continue
            last = func.max(events.c.ts)
            active = (select(events.c.member_id, last.label("last")).where(
                events.c.member_id.is_not(None), events.c.type.in_([*engagement, "joined"]), events.c.ts <= now)
                .group_by(events.c.member_id).having(last < now - timedelta(days=days)))
            for member_id, last_ts in conn.execute(active).all():
                made.append(_enrollment(key, version, member_id, f"inactive:{last_ts.isoformat()}", now, {}))
        insert_ignore(conn, enrollments, made)
    return len(made)


# --- running due steps ------------------------------------------------------------------------

@dataclass
class _Batch:
    """What run_due's transaction writes at its end instead of row by row (fewer round trips per step):
    each enrollment's one final update, and the tags added (flushed before anything reads tags)."""

    updates: dict[Any, list[dict[str, Any]]] = field(default_factory=dict)  # statement -> parameter sets
    tags: list[tuple[dict[str, Any], int]] = field(default_factory=list)  # the row, its tag_added event's slot
    experiments: dict[str, list[Any]] = field(default_factory=dict)  # playbook key -> its step experiments


_UPDATES: dict[tuple[str, ...], Any] = {}


def _write_enrollment(conn: Connection, enrollment_id: int, worker: str, values: dict[str, Any]) -> None:
    """Update the enrollment this worker holds; within run_due, at the end of its transaction."""
    batch = conn.info.get(BATCH)
    if batch is None:
        conn.execute(update(enrollments).where(enrollments.c.id == enrollment_id,
                                               enrollments.c.lease_owner == worker).values(**values))
        return
    shape = tuple(sorted(values))
    statement = _UPDATES.get(shape)
    if statement is None:
        statement = _UPDATES[shape] = update(enrollments).where(
            enrollments.c.id == bindparam("w_id"), enrollments.c.lease_owner == bindparam("w_owner"))
    batch.updates.setdefault(statement, []).append({**values, "w_id": enrollment_id, "w_owner": worker})


def _add_tag(conn: Connection, member_id: str, tag: str, now: datetime, event_id: str) -> None:
    """Tag the member and record tag_added if the tag is new; within run_due, inserted with the next flush."""
    batch = conn.info.get(BATCH)
    if batch is None:
        if insert_if_new(conn, member_tags, {"member_id": member_id, "tag": tag, "added_at": now}):
            append_events(conn, [Event(event_id=event_id, type="tag_added", ts=now.replace(tzinfo=UTC),
                                       member_id=member_id, properties={"tag": tag})])
        return
    _event(conn, event_id, "tag_added", now, member_id, {"tag": tag})  # its slot: the event order is kept
    batch.tags.append(({"member_id": member_id, "tag": tag, "added_at": now}, len(conn.info[EVENT_BUFFER]) - 1))


def _flush_tags(conn: Connection) -> None:
    """Insert the buffered tags in one statement; drop the tag_added events of tags the member already had."""
    batch = conn.info.get(BATCH)
    if batch is None or not batch.tags:
        return
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for row, _slot in batch.tags:
        first.setdefault((row["member_id"], row["tag"]), row)
    # in key order: two workers tagging the same members take the row locks in the same order (no deadlock)
    new = {(r.member_id, r.tag) for r in insert_new_keys(conn, member_tags, [first[k] for k in sorted(first)])}
    seen: set[tuple[str, str]] = set()
    for row, slot in batch.tags:
        key = (row["member_id"], row["tag"])
        if key not in new or key in seen:
            conn.info[EVENT_BUFFER][slot] = None
        seen.add(key)
    batch.tags.clear()


@dataclass
class Outcome:
    """What one pass of `run_due` did."""

    claimed: int = 0
    steps: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


# Literals, not parameters: a generic plan must still see the partial indexes' predicates (0021).
ACTIVE = enrollments.c.status == literal_column("'active'")
DEAD = enrollments.c.status == literal_column("'dead'")


def due_query(now: datetime, limit: int) -> Any:
    """The ids of due enrollments no live lease holds, oldest timer first (ix_enrollments_active_due)."""
    e = enrollments.c
    return (select(e.id).where(ACTIVE, e.due_at <= now, or_(e.lease_until.is_(None), e.lease_until < now))
            .order_by(e.due_at).limit(limit))


def claim(ws: Workspace, worker: str, limit: int) -> list[Any]:
    """Lease up to `limit` due enrollments to this worker."""
    now = ws.clock()
    e = enrollments.c
    due = due_query(now, limit)
    with ws.engine.begin() as conn:
        if conn.dialect.name == "postgresql":  # several workers: each takes rows no other holds
            due = due.with_for_update(skip_locked=True)
        rows = conn.execute(update(enrollments).where(e.id.in_(due.scalar_subquery()))
                            .values(lease_owner=worker, lease_until=now + LEASE)
                            .returning(e.id, e.playbook_key, e.version, e.subject, e.step, e.attempts, e.context,
                                       e.created_at, e.lease_owner)).all()
    return sorted(rows, key=lambda r: r.id)


def run_due(ws: Workspace, *, worker: str | None = None, limit: int = 500) -> Outcome:
    """Claim due enrollments and run each until it waits, finishes or must send; then send, then record."""
    worker = worker or f"w-{uuid.uuid4().hex[:8]}"
    outcome = Outcome()
    claimed = claim(ws, worker, limit)
    outcome.claimed = len(claimed)
    if not claimed:
        return outcome
    keys: list[str] = []
    with ws.engine.begin() as conn:
        conn.info[EVENT_BUFFER] = []
        conn.info[BATCH] = batch = _Batch()
        try:
            for row in claimed:
                keys.extend(_advance(ws, conn, row, worker, outcome))
            _flush_tags(conn)
            for statement, params in batch.updates.items():  # one executemany per shape, same transaction
                conn.execute(statement, params)
            # one statement, in the same transaction (None: a buffered tag that was already there)
            append_events(conn, [e for e in conn.info[EVENT_BUFFER] if e is not None])
        finally:
            conn.info.pop(EVENT_BUFFER, None)
            conn.info.pop(BATCH, None)
    if keys:  # sent now, not at the worker's next round
        tally = outbox.deliver(ws, keys)
        outcome.sent += tally.sent
        outcome.deferred += tally.waiting
        outcome.failed += tally.dead + tally.unreachable
        outcome.errors.extend(f"{r.key}: {r.error}" for r in tally.results if r.status == "dead")
    return outcome


def _advance(ws: Workspace, conn: Connection, row: Any, worker: str, outcome: Outcome) -> list[str]:
    """Run this enrollment's steps until a wait or the end; returns the keys of the sends it queued."""
    playbook = load_version(conn, row.playbook_key, row.version)
    context = dict(row.context or {})
    member_id = None if row.subject.startswith("group:") else row.subject
    step_index = row.step
    now = ws.clock()
    keys: list[str] = []
    varied = _step_experiments(conn, playbook.key) if member_id else []  # experiments on this playbook's steps
    for _ in range(len(playbook.steps) + 1):  # branches may jump back: one pass over the steps at most
        if step_index >= len(playbook.steps):
            _finish(conn, row.id, worker, "done", step_index, context, now)
            return keys
        if member_id and playbook.exit_when and _holds(conn, playbook.exit_when, member_id, ws, context):
            _finish(conn, row.id, worker, "exited", step_index, context, now)
            return keys
        step = playbook.steps[step_index]
        # The experiment on this step, if any, and the member's arm: read once here, used where it applies.
        tested = step_variant(ws, conn, playbook.key, step, member_id, varied) if varied and member_id else None
        if tested is not None and tested[0].replaces_step:
            step, tested = _swap_step(conn, step, tested, member_id or "", now), None
        action = step.action
        outcome.steps += 1
        if action not in ("wait", "add_tag"):  # whatever else a step does may read the tags added so far
            _flush_tags(conn)
        if action == "wait":
            assert step.wait is not None
            event_times = _event_times(conn, context) if step.wait.on_event else None
            if step.wait.on_event and event_times is None:
                _finish(conn, row.id, worker, "dead", step_index, context, now,
                        error="a before_event/after_event wait, but the enrollment has no event (or it was removed)")
                return keys
            due = wait_until(step.wait, now, ws.settings.zone, row.created_at, event_times)
            if step.wait.late == "skip" and _moment_passed(step.wait, now, event_times):
                step_index = _past_sends(playbook, step_index + 1)  # e.g. "starts tomorrow" to a late sign-up
                continue
            if due > now:
                _move(conn, row.id, worker, step_index + 1, due, context, now)
                return keys
        elif action in ("send_dm", "post_group", "notify_staff"):
            queued = _prepare_send(ws, conn, playbook, step, row, member_id, step_index, context, now, outcome,
                                   tested)
            if queued is None:  # deferred (quiet hours, cap) or parked: the enrollment was updated
                return keys
            if queued:
                keys.append(queued)
        elif action == "branch":
            assert step.branch is not None
            ok = member_id is not None and _holds(conn, step.branch.if_, member_id, ws, context)
            target = step.branch.goto if ok else step.branch.else_goto
            step_index = playbook.step_index(target) if target else step_index + 1
            continue
        elif action == "exit":
            _finish(conn, row.id, worker, "exited", step_index + 1, context, now)
            return keys
        else:
            _effect(ws, conn, playbook, step, row, member_id, step_index, context, now, tested)
        step_index += 1
    _finish(conn, row.id, worker, "dead", step_index, context, now, error="branches loop without a wait")
    return keys


def _step_experiments(conn: Connection, playbook_key: str) -> list[Any]:
    """The experiments on this playbook's steps, read once per run_due transaction."""
    batch = conn.info.get(BATCH)
    if batch is None:
        return step_experiments(conn, playbook_key)
    found = batch.experiments.get(playbook_key)
    if found is None:
        found = batch.experiments[playbook_key] = step_experiments(conn, playbook_key)
    return found


def _swap_step(conn: Connection, step: Step, tested: tuple[Any, str], member_id: str, now: datetime) -> Step:
    """The step this member meets when an experiment's variants put another step in its place (the control
    keeps the playbook's). Reaching it is the member's exposure, whatever their arm. Experiments that vary a
    step's text or coupon value are applied where the message or coupon is made."""
    doc, arm = tested
    chosen = doc.variant(arm)
    if doc.shipped is None:
        append_events(conn, [exposure_event(doc, arm, member_id, now)])
    return chosen.step if chosen is not None and chosen.step is not None else step


def _move(conn: Connection, enrollment_id: int, worker: str, step: int, due: datetime, context: dict[str, Any],
          now: datetime, *, keep_lease: bool = False, attempts: int = 0, error: str | None = None) -> None:
    values: dict[str, Any] = {"step": step, "due_at": due, "context": context, "updated_at": now,
                              "attempts": attempts, "last_error": error}
    if not keep_lease:
        values.update(lease_owner=None, lease_until=None)
    _write_enrollment(conn, enrollment_id, worker, values)


def _finish(conn: Connection, enrollment_id: int, worker: str, status: str, step: int, context: dict[str, Any],
            now: datetime, error: str | None = None) -> None:
    _write_enrollment(conn, enrollment_id, worker, {"status": status, "step": step, "context": context,
                                                    "updated_at": now, "lease_owner": None, "lease_until": None,
                                                    "last_error": error})


def _moment_passed(wait: Any, now: datetime, event_times: tuple[datetime, datetime] | None) -> bool:
    if event_times is None:
        return False
    if wait.before_event is not None:
        return bool(event_times[0] - wait.before_event.delta < now)
    return bool(event_times[1] + wait.after_event.delta < now)


def _past_sends(playbook: Playbook, index: int) -> int:
    """The first step at or after `index` that is not a message (the sends a late wait skips)."""
    while index < len(playbook.steps) and playbook.steps[index].action in ("send_dm", "post_group"):
        index += 1
    return index


def _event_times(conn: Connection, context: dict[str, Any]) -> tuple[datetime, datetime] | None:
    """(start, end) of the enrollment's S4 event, naive UTC; None when it has none."""
    from qunflow.services.meetups import get as get_meetup

    if not context.get("event"):
        return None
    try:
        meetup = get_meetup(conn, str(context["event"]))
    except NotFound:
        return None
    return meetup.starts_at, meetup.ends_at


def _holds(conn: Connection, condition: Condition, member_id: str, ws: Workspace,
           context: dict[str, Any] | None = None) -> bool:
    _flush_tags(conn)  # the tags this batch added count
    if condition.attended is not None:
        from qunflow.services.meetups import attended

        event = (context or {}).get("event")
        return bool(event) and attended(conn, str(event), member_id) == condition.attended
    if condition.tag is not None:
        return conn.execute(select(member_tags.c.tag).where(
            member_tags.c.member_id == member_id, member_tags.c.tag == condition.tag)).first() is not None
    if condition.task_done is not None:
        return conn.execute(select(member_tasks.c.id).where(
            member_tasks.c.member_id == member_id, member_tasks.c.task_key == condition.task_done,
            member_tasks.c.completed_at.is_not(None))).first() is not None
    if condition.has_ordered is not None:
        ordered = conn.execute(select(events.c.seq).where(
            events.c.member_id == member_id, events.c.type.in_(ws.settings.conversion_types))).first() is not None
        return ordered == condition.has_ordered
    if condition.variant is not None:
        for experiment, variant in condition.variant.items():
            first = conn.execute(select(events.c.variant).where(
                events.c.member_id == member_id, events.c.type == "experiment_exposure",
                events.c.experiment == experiment).order_by(events.c.ts, events.c.seq).limit(1)).scalar()
            if first != variant:
                return False
        return True
    if condition.profile is not None:
        blob = conn.execute(select(members.c.profile).where(members.c.id == member_id)).scalar()
        profile = unseal(ws, blob)
        return all(str(profile.get(k, "")) == v for k, v in condition.profile.items())
    return False


def _event(conn: Connection, event_id: str, kind: str, now: datetime, member_id: str | None,
           properties: dict[str, Any], **fields: Any) -> None:
    """Queue an event; run_due appends the batch's events together, before its transaction commits."""
    conn.info[EVENT_BUFFER].append(Event(event_id=event_id, type=kind, ts=now.replace(tzinfo=UTC),
                                         member_id=member_id, properties=properties, **fields))


def _effect(ws: Workspace, conn: Connection, playbook: Playbook, step: Step, row: Any, member_id: str | None,
            index: int, context: dict[str, Any], now: datetime, tested: tuple[Any, str] | None = None) -> None:
    """A step that only changes our own state: it commits with the enrollment's progress. `tested`: the
    experiment that varies this step and the member's arm (an issue_coupon step's value)."""
    cause = f"pb:{row.id}:{index}"
    if member_id is None:
        return  # member steps in a group-scheduled playbook do nothing (validated playbooks avoid it)
    if step.issue_coupon is not None:
        spec = step.issue_coupon
        if not member_coupon_eligible(conn, member_id):  # the gate pass was over the day's coupon cap
            context.update(coupon_withheld=True)
            _event(conn, f"cw-{cause}", "coupon_withheld", now, member_id, {"name": spec.name, "why": "gate_cap"})
            return
        value = float(spec.value)
        chosen = tested[0].variant(tested[1]) if tested is not None else None  # an incentive A/B
        if chosen is not None and chosen.coupon_value is not None:
            value = float(chosen.coupon_value)
        coupon, _ = issue_coupon(conn, member_id=member_id, name=spec.name, value=Decimal(str(value)),
                                 valid_days=spec.valid_days, cause=cause, now=now, actor=f"playbook:{playbook.key}")
        context.update(coupon_code=coupon.code, coupon_value=f"{value:g}")
        if tested is not None and tested[0].shipped is None:  # the member holds the varied coupon: exposed
            append_events(conn, [exposure_event(tested[0], tested[1], member_id, now)])
    elif step.add_tag is not None:
        _add_tag(conn, member_id, step.add_tag, now, f"tag-{cause}")
    elif step.remove_tag is not None:
        conn.execute(delete(member_tags).where(member_tags.c.member_id == member_id,
                                               member_tags.c.tag == step.remove_tag))
        _event(conn, f"untag-{cause}", "tag_removed", now, member_id, {"tag": step.remove_tag})
    elif step.assign_task is not None:
        insert_ignore(conn, member_tasks, [{"member_id": member_id, "task_key": step.assign_task,
                                             "assigned_at": now, "due_at": now + timedelta(days=1)}])
        _event(conn, f"task-{cause}", "task_assigned", now, member_id, {"task": step.assign_task})
    elif step.move_tier is not None:
        conn.execute(update(members).where(members.c.id == member_id).values(tier=step.move_tier))
        _event(conn, f"tier-{cause}", "tier_changed", now, member_id, {"tier": step.move_tier})
    elif step.move_group is not None:  # a tier move into this group: the member's own link by DM (tier_moves.py)
        from qunflow.services.tier_moves import request_move

        target = conn.execute(select(groups.c.id, groups.c.tier).where(groups.c.key == step.move_group)).first()
        current = conn.execute(select(members.c.group_id).where(members.c.id == member_id)).scalar()
        if target is not None and current == target.id:
            pass  # in that group already: nothing to move
        elif target is None or not request_move(conn, member_id, rule=f"playbook:{playbook.key}",
                                                to_tier=target.tier, to_group_id=target.id, now=now):
            # no such group (any more), or a move is open already: staff decide
            _inbox(conn, "follow_up", cause, member_id,
                   f"Invite to group {step.move_group} / 邀请进入 {step.move_group}", now, now + timedelta(hours=24))
    elif step.advisor_task is not None:
        title = f"{step.advisor_task.title.zh} / {step.advisor_task.title.en}"
        _inbox(conn, "follow_up", cause, member_id, title, now, now + timedelta(hours=step.advisor_task.due_hours))


def _inbox(conn: Connection, kind: str, cause: str, member_id: str | None, title: str, now: datetime,
           due: datetime | None) -> None:
    insert_ignore(conn, inbox, [{"kind": kind, "cause": cause, "member_id": member_id, "title": title,
                                  "due_at": due, "created_at": now}])


def _variables(ws: Workspace, conn: Connection, member_id: str | None, context: dict[str, Any],
               group: Any) -> tuple[dict[str, Any], str]:
    base = ws.settings.public_url.rstrip("/")
    values: dict[str, Any] = {"link": base, "advisor": context.get("advisor", ""),
                              "coupon_code": context.get("coupon_code", ""),
                              "coupon_value": context.get("coupon_value", ""),
                              "group": group.name if group is not None else "",
                              "tier": group.tier if group is not None else "", "name": "", "member_link": "",
                              "poster_link": "", "member_id": member_id or "", "console_link": ""}
    language = "zh"
    if member_id is not None:
        member = conn.execute(select(members.c.profile, members.c.locale, members.c.tier)
                              .where(members.c.id == member_id)).first()
        if member is not None:
            values["name"] = unseal(ws, member.profile).get("name", "")
            values["tier"] = member.tier or values["tier"]
            language = pick_language(member.locale)
        values["member_link"] = f"{base}/m/{member_link_token(ws, member_id)}/task/profile"
        values["poster_link"] = f"{base}/m/{member_link_token(ws, member_id)}/poster.png"  # S3 referral poster
        values["console_link"] = f"{base}/console/members/{member_id}"  # for staff alerts: no profile field there
    if not values["advisor"]:
        values["advisor"] = "小Q" if language == "zh" else "Q"
    from qunflow.services.meetups import event_variables

    values.update(event_variables(ws, conn, context.get("event"), member_id, language))
    return values, language


def _prepare_send(ws: Workspace, conn: Connection, playbook: Playbook, step: Step, row: Any,
                  member_id: str | None, index: int, context: dict[str, Any], now: datetime,
                  outcome: Outcome, tested: tuple[Any, str] | None = None) -> str | None:
    """Queue the step's message in the outbox: its key, "" when there is nothing to send (recorded, go on),
    or None when the enrollment was deferred (quiet hours, the daily cap) or parked as a dead letter."""
    key = f"pb:{row.id}:{index}"
    action = step.action
    group = None
    if row.subject.startswith("group:"):
        group = conn.execute(select(groups).where(groups.c.key == row.subject.removeprefix("group:"))).first()
    elif member_id is not None:
        group = conn.execute(select(groups).join(members, members.c.group_id == groups.c.id)
                             .where(members.c.id == member_id)).first()
    if action == "notify_staff":
        values, _language = _variables(ws, conn, member_id, context, group)
        body = playbook.templates[step.notify_staff or ""]
        try:  # an alert names the member by id and console link, never by a profile field
            title = f"{render_public(body.zh, values, 'zh')} / {render_public(body.en, values, 'en')}"
        except TemplateError as exc:
            _finish(conn, row.id, row.lease_owner, "dead", index, context, now, error=str(exc))
            return None
        _inbox(conn, "alert", key, member_id, title, now, None)
        if ws.settings.staff_webhook:  # posted by `qunflow serve`'s staff-alert loop, retried on failure
            queue_staff_alert(conn, key, {"text": title, "kind": "playbook_alert", "playbook": playbook.key,
                                          "member_id": member_id}, now)
        return ""
    marketing = playbook.marketing and member_id is not None
    # A marketing DM without the consent is not deferred: the outbox records it as skipped, and it never waits.
    refused = marketing and action == "send_dm" and not has_consent(conn, member_id or "", MARKETING)
    if marketing and not refused:
        later = _marketing_window(ws, conn, member_id or "", now)
        if later is not None:
            _move(conn, row.id, row.lease_owner, index, later, context, now)
            outcome.deferred += 1
            return None
    values, language = _variables(ws, conn, member_id, context, group)
    template = playbook.templates[(step.send_dm if action == "send_dm" else step.post_group) or ""]
    if action != "send_dm":
        tested = None  # only a direct message's text is varied
    if tested is not None:  # a `kind: experiment` varies this step's text; the control keeps the step's own
        chosen = tested[0].variant(tested[1])
        template = chosen.text if chosen is not None and chosen.text is not None else template
    try:
        if action == "send_dm":
            text_out = render_template(getattr(template, language), values, language)
            if context.get("coupon_withheld") and "coupon_code" in getattr(template, language):
                text_out = t("coupon_capped_dm", language)  # no code to give: say why, kindly
            if marketing:
                text_out += "\n\n" + marketing_footer(ws, member_id or "", language)
        else:  # a group reads it: no profile field
            text_out = render_public(getattr(template, language), values, language)
    except TemplateError as exc:  # e.g. the message grew too long: a person must look at it
        _finish(conn, row.id, row.lease_owner, "dead", index, context, now, error=str(exc))
        return None
    if action == "send_dm":
        identity = conn.execute(select(identities.c.platform, identities.c.external_user_id)
                                .where(identities.c.member_id == member_id, identities.c.unreachable_at.is_(None))
                                .limit(1)).first()
        if identity is None:
            _record_unreachable(conn, key, member_id, now, "no reachable platform identity for this member")
            return ""
        platform, target, private = identity.platform, identity.external_user_id, True
    else:
        if group is None:
            _record_unreachable(conn, key, member_id, now, "no group to post to")
            return ""
        platform, target, private = group.platform, group.external_id, False
    outbox.record(ws, conn, outbox.Message(key=key, kind="playbook", platform=platform, target=target, text=text_out,
                                           private=private, member_id=member_id, marketing=marketing))
    if tested is not None and tested[0].shipped is None and not refused:
        # the member meets the varied text now: their exposure (once per experiment, by event id)
        append_events(conn, [exposure_event(tested[0], tested[1], member_id or "", now)])
    return key


def _record_unreachable(conn: Connection, key: str, member_id: str | None, now: datetime, reason: str) -> None:
    insert_ignore(conn, deliveries, [{"idempotency_key": key, "member_id": member_id, "platform": "-",
                                       "target": "-", "kind": "skipped", "status": "unreachable",
                                       "created_at": now, "error": reason}])


def _marketing_window(ws: Workspace, conn: Connection, member_id: str, now: datetime) -> datetime | None:
    """None when a marketing message may go now; else when it may (quiet hours end, or tomorrow)."""
    zone = ws.settings.zone
    start, end = ws.settings.quiet_hours.split("-")
    quiet_end = in_quiet_hours(now, start, end, zone)
    if quiet_end is not None:
        return quiet_end
    cap = ws.settings.marketing_daily_cap
    local = now.replace(tzinfo=UTC).astimezone(zone)
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(UTC).replace(tzinfo=None)
    sent_today = conn.execute(select(func.count()).select_from(deliveries).where(
        deliveries.c.member_id == member_id, deliveries.c.marketing.is_(True), deliveries.c.status != "skipped",
        deliveries.c.created_at >= day_start)).scalar_one()
    if sent_today < cap:
        return None
    tomorrow = day_start + timedelta(days=1)
    return in_quiet_hours(tomorrow, start, end, zone) or tomorrow


# --- dead letters and the loop ------------------------------------------------------------------

def dead_letters(ws: Workspace, limit: int = 200) -> list[dict[str, Any]]:
    """What could not be carried out: playbook steps (numeric ids) and sends of every kind (ids `s<N>`)."""
    with ws.engine.connect() as conn:
        rows = conn.execute(select(enrollments.c.id, enrollments.c.playbook_key, enrollments.c.subject,
                                   enrollments.c.step, enrollments.c.last_error, enrollments.c.updated_at)
                            .where(DEAD).order_by(enrollments.c.updated_at.desc())
                            .limit(limit)).all()
    steps = [{**dict(r._mapping), "kind": "step"} for r in rows]
    sends = [{"id": f"s{d['id']}", "playbook_key": "", "subject": d["member_id"] or d["target"], "step": None,
              "last_error": d["error"], "updated_at": d["created_at"], "kind": d["kind"],
              "platform": d["platform"]} for d in outbox.dead_sends(ws, limit)]
    return steps + sends


DEAD_LETTER_ID = re.compile(r"([sS]?)([0-9]{1,10})")
ID_MAX = 2**31 - 1  # deliveries.id is an INTEGER on PostgreSQL


def split_ids(ids: Iterable[int | str]) -> tuple[list[int], list[int]]:
    """Dead-letter ids as (enrollment ids, delivery ids): `s12` names a send, `12` a playbook step."""
    steps: list[int] = []
    sends: list[int] = []
    for value in ids:
        text = str(value).strip()
        found = DEAD_LETTER_ID.fullmatch(text)
        # An id past what the table's column holds names nothing (and the database would refuse it).
        if found is None or int(found[2]) > ID_MAX:
            raise NotFound(f"not dead letters (see `qunflow automation dead`): {text[:40]}",
                           zh=f"不是死信(可用 `qunflow automation dead` 查看):{text[:40]}")
        (sends if found[1] else steps).append(int(found[2]))
    return steps, sends


def retry_dead(ws: Workspace, ids: Iterable[int | str], *, skip_step: bool = False) -> int:
    """Put dead letters back in line (optionally past the step that failed, or skipping the send).

    All or nothing: an id that is not a dead letter raises NotFound and nothing changes."""
    now = ws.clock()
    step_ids, send_ids = split_ids(ids)
    wanted = sorted(set(step_ids))
    with ws.engine.begin() as conn:
        steps = dict(conn.execute(select(enrollments.c.id, enrollments.c.step).where(
            enrollments.c.id.in_(wanted), enrollments.c.status == "dead")).all())
        dead_sends = set(conn.execute(select(deliveries.c.id).where(
            deliveries.c.id.in_(send_ids), deliveries.c.status == "dead")).scalars())
        missing = [str(i) for i in wanted if i not in steps] + [f"s{i}" for i in send_ids if i not in dead_sends]
        if missing:
            raise NotFound(f"not dead letters (see `qunflow automation dead`): {', '.join(missing)}",
                           zh=f"不是死信(可用 `qunflow automation dead` 查看):{', '.join(missing)}")
        for enrollment_id, step in steps.items():
            key = f"pb:{enrollment_id}:{step}"
            conn.execute(update(deliveries).where(deliveries.c.idempotency_key == key, deliveries.c.status != "sent")
                         .values(status="failed"))
            conn.execute(update(enrollments).where(enrollments.c.id == enrollment_id).values(
                status="active", attempts=0, due_at=now, step=step + (1 if skip_step else 0),
                updated_at=now, lease_owner=None, lease_until=None))
    if send_ids:
        outbox.retry_sends(ws, send_ids, skip=skip_step)
    return len(steps) + len(set(send_ids))


def release_leases(ws: Workspace, worker: str) -> int:
    """A restarted worker takes back what it held when it died (names must be unique per running worker)."""
    with ws.engine.begin() as conn:
        return int(conn.execute(update(enrollments).where(enrollments.c.lease_owner == worker)
                                .values(lease_owner=None, lease_until=None)).rowcount)


def pending_steps(ws: Workspace) -> int:
    with ws.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(enrollments).where(
            ACTIVE)).scalar_one())


def _hourly(ws: Workspace, name: str, job: Any) -> None:
    """Run `job` when an hour has passed since it last ran (any worker)."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        last = datetime.fromisoformat(_state(conn, name, datetime.min.isoformat()))
        if now - last < timedelta(hours=1):
            return
        _set_state(conn, name, now.isoformat())
    job(ws)


def work_once(ws: Workspace, *, worker: str | None = None, limit: int = 500) -> Outcome:
    """One round of everything a worker does: triggers, schedules, due steps until none are left, then the
    outbound sync to a CRM (last: a slow receiver delays only the next round, within its time budget)."""
    from qunflow.services.rewards import clawback_fraud, rewards_tick
    from qunflow.services.sync import prune, sync_round
    from qunflow.services.tier_moves import moves_tick

    dispatch_triggers(ws)
    schedule_tick(ws)
    _hourly(ws, "inactive_scan", inactive_scan)
    rewards_tick(ws)
    _hourly(ws, "fraud_rescan", clawback_fraud)
    moves_tick(ws)  # tier moves a step requested get their link and DM; lapsed offers expire
    total = Outcome()
    waiting = outbox.deliver(ws)  # queued sends and retries that came due, of every kind
    total.sent, total.deferred, total.failed = waiting.sent, waiting.waiting, waiting.dead + waiting.unreachable
    while True:
        outcome = run_due(ws, worker=worker, limit=limit)
        for name in ("claimed", "steps", "sent", "deferred", "failed"):
            setattr(total, name, getattr(total, name) + getattr(outcome, name))
        total.errors.extend(outcome.errors)
        if outcome.claimed < limit:
            if ws.settings.sync:
                sync_round(ws)
                _hourly(ws, "sync_prune", prune)
            return total


__all__ = ["Outcome", "dead_letters", "dispatch_triggers", "inactive_scan", "pending_steps", "release_leases",
           "retry_dead",
           "run_due", "schedule_tick", "work_once"]
