"""Tier moves (issue 13): a member who matches a tier rule (or a playbook's move_group step) gets their own
tracked link into a group of the new tier by DM; the move completes when they join through it, and, where
the rule says so and the platform can, they then leave the old group. Every step is an event:
`tier_move_offered`, `tier_moved`, `tier_move_expired`, and `left` for the old group (as any leave).

A move is a row of `tier_moves`: `requested` (by the rules' evaluation or a playbook step, in their own
transaction), `offered` once a worker made the link and queued the DM (`tier_move` sends, through the
outbox), then `completed`, `expired` or `failed`. One open move per member (the unique `open_key`); a rule
offers the same member a move at most once per REOFFER_DAYS. The rules themselves: domain/tier_rules.py.
"""

from __future__ import annotations

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, and_, bindparam, func, or_, select, update

from qunflow.connectors.base import MemberJoined, MemberLeft, RemovesMembers
from qunflow.domain.events import Event
from qunflow.domain.routing import choose_group
from qunflow.domain.templates import TemplateError, render_template
from qunflow.domain.tier_rules import (
    REOFFER_DAYS,
    Condition,
    PlannedMove,
    TierRuleSet,
    TierRuleSource,
    conditions_of,
    plan_moves,
)
from qunflow.domain.welcome import pick_language
from qunflow.engine import outbox
from qunflow.errors import PlatformError, QunflowError
from qunflow.i18n import t
from qunflow.services.catalog import group_slots
from qunflow.services.invites import invite_for, revoke
from qunflow.services.privacy import unseal
from qunflow.services.versions import Change, store_version
from qunflow.store.db import transaction
from qunflow.store.eventlog import append_events
from qunflow.store.plain import insert_if_new, insert_ignore
from qunflow.store.tables import (
    events,
    groups,
    identities,
    inbox,
    member_levels,
    member_tags,
    members,
    tier_moves,
    tier_rule_set_versions,
    tier_rule_sets,
)
from qunflow.workspace import Workspace

log = logging.getLogger("qunflow.tiers")
OPEN = ("requested", "offering", "offered")
CLAIM_AGAIN = timedelta(minutes=5)  # a claim this old was interrupted (or hit a platform error): try again
DEFAULT_EXPIRE_DAYS = 7


# --- rule documents (called from services.playbooks.apply_playbooks, in its transaction) ---------------

def apply_tier_rules(conn: Connection, sources: list[TierRuleSource], now: datetime, *,
                     dry_run: bool = False) -> list[Change]:
    return [store_version(conn, tier_rule_sets, tier_rule_set_versions, kind="tier_rules", key=s.rule_set.key,
                          text=s.text, digest=s.digest, file=s.file, enabled=s.rule_set.enabled, now=now,
                          dry_run=dry_run, extra={"rule_set": s.rule_set.model_dump(mode="json")})
            for s in sources]


def current_rule_sets(conn: Connection) -> list[TierRuleSet]:
    """The current version of every enabled rule set, by key."""
    rows = conn.execute(select(tier_rule_set_versions.c.rule_set)
                        .join(tier_rule_sets, and_(tier_rule_sets.c.key == tier_rule_set_versions.c.key,
                                                   tier_rule_sets.c.version == tier_rule_set_versions.c.version))
                        .where(tier_rule_sets.c.enabled).order_by(tier_rule_sets.c.key)).scalars()
    return [TierRuleSet.model_validate(json.loads(r) if isinstance(r, str) else r) for r in rows]


# --- evaluation: facts in SQL, the decision in domain.tier_rules.plan_moves ----------------------------

def _holds_query(ws: Workspace, condition: Condition, now: datetime) -> Any:
    """The members a condition holds for, as one set-based SELECT of member ids."""
    if condition.orders is not None:
        since = now - timedelta(days=condition.days or 0)
        return (select(events.c.member_id).where(events.c.type == "order", events.c.ts >= since,
                                                  events.c.member_id.is_not(None))
                .group_by(events.c.member_id).having(func.count() >= condition.orders))
    if condition.level is not None:
        today = now.replace(tzinfo=UTC).astimezone(ws.settings.zone).date()
        return select(member_levels.c.member_id).where(
            member_levels.c.level == condition.level,
            member_levels.c.since <= today - timedelta(days=condition.days or 0))
    return select(member_tags.c.member_id).where(member_tags.c.tag == condition.tag)


@dataclass
class Evaluation:
    planned: list[PlannedMove] = field(default_factory=list)
    requested: int = 0  # new moves stored (0 on a dry run)
    offered: int = 0  # of them offered at once (links made, DMs queued)


def evaluate(ws: Workspace, *, dry_run: bool = False) -> Evaluation:
    """Run the tier rules over every joined member; store (and offer) the moves they call for."""
    now = ws.clock()
    with ws.engine.connect() as conn:
        rule_sets = current_rule_sets(conn)
        if not rule_sets:
            return Evaluation()
        holds: dict[str, set[str]] = {}
        for name, condition in conditions_of(rule_sets).items():
            holds[name] = set(conn.execute(_holds_query(ws, condition, now)).scalars())
        candidates = set().union(*holds.values()) if holds else set()
        tiers: dict[str, str | None] = {}
        groups_of: dict[str, int | None] = {}
        ids = sorted(candidates)
        for i in range(0, len(ids), 5000):  # only the candidates' rows: the rules' facts already narrowed them
            for row in conn.execute(select(members.c.id, members.c.tier, members.c.group_id,
                                           groups.c.tier.label("group_tier"))
                                    .outerjoin(groups, groups.c.id == members.c.group_id)
                                    .where(members.c.id.in_(ids[i:i + 5000]), members.c.joined_at.is_not(None))):
                tiers[row.id] = row.tier or row.group_tier
                groups_of[row.id] = row.group_id
        holds = {name: {m for m in found if m in tiers} for name, found in holds.items()}
        open_members = conn.execute(select(tier_moves.c.member_id).where(tier_moves.c.open_key.is_not(None))).scalars()
        recent = [(r.rule, r.member_id) for r in conn.execute(select(tier_moves.c.rule, tier_moves.c.member_id).where(
            tier_moves.c.created_at > now - timedelta(days=REOFFER_DAYS)))]
        planned = plan_moves(rule_sets, holds, tiers, list(open_members), recent)
    result = Evaluation(planned)
    if dry_run or not planned:
        return result
    rows = [{"member_id": m.member_id, "rule": m.rule, "status": "requested", "open_key": m.member_id,
             "from_group_id": groups_of.get(m.member_id), "from_tier": m.from_tier, "to_tier": m.to_tier,
             "to_group_id": None, "label": "mv" + secrets.token_hex(8), "leave_old": m.leave_old,
             "dm": None if m.dm is None else m.dm.model_dump(), "expire_days": m.expire_days, "reason": m.why,
             "created_at": now} for m in planned]
    open_now = select(func.count()).select_from(tier_moves).where(tier_moves.c.open_key.is_not(None))
    with ws.engine.begin() as conn:  # set-based: a member given a move meanwhile (a playbook step) keeps that one
        before = int(conn.execute(open_now).scalar_one())
        for i in range(0, len(rows), 5000):
            insert_ignore(conn, tier_moves, rows[i:i + 5000])
        result.requested = int(conn.execute(open_now).scalar_one()) - before
    result.offered = offer_moves(ws)
    return result


def request_move(conn: Connection, member_id: str, *, rule: str, to_tier: str, now: datetime,
                 to_group_id: int | None = None, leave_old: bool = False, expire_days: int = DEFAULT_EXPIRE_DAYS,
                 dm: dict[str, str] | None = None, why: str | None = None) -> bool:
    """Store a move for a worker to offer, in the caller's transaction; False when the member has one open."""
    member = conn.execute(select(members.c.tier, members.c.group_id, groups.c.tier.label("group_tier"))
                          .outerjoin(groups, groups.c.id == members.c.group_id)
                          .where(members.c.id == member_id)).first()
    if member is None:
        return False
    return insert_if_new(conn, tier_moves, {
        "member_id": member_id, "rule": rule, "status": "requested", "open_key": member_id,
        "from_group_id": member.group_id, "from_tier": member.tier or member.group_tier, "to_tier": to_tier,
        "to_group_id": to_group_id, "label": "mv" + secrets.token_hex(8), "leave_old": leave_old, "dm": dm,
        "expire_days": expire_days, "reason": why, "created_at": now})


# --- offering: the member's own link, by DM -----------------------------------------------------------

def _claim(ws: Workspace, limit: int) -> list[Any]:
    now = ws.clock()
    m = tier_moves.c
    due = or_(m.status == "requested", and_(m.status == "offering", m.claimed_at < now - CLAIM_AGAIN))
    with ws.engine.begin() as conn:
        query = select(m.id).where(due)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        ids = list(conn.execute(query.order_by(m.id).limit(limit)).scalars())
        if not ids:
            return []
        conn.execute(update(tier_moves).where(m.id.in_(ids)).values(status="offering", claimed_at=now))
        return list(conn.execute(select(tier_moves).where(m.id.in_(ids)).order_by(m.id)))


def offer_moves(ws: Workspace, *, limit: int = 200) -> int:
    """Offer the requested moves: a group of the tier with room, the member's own link, the DM. How many went."""
    offered = 0
    for move in _claim(ws, limit):
        try:
            offered += _offer(ws, move)
        except PlatformError as exc:  # the link could not be made now: the claim lapses and it is tried again
            log.warning("tier move %s: link not made yet: %s", move.id, type(exc).__name__)
    return offered


def _fail(ws: Workspace, move: Any, reason: str, *, staff: str | None = None) -> int:
    """Close a move that cannot be offered; `staff`: the alert, once per target tier and hour (a full tier
    fails many moves at once: one item says it)."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        conn.execute(update(tier_moves).where(tier_moves.c.id == move.id).values(
            status="failed", open_key=None, closed_at=now, reason=reason[:200]))
        if staff:
            insert_if_new(conn, inbox, {"kind": "alert", "cause": f"tm-fail:{move.to_tier}:{now:%Y%m%d%H}",
                                        "member_id": None, "title": staff, "created_at": now})
    return 0


def _inbox(conn: Connection, cause: str, member_id: str, title: str, now: datetime) -> None:
    insert_if_new(conn, inbox, {"kind": "follow_up", "cause": cause, "member_id": member_id, "title": title,
                                "due_at": now + timedelta(hours=24), "created_at": now})


def _target_group(ws: Workspace, conn: Connection, move: Any, platform: str) -> Any:
    if move.to_group_id is not None:
        return conn.execute(select(groups).where(groups.c.id == move.to_group_id)).first()
    slots = [s for s in group_slots(conn, ws.clock(), platform) if s.id != move.from_group_id]
    slot = choose_group(slots, move.to_tier)
    return None if slot is None else conn.execute(select(groups).where(groups.c.id == slot.id)).one()


def _offer(ws: Workspace, move: Any) -> int:
    now = ws.clock()
    with ws.engine.connect() as conn:
        member = conn.execute(select(members.c.profile, members.c.locale).where(
            members.c.id == move.member_id)).first()
        # A reachable identity first; an unreachable one still says which platform's groups to offer (staff send)
        identity = conn.execute(select(identities.c.platform, identities.c.external_user_id,
                                       identities.c.unreachable_at)
                                .where(identities.c.member_id == move.member_id)
                                .order_by(identities.c.unreachable_at.is_not(None), identities.c.id)).first()
        platform = identity.platform if identity is not None else None
        if platform is None and move.to_group_id is not None:
            platform = conn.execute(select(groups.c.platform).where(groups.c.id == move.to_group_id)).scalar()
        group = _target_group(ws, conn, move, platform) if platform else None
        old = conn.execute(select(groups.c.key).where(groups.c.id == move.from_group_id)).scalar()
    if member is None:
        return _fail(ws, move, "the member is gone")
    if group is None:
        where = f"group {move.to_group_id}" if move.to_group_id else f"a {move.to_tier} group with room"
        return _fail(ws, move, f"no {where}", staff=t("tier_move_no_room", "zh", tier=move.to_tier) + " / "
                     + t("tier_move_no_room", "en", tier=move.to_tier))
    link = invite_for(ws, group, move.label, personal=True)
    language = pick_language(member.locale)
    values = {"name": unseal(ws, member.profile).get("name", ""), "link": link.url, "group": group.name,
              "tier": group.tier, "from_tier": move.from_tier or ""}
    dm = move.dm if not isinstance(move.dm, str) else json.loads(move.dm)
    try:
        text = render_template(dm, values, language) if dm else t("tier_move_dm", language, **values)
    except TemplateError as exc:
        return _fail(ws, move, f"the DM could not be written: {exc}")
    caps = ws.connector(group.platform).capabilities
    can_dm = (identity is not None and identity.unreachable_at is None and identity.platform == group.platform
              and caps.dm_policy != "callback_window")
    key = f"tm:{move.id}"
    with ws.engine.begin() as conn:
        conn.execute(update(tier_moves).where(tier_moves.c.id == move.id).values(
            status="offered", to_group_id=group.id, offered_at=now, expires_at=now + timedelta(days=move.expire_days)))
        append_events(conn, [Event(event_id=f"tmo-{move.id}", type="tier_move_offered", ts=now.replace(tzinfo=UTC),
                                   member_id=move.member_id, group=group.key, properties={
                                       "rule": move.rule, "from_group": old, "from_tier": move.from_tier,
                                       "to_group": group.key, "to_tier": group.tier, "dm": can_dm})])
        if can_dm and identity is not None:
            outbox.record(ws, conn, outbox.Message(key=key, kind="tier_move", platform=group.platform,
                                                   target=identity.external_user_id, text=text, private=True,
                                                   member_id=move.member_id))
        else:  # the platform cannot DM them now (WeCom's one-call window, another platform): staff send it
            _inbox(conn, f"tm-link:{move.id}", move.member_id, _staff_title(group.key, link.url), now)
    if can_dm:
        results = outbox.deliver(ws, [key]).results
        if results and results[0].status in ("unreachable", "dead"):
            with ws.engine.begin() as conn:
                _inbox(conn, f"tm-link:{move.id}", move.member_id, _staff_title(group.key, link.url), now)
    return 1


def _staff_title(group_key: str, url: str) -> str:
    return " / ".join(t("tier_move_staff", lang, group=group_key, link=url) for lang in ("zh", "en"))


# --- completion: the inbound join handler (services.inbound) -----------------------------------------

def on_member_joined(ws: Workspace, item: Any) -> None:
    """A member with an offered move joined a group of its tier: the move completes (runs after join's
    handler, which recorded the join); the old group is then left where the rule says and the platform can."""
    from qunflow.services.join import group_row, member_of_user

    assert isinstance(item, MemberJoined)
    with transaction(ws.engine) as conn:
        group = group_row(conn, item.platform, item.group_id)
        member_id = member_of_user(conn, item.platform, item.user_id) if group is not None else None
        done = complete_offered(conn, ws.clock(), item, group, member_id) if member_id is not None else None
    if done is not None:
        after_completion(ws, done, item)


@dataclass(frozen=True)
class Completion:
    """A move completed in the database; what is left to do on the platform (after the commit)."""

    move: Any
    group: Any
    old: Any
    member_id: str
    still_in_old: bool


# Built once: every join reads it.
_OFFERED = select(tier_moves).where(tier_moves.c.open_key == bindparam("open_member"), tier_moves.c.status == "offered")
# Whether there is one: most joins have none, and this reads on the driver's cursor (store.plain.read_plain).


def complete_offered(conn: Connection, now: datetime, item: MemberJoined, group: Any,
                     member_id: str) -> Completion | None:
    """In the caller's transaction: complete the member's offered move if `group` is one it leads to."""
    from qunflow.services.join import _in_group, has_offered_move

    if not has_offered_move(conn, member_id):
        return None
    move = conn.execute(_OFFERED, {"open_member": member_id}).first()
    if move is None or not (move.to_group_id == group.id or group.tier == move.to_tier):
        return None
    old = conn.execute(select(groups).where(groups.c.id == move.from_group_id)).first()
    conn.execute(update(tier_moves).where(tier_moves.c.id == move.id).values(
        status="completed", open_key=None, closed_at=now, to_group_id=group.id))
    conn.execute(update(members).where(members.c.id == member_id).values(tier=group.tier, group_id=group.id))
    append_events(conn, [Event(event_id=f"tmd-{move.id}", type="tier_moved", ts=item.at.replace(tzinfo=UTC),
                               member_id=member_id, group=group.key, properties={
                                   "rule": move.rule, "from_group": old.key if old is not None else None,
                                   "from_tier": move.from_tier, "to_group": group.key, "to_tier": group.tier,
                                   "leave_old": bool(move.leave_old)})])
    still_in_old = old is not None and old.id != group.id and _in_group(conn, member_id, old.key)
    return Completion(move, group, old, member_id, still_in_old)


def after_completion(ws: Workspace, done: Completion, item: MemberJoined) -> None:
    """The platform's part of a completed move: its link is revoked, the old group left where the rule says."""
    try:
        revoke(ws, done.move.to_group_id or done.group.id, done.move.label)  # the link did its job
    except QunflowError as exc:  # the move is done either way; the expiry sweep retires links with an expiry
        log.warning("tier move %s: link not revoked: %s", done.move.id, type(exc).__name__)
    if done.move.leave_old and done.still_in_old:  # (one who left the old group already has nothing to leave)
        leave_old_group(ws, done.move.id, done.member_id, done.old, item.platform, item.user_id)


def leave_old_group(ws: Workspace, move_id: int, member_id: str, old: Any, platform: str, user_id: str) -> bool:
    """Remove the member from the old group where the platform can (recorded as any leave: a `left` event);
    elsewhere an inbox item asks staff to. True when removed."""
    from qunflow.services.join import on_member_left

    connector = ws.connector(old.platform)
    if old.platform == platform and connector.capabilities.removes_members:
        try:
            cast(RemovesMembers, connector).remove_member(old.external_id, user_id)
        except QunflowError as exc:
            log.warning("tier move %s: could not remove from the old group: %s", move_id, type(exc).__name__)
        else:  # a platform that reports the removal too makes that update a repeat (on_member_left skips it)
            on_member_left(ws, MemberLeft(platform, ws.clock(), old.external_id, user_id))
            return True
    now = ws.clock()
    with ws.engine.begin() as conn:
        title = f"{t('tier_move_leave', 'zh', group=old.key)} / {t('tier_move_leave', 'en', group=old.key)}"
        _inbox(conn, f"tm-leave:{move_id}", member_id, title, now)
    return False


# --- expiry, the worker's round, counts ----------------------------------------------------------------

def expire_moves(ws: Workspace, *, limit: int = 500) -> int:
    """Offers past their expiry lapse (`tier_move_expired`) and their links are revoked; how many."""
    now = ws.clock()
    with ws.engine.begin() as conn:
        due = conn.execute(select(tier_moves).where(tier_moves.c.status == "offered", tier_moves.c.expires_at <= now)
                           .order_by(tier_moves.c.expires_at).limit(limit)).all()
        done = []
        for move in due:
            if conn.execute(update(tier_moves).where(tier_moves.c.id == move.id, tier_moves.c.status == "offered")
                            .values(status="expired", open_key=None, closed_at=now)).rowcount:
                done.append(move)
        to_keys = {r.id: r.key for r in conn.execute(select(groups.c.id, groups.c.key).where(
            groups.c.id.in_([m.to_group_id for m in done])))} if done else {}
        append_events(conn, [Event(event_id=f"tme-{m.id}", type="tier_move_expired", ts=now.replace(tzinfo=UTC),
                                   member_id=m.member_id, group=to_keys.get(m.to_group_id),
                                   properties={"rule": m.rule, "to_tier": m.to_tier, "days": m.expire_days})
                             for m in done])
    for move in done:
        try:
            revoke(ws, move.to_group_id, move.label)
        except QunflowError as exc:
            log.warning("tier move %s: link not revoked: %s", move.id, type(exc).__name__)
    return len(done)


def moves_tick(ws: Workspace) -> int:
    """The automation worker's round: offer what was requested (a playbook step), expire what lapsed."""
    return offer_moves(ws) + expire_moves(ws)


def rules_tick(ws: Workspace) -> Evaluation:
    """`qunflow serve`'s hourly run, after the levels (a rule may name a level)."""
    return evaluate(ws)


def move_counts(ws: Workspace) -> dict[str, int]:
    """Moves per status (requested, offering, offered, completed, expired, failed)."""
    with ws.engine.connect() as conn:
        found = {r[0]: r[1] for r in conn.execute(select(tier_moves.c.status, func.count())
                                                   .group_by(tier_moves.c.status))}
    return {s: int(found.get(s, 0)) for s in (*OPEN, "completed", "expired", "failed")}


def member_moves(conn: Connection, member_id: str) -> list[dict[str, Any]]:
    """A member's moves, newest first, for the member record."""
    to_group = groups.alias("to_group")
    from_group = groups.alias("from_group")
    rows = conn.execute(select(tier_moves.c.id, tier_moves.c.rule, tier_moves.c.status, tier_moves.c.from_tier,
                               tier_moves.c.to_tier, from_group.c.key.label("from_group"),
                               to_group.c.key.label("to_group"), tier_moves.c.created_at, tier_moves.c.offered_at,
                               tier_moves.c.expires_at, tier_moves.c.closed_at, tier_moves.c.reason)
                        .outerjoin(to_group, to_group.c.id == tier_moves.c.to_group_id)
                        .outerjoin(from_group, from_group.c.id == tier_moves.c.from_group_id)
                        .where(tier_moves.c.member_id == member_id).order_by(tier_moves.c.id.desc()))
    return [dict(r._mapping) for r in rows]


__all__ = ["Evaluation", "apply_tier_rules", "current_rule_sets", "evaluate", "expire_moves", "leave_old_group",
           "member_moves", "move_counts", "moves_tick", "offer_moves", "on_member_joined", "request_move",
           "rules_tick"]
