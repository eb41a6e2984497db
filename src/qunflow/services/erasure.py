"""Erasure of a member (P8, "the right to be forgotten"): their personal data removed, or replaced by a random
pseudonym nothing links back to them, in every store qunflow writes.

- State DB: the member row becomes a pseudonymous row (tier, group, entry point, join time; no profile,
  visitor id or ticket); identities, consents, tags, signals, referral code, inbox items, staff alerts and
  enrollments are deleted; their events, tasks, coupons, rewards, referrals and sends move to the pseudonym,
  message texts to them are deleted and their name is masked in group posts; events keep only the
  properties no metric needs to drop (domain/privacy.py KEPT_PROPERTIES).
- Analytics store: the same rewrite (analytics/erasure.py), so M1-M9 stay exactly the same.
- Platform records qunflow keeps (the sandbox): display name, their messages, their name elsewhere.
- On disk: every SQLite connection of qunflow zeroes the bytes it deletes or rewrites (secure_delete), so the
  erasure empties the WAL and leaves no old version of a row in the file; a file an older qunflow wrote is
  rebuilt (VACUUM) once first (store/secure_delete.py). PostgreSQL vacuums the tables it changed.

The erasure itself is recorded with a keyed hash of the member id, who did it and the counts: nothing personal.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, String, cast, delete, insert, null, select, update

from qunflow.analytics.erasure import erase_in_analytics
from qunflow.domain.fraud import normalise_phone
from qunflow.domain.privacy import Pseudonyms, needles_of, pseudonymise_event, scrub
from qunflow.errors import Unavailable
from qunflow.services.member_records import subject_hash
from qunflow.services.privacy import unseal
from qunflow.store.secure_delete import leave_no_deleted_bytes
from qunflow.store.tables import (
    consents,
    coupons,
    deliveries,
    enrollments,
    erasures,
    events,
    identities,
    inbox,
    join_signals,
    meetup_signups,
    member_levels,
    member_name_keys,
    member_tags,
    member_tasks,
    members,
    poll_votes,
    referral_codes,
    referrals,
    rewards,
    staff_alerts,
    waitlist,
)
from qunflow.workspace import Workspace

KEPT = ("events under a random pseudonym (type, time, channel, campaign, entry point, group, referrer, amount, "
        "margin, tier): every metric M1-M9 stays the same",
        "coupons, the coupon ledger and rewards (money) under the pseudonym",
        "referrals under the pseudonym (invite counts, K-factor)",
        "Day-1 tasks under the pseudonym (M9)",
        "sends under the pseudonym, without their text or the platform user id")
OPEN_SENDS = ("queued", "pending", "retry")


@dataclass
class ErasureReport:
    """What an erasure did: counts per store and table, and what was kept for the metrics (nothing personal)."""

    erased_at: str
    counts: dict[str, int] = field(default_factory=dict)
    kept: tuple[str, ...] = KEPT

    def as_json(self) -> dict[str, Any]:
        return {"erased_at": self.erased_at, "counts": self.counts, "kept": list(self.kept)}


def _needles(ws: Workspace, profile: dict[str, Any], platform_ids: list[tuple[str, str]]) -> list[str]:
    names = [name for platform, user in platform_ids if platform == "sandbox"
             if (name := ws.sandbox.display_name(user))]
    found = needles_of(profile, names)
    for key in ("phone", "mobile"):
        digits = normalise_phone(str(profile.get(key, "")))
        if len(digits) >= 6:
            found.append(digits)
    return sorted(set(found), key=len, reverse=True)


def erase_member(ws: Workspace, member_id: str, actor: str) -> ErasureReport:
    """Erase one member everywhere; the member must exist (services.member_records.find_member)."""
    with ws.engine.connect() as conn:
        member = conn.execute(select(members).where(members.c.id == member_id)).one()
        platform_ids = [(r.platform, r.external_user_id) for r in conn.execute(
            select(identities.c.platform, identities.c.external_user_id).where(identities.c.member_id == member_id))]
    profile = unseal(ws, member.profile)
    needles = _needles(ws, profile, platform_ids)
    names = Pseudonyms(member_id, "anon_" + secrets.token_hex(8), member.visitor_id,
                       "anon_v_" + secrets.token_hex(8) if member.visitor_id else None,
                       tuple(user for _platform, user in platform_ids))
    now = ws.clock()
    report = ErasureReport(now.isoformat())
    with ws.engine.begin() as conn:
        report.counts.update(_state(ws, conn, member, names, needles))
        conn.execute(insert(erasures).values(subject_hash=subject_hash(ws, member_id), erased_at=now,
                                             actor=actor[:64], summary=report.as_json()))
    _compact(ws)
    _outside_state(ws, member_id, names, needles, platform_ids, report)
    return report


def _outside_state(ws: Workspace, member_id: str, names: Pseudonyms, needles: list[str],
                   platform_ids: list[tuple[str, str]], report: ErasureReport) -> None:
    """The analytics store and the sandbox. Should one fail (a busy analytics file), the erasure record keeps
    what finishing needs, encrypted like a profile, until `resume_erasure` completes it."""
    try:
        report.counts["analytics_events"] = erase_in_analytics(ws, names)
        for platform, user in platform_ids:
            if platform == "sandbox":
                for name, n in ws.sandbox.forget_user(user, needles).items():
                    report.counts[f"sandbox_{name}"] = report.counts.get(f"sandbox_{name}", 0) + n
    except Exception as exc:
        pending = {"names": asdict(names), "needles": needles, "platform_ids": platform_ids}
        summary = {**report.as_json(), "resume": ws.fernet.encrypt(json.dumps(pending).encode()).decode()}
        with ws.engine.begin() as conn:
            conn.execute(update(erasures).where(erasures.c.subject_hash == subject_hash(ws, member_id))
                         .values(summary=summary))
        raise Unavailable(f"member {member_id} is erased from the state database, but not yet from the analytics "
                          f"store or the sandbox ({exc}); run `qunflow member erase {member_id}` again to finish",
                          zh=f"成员 {member_id} 已从状态数据库删除,但尚未从分析库或沙盒中删除({exc});"
                             f"请再运行一次 `qunflow member erase {member_id}` 完成删除") \
            from exc
    with ws.engine.begin() as conn:
        conn.execute(update(erasures).where(erasures.c.subject_hash == subject_hash(ws, member_id))
                     .values(summary=report.as_json()))


def unfinished(ws: Workspace, member_id: str) -> bool:
    """Whether an erasure of this member still has stores to finish."""
    with ws.engine.connect() as conn:
        summary = conn.execute(select(erasures.c.summary).where(
            erasures.c.subject_hash == subject_hash(ws, member_id))).scalar()
    return bool(summary and summary.get("resume"))


def resume_erasure(ws: Workspace, member_id: str) -> ErasureReport:
    """Finish an erasure the analytics store or the sandbox could not take part in."""
    with ws.engine.connect() as conn:
        summary = conn.execute(select(erasures.c.summary).where(
            erasures.c.subject_hash == subject_hash(ws, member_id))).scalar_one()
    pending = json.loads(ws.fernet.decrypt(summary["resume"].encode()))
    names = Pseudonyms(**{**pending["names"], "platform_user_ids": tuple(pending["names"]["platform_user_ids"])})
    report = ErasureReport(summary["erased_at"], dict(summary["counts"]))
    _outside_state(ws, member_id, names, pending["needles"], [tuple(p) for p in pending["platform_ids"]], report)
    return report


def _state(ws: Workspace, conn: Connection, member: Any, names: Pseudonyms, needles: list[str]) -> dict[str, int]:
    old, new = names.member_id, names.pseudonym
    counts: dict[str, int] = {"events": _events(conn, names)}
    conn.execute(insert(members).values(
        id=new, visitor_id=names.visitor_pseudonym, profile=None, tier=member.tier, locale=member.locale,
        entry_point_id=member.entry_point_id, group_id=member.group_id, referrer_id=member.referrer_id,
        join_ticket=None, created_at=member.created_at, joined_at=member.joined_at))
    conn.execute(update(members).where(members.c.referrer_id == old).values(referrer_id=new))
    # the name's blind index goes with the profile: nothing would find the pseudonym by the old name
    conn.execute(delete(member_name_keys).where(member_name_keys.c.member_id == old))
    counts["tasks"] = conn.execute(update(member_tasks).where(member_tasks.c.member_id == old)
                                   .values(member_id=new)).rowcount
    counts["poll_votes"] = conn.execute(update(poll_votes).where(poll_votes.c.member_id == old)
                                        .values(member_id=new)).rowcount
    counts["event_signups"] = conn.execute(update(meetup_signups).where(meetup_signups.c.member_id == old)
                                           .values(member_id=new)).rowcount
    counts["level"] = conn.execute(update(member_levels).where(member_levels.c.member_id == old)
                                   .values(member_id=new)).rowcount
    causes = list(conn.execute(select(inbox.c.cause).where(inbox.c.member_id == old)).scalars())
    if causes:
        counts["staff_alerts_deleted"] = conn.execute(delete(staff_alerts)
                                                      .where(staff_alerts.c.cause.in_(causes))).rowcount
    for name, table, column in (("identities", identities, identities.c.member_id),
                                ("consents", consents, consents.c.member_id),
                                ("inbox", inbox, inbox.c.member_id), ("tags", member_tags, member_tags.c.member_id),
                                ("join_signals", join_signals, join_signals.c.member_id),
                                ("referral_codes", referral_codes, referral_codes.c.member_id),
                                ("enrollments", enrollments, enrollments.c.subject),
                                ("waitlist", waitlist, waitlist.c.member_id)):
        counts[f"{name}_deleted"] = conn.execute(delete(table).where(column == old)).rowcount
    conn.execute(delete(members).where(members.c.id == old))
    counts["coupons"] = conn.execute(update(coupons).where(coupons.c.member_id == old).values(
        member_id=new, order_ref=None, cause=_swap(coupons.c.cause, old, new))).rowcount
    conn.execute(update(coupons).where(coupons.c.redeemed_by == old).values(redeemed_by=new))
    counts["rewards"] = conn.execute(update(rewards).where(rewards.c.member_id == old).values(
        member_id=new, order_ref=None, note=None, cause=_swap(rewards.c.cause, old, new))).rowcount
    counts["referrals"] = conn.execute(update(referrals).where(referrals.c.inviter_id == old)
                                       .values(inviter_id=new)).rowcount
    counts["referrals"] += conn.execute(update(referrals).where(referrals.c.invitee_id == old)
                                        .values(invitee_id=new)).rowcount
    counts.update(_sends(ws, conn, names, needles))
    return counts


def _swap(column: Any, old: str, new: str) -> Any:
    from sqlalchemy import func

    return func.replace(column, old, new)


def _events(conn: Connection, names: Pseudonyms) -> int:
    """Their events, others' that name them as referrer and others' whose properties name them (an invitee id
    in a reward's event, for instance) rewritten, in one read of the event log (neither the referrer nor the
    properties are indexed); returns how many changes were made (an event can take two)."""
    e = events.c
    match = (e.member_id == names.member_id) | (e.referrer_id == names.member_id)
    if names.visitor_id:
        match = match | (e.visitor_id == names.visitor_id)
    mentions = cast(e.properties, String).contains(names.member_id, autoescape=True)
    rows = conn.execute(select(e.seq, e.event_id, e.member_id, e.visitor_id, e.referrer_id, e.properties,
                               match.label("matched")).where(match | mentions)).all()
    changed = 0
    for row in rows:
        changes = pseudonymise_event(row._asdict(), names) if row.matched else {}
        properties = changes.get("properties", row.properties)
        text = json.dumps(properties, ensure_ascii=False)
        if properties is not None and names.member_id in text:  # named in what the event keeps
            changes["properties"] = properties = json.loads(names.swap(text))
            changed += 1
        if "properties" in changes and properties is None:
            changes["properties"] = null()
        if changes:
            conn.execute(update(events).where(e.seq == row.seq).values(**changes))
            changed += bool(row.matched)
    return changed


def _sends(ws: Workspace, conn: Connection, names: Pseudonyms, needles: list[str]) -> dict[str, int]:
    """Sends to them lose their text and target; group posts that name them are masked."""
    d = deliveries.c
    old, new = names.member_id, names.pseudonym
    conn.execute(update(deliveries).where(d.member_id == old, d.status.in_(OPEN_SENDS))
                 .values(status="skipped", error="the member was erased", lease_until=None))
    private = conn.execute(update(deliveries).where(d.member_id == old, d.private.is_(True)).values(
        member_id=new, target="-", body=None, context=None, on_sent=None,
        idempotency_key=_swap(d.idempotency_key, old, new))).rowcount
    for user in names.platform_user_ids:  # e.g. the gate link sent before they were a member
        conn.execute(update(deliveries).where(d.target == user, d.private.is_(True))
                     .values(target="-", body=None, context=None))
    conn.execute(update(deliveries).where(d.member_id == old).values(
        member_id=new, idempotency_key=_swap(d.idempotency_key, old, new)))
    masked = 0
    if needles:
        for row in conn.execute(select(d.id, d.body).where(d.private.is_(False), d.body.is_not(None))).all():
            text = ws.fernet.decrypt(row.body).decode()
            cleaned = scrub(text, needles)
            if cleaned != text:
                conn.execute(update(deliveries).where(d.id == row.id)
                             .values(body=ws.fernet.encrypt(cleaned.encode())))
                masked += 1
    return {"sends_to_member": private, "group_posts_masked": masked}


def _compact(ws: Workspace) -> None:
    """Leave no copy of the old bytes on disk: SQLite empties its WAL (store.secure_delete); PostgreSQL
    vacuums (its files are outside the workspace; VACUUM FULL in a quiet hour also returns the space)."""
    if ws.engine.dialect.name == "sqlite":
        leave_no_deleted_bytes(ws.engine)
        return
    with ws.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM members, identities, consents, events, deliveries, inbox, staff_alerts, "
                             "join_signals, member_tags, referral_codes, enrollments")
